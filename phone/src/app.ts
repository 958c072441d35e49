import { z } from 'zod';
import { isFinalLoginRefusal, type LoginResult } from '../../core/protocol/access.ts';
import type { CallRecord } from '../../core/protocol/history.ts';
import { SigningKey } from '../../core/protocol/common.ts';
import { peerCatalogue } from '../../core/protocol/peer.ts';
import { parseWith } from '../../core/protocol/validate.ts';
import { toSweepError, type SweepError } from '../../core/errors.ts';
import { AccessConnection } from './access.ts';
import { PhoneEndpoint, type WebState } from './phone-endpoint.ts';
import { loadCall, loadOrCreateIdentity, loadSession, loadUsername, saveCall, savePushSubscription, saveSession, saveUsername, type Identity } from './identity.ts';
import { consoleLog } from './log.ts';
import { importVerifyingKey } from '../../core/engine/webcrypto.ts';
import { AudioOut } from './audio-out.ts';
import { RecentCalls, describeCall } from './recent-calls.ts';
import { enablePush, handOver, pushState, registerServiceWorker, restorePageDoNotDisturb, setPageDoNotDisturb, type PushState } from './push-setup.ts';
import type { PushSubscriptionJson } from '../../core/protocol/push.ts';

/**
 * The smartphone page: log in with the handset's credentials, ring with the household and answer
 * the door directly (H1–H4), see the handset's call, "Take the call here", answer pushed sweeps,
 * talk, mute, open the door, send the call back, hang up.
 * No framework: each change of state renders the page again from `WebState`.
 */

const ServerInfo = z.strictObject({ publicKey: SigningKey, accessPath: z.string().regex(/^\/[a-z]+$/) });
const LABEL = 'Smartphone (browser)';
/** door.open is in the shared catalogue once the intercom supports it (D1). */
const DOOR_SUPPORTED = 'door.open' in peerCatalogue.requests;

const log = consoleLog('sweep', new URLSearchParams(location.search).has('debug'));
const app = document.getElementById('app')!;

interface Page {
  id: Identity;
  serverKey: CryptoKey;
  accessUrl: string;
  access?: AccessConnection;
  endpoint?: PhoneEndpoint;
  audio?: AudioOut;
  micProblem?: string;
  /** A16: the service worker, and whether a closed page still rings. */
  sw?: ServiceWorkerRegistration;
  push: PushState;
  /** A15: the household's last calls. */
  recent?: RecentCalls;
  /** The session of the last call seen ending here (the list is read again after each). */
  lastEnded?: string;
  /** Shown on the login screen. */
  loginMessage?: { text: string; error: boolean };
}

let page: Page | undefined;

/** Everything a test or a curious developer may read; no secrets. */
const hooks = {
  ready: false,
  endpointId: '',
  state: (): WebState | null => page?.endpoint?.state() ?? null,
  hearing: (): { hz: number | null; db: number } => page?.audio?.hearing() ?? { hz: null, db: -Infinity },
  lastPull: () => page?.endpoint?.lastPull ?? null,
  /** H1: whether the page plays its ring tone and vibrates. */
  ringing: (): boolean => page?.audio?.ringing ?? false,
  /** A16: the service worker is active (its push handler can be driven). */
  serviceWorker: async (): Promise<boolean> => (await navigator.serviceWorker.ready.then(() => true, () => false)),
  /** A16: hands the server a subscription made elsewhere (tests: a local push service, Chromium's own needs its vendor's). */
  subscribePush: async (subscription: PushSubscriptionJson): Promise<void> => handOver(page!.access!, subscription),
  pushKey: (): Promise<string> => page!.access!.pushKey(),
  /** Attempts a pull from any endpoint id (the UI offers only siblings' calls). */
  pull: async (from: string): Promise<{ ok: boolean; code?: string; message?: string }> => {
    try {
      await page!.endpoint!.pull(from);
      return { ok: true };
    } catch (err) {
      const e = toSweepError(err);
      return { ok: false, code: e.code, message: e.message };
    }
  },
};
(window as unknown as { sweep: typeof hooks }).sweep = hooks;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((ev: Event) => void)> = {}, ...children: Array<Node | string | null | false>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k, v);
    else if (typeof v === 'boolean') {
      if (v) el.setAttribute(k, '');
    } else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== false) el.append(c);
  return el;
}

async function boot(): Promise<void> {
  if (!window.isSecureContext) {
    renderMessage('This page needs a secure origin (https:// or localhost): on plain http:// to a LAN address the browser offers neither the microphone nor WebCrypto. See the README, "From a real phone on your LAN".', true);
    return;
  }
  try {
    const res = await fetch('/server.json', { cache: 'no-store' });
    const info = parseWith(ServerInfo, await res.json(), 'server.json');
    const id = await loadOrCreateIdentity();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const sw = await registerServiceWorker(log);
    page = { id, serverKey: await importVerifyingKey(info.publicKey), accessUrl: `${scheme}//${location.host}${info.accessPath}`, push: await pushState(sw), ...(sw ? { sw } : {}) };
    hooks.endpointId = id.endpointId;
  } catch (err) {
    app.replaceChildren(h('p', { class: 'status error' }, `This page cannot start: ${toSweepError(err).message}. Is this browser up to date (WebCrypto Ed25519, WebRTC)?`));
    return;
  }
  const session = await loadSession();
  if (session) {
    renderMessage('Signing you in again…');
    try {
      await connect((access) => access.resume(session.token, LABEL));
      return;
    } catch (err) {
      const e = toSweepError(err);
      await saveSession(undefined);
      page.loginMessage = { text: e.code === 'UNAUTHORIZED' ? 'Your session has ended: log in again.' : `Login failed: ${explainLogin(e)}`, error: e.code !== 'UNAUTHORIZED' };
    }
  }
  await renderLogin();
}

/** Opens the socket, logs in (password or token), asks for the microphone, starts the endpoint. */
async function connect(login: (a: AccessConnection) => Promise<LoginResult>): Promise<void> {
  const p = page!;
  const access = await AccessConnection.open(p.accessUrl, p.id, log);
  let result: LoginResult;
  try {
    access.on('session', (s) => void saveSession(s));
    result = await login(access);
  } catch (err) {
    access.close();
    throw err;
  }
  p.access = access;
  await saveUsername(result.profile.account);
  p.audio ??= new AudioOut(log);
  let mic: MediaStreamTrack | null = null;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    mic = stream.getAudioTracks()[0] ?? null;
    p.micProblem = undefined;
  } catch (err) {
    const name = err instanceof DOMException ? err.name : 'Error';
    p.micProblem = name === 'NotAllowedError' ? 'Microphone denied: allow it for this site to take calls here.' : `No microphone (${name}): calls cannot be taken here.`;
  }
  const doNotDisturb = await restorePageDoNotDisturb(access, log);
  const endpoint = new PhoneEndpoint({
    doNotDisturb,
    id: p.id,
    access,
    login: result,
    serverKey: p.serverKey,
    mic,
    log,
    onRemoteStream: (_peer, stream) => p.audio?.add(stream),
  });
  p.endpoint = endpoint;
  access.on('kicked', (reason) => void loggedOut(`Logged out by the server: ${reason}.`));
  access.on('lost', (reason) => void reconnect(reason));
  p.recent?.close();
  p.recent = new RecentCalls((n) => access.history(n), () => {
    const s = p.endpoint?.state();
    if (s) render(s);
  }, log);
  void p.recent.refresh();
  endpoint.onChange((s) => {
    render(s);
    rememberCall(s);
    if (s.call?.state === 'ended' && p.lastEnded !== s.call.sessionId) {
      p.lastEnded = s.call.sessionId;
      p.recent?.callEnded();
    }
  });
  hooks.ready = true;
  // L7: a call this page held before a reload (or a killed tab) is reclaimed within the far end's grace.
  const held = await loadCall();
  if (held && Date.now() - held.savedAt < CALL_RESUME_WINDOW_MS) {
    void endpoint.resumeCall(held).then(async (ok) => {
      if (!ok) await saveCall(undefined);
    });
  } else if (held) await saveCall(undefined);
}

/** How old a remembered call may be and still be worth reclaiming (the far end's C5 grace is 10 s). */
const CALL_RESUME_WINDOW_MS = 30_000;
let lastSaved = { key: '', at: 0 };
// A long call stays fresh in storage: its savedAt is renewed while it lasts.
setInterval(() => {
  const s = page?.endpoint?.state();
  if (s) rememberCall(s);
}, 5000);

/** Keeps the held call in IndexedDB while it is active, so a reload can take it back (L7). */
function rememberCall(s: WebState): void {
  const c = s.call;
  const active = c && (c.state === 'active' || c.state === 'sweeping') ? c : null;
  const key = active ? `${active.sessionId}/${active.epoch}/${active.muted}` : '';
  if (key === lastSaved.key && (!active || Date.now() - lastSaved.at < 4000)) return;
  lastSaved = { key, at: Date.now() };
  if (!active) {
    if (c?.state === 'ended') void saveCall(undefined);
    return;
  }
  void saveCall({ sessionId: active.sessionId, farEnd: active.peer, epoch: active.epoch, doorRights: active.doorRights, muted: active.muted, startedAt: active.startedAt, savedAt: Date.now() });
}

async function reconnect(reason: string): Promise<void> {
  const p = page!;
  p.audio?.ring(false);
  p.endpoint?.close();
  p.endpoint = undefined;
  p.recent?.close();
  p.recent = undefined;
  hooks.ready = false;
  for (let attempt = 1; attempt <= 5; attempt++) {
    renderMessage(`Connection to the access server lost (${reason}); reconnecting (attempt ${attempt})…`, true);
    await new Promise((r) => setTimeout(r, 1000 * attempt));
    const session = await loadSession();
    if (!session) break;
    try {
      await connect((a) => a.resume(session.token, LABEL));
      return;
    } catch (err) {
      const e = toSweepError(err);
      if (isFinalLoginRefusal(e.code)) break; // A10: only wrong credentials end the retries
    }
  }
  await loggedOut('The connection to the access server was lost: log in again.');
}

async function loggedOut(text: string, error = true): Promise<void> {
  const p = page!;
  p.audio?.ring(false);
  p.endpoint?.close();
  p.endpoint = undefined;
  p.recent?.close();
  p.recent = undefined;
  p.access = undefined;
  hooks.ready = false;
  p.loginMessage = { text, error };
  await renderLogin();
}

function explainLogin(e: SweepError): string {
  if (e.code === 'UNAUTHORIZED') return 'username or password is wrong.';
  if (e.code === 'RATE_LIMITED') return `too many attempts: ${e.message}`;
  if (e.code === 'OFFLINE') return 'the access server cannot be reached.';
  return `${e.code}: ${e.message}`;
}

function renderMessage(text: string, error = false): void {
  app.replaceChildren(h('p', { class: error ? 'status error' : 'status', role: 'status' }, text));
}

async function renderLogin(): Promise<void> {
  const p = page!;
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', autocapitalize: 'none', required: true });
  username.value = (await loadUsername()) ?? '';
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit', 'data-testid': 'login' }, 'Log in');
  const msg = p.loginMessage;
  const status = h('p', { class: msg?.error ? 'status error' : 'status', role: 'status', 'data-testid': 'status' }, msg?.text ?? 'Log in with the same username and password as your desk handset.');
  const form = h(
    'form',
    {
      class: 'card',
      submit: (ev: Event) => {
        ev.preventDefault();
        const secret = password.value;
        // The password is sent once and kept nowhere (A7): the field is cleared at once.
        password.value = '';
        button.disabled = true;
        status.className = 'status';
        status.textContent = 'Logging in…';
        connect((a) => a.login(username.value.trim(), secret, LABEL)).catch((err: unknown) => {
          const e = toSweepError(err);
          button.disabled = false;
          status.className = 'status error';
          status.textContent = `Login refused: ${explainLogin(e)}`;
        });
      },
    },
    h('label', { for: 'username' }, 'Username'),
    username,
    h('label', { for: 'password' }, 'Password'),
    password,
    button,
  );
  app.replaceChildren(h('header', {}, h('h1', {}, 'Sweep')), status, form, h('p', { class: 'hint' }, 'This phone keeps a login session for a short while, never your password.'));
}

function act(fn: () => Promise<unknown>): (ev: Event) => void {
  return (ev) => {
    (ev.currentTarget as HTMLButtonElement).disabled = true;
    fn().catch((err: unknown) => log.info({ err: toSweepError(err).message }, 'action failed'));
  };
}

function online(endpointId: string, s: WebState): boolean {
  return s.siblings.some((e) => e.endpointId === endpointId) || s.buddies.some((b) => b.endpoints.some((e) => e.endpointId === endpointId && e.online));
}

/** A16: asks for consent only when tapped; says why when it cannot. */
function pushToggle(p: Page): Node {
  const say: Record<PushState, string> = {
    on: 'This phone rings even when this page is closed.',
    off: '',
    unsupported: 'This browser cannot ring while the page is closed (on iPhone: add the page to the home screen first).',
    denied: 'Notifications are blocked for this site: allow them in the browser settings to ring while the page is closed.',
    failed: 'Could not set up ringing while the page is closed; try again.',
  };
  if (p.push === 'on' || p.push === 'unsupported' || p.push === 'denied') return h('p', { class: 'hint', 'data-testid': 'push-state' }, say[p.push]);
  return h('p', {}, h('button', { class: 'secondary', 'data-testid': 'enable-push', click: act(async () => {
    p.push = await enablePush(p.sw, p.access!, log);
    const s = p.endpoint?.state();
    if (s) render(s);
  }) }, 'Ring this phone when the page is closed'), p.push === 'failed' ? h('span', { class: 'hint' }, ` ${say.failed}`) : null);
}

/** A15: the last calls of the household, the missed ones marked. */
function recentCallsView(records: readonly CallRecord[]): Node[] {
  const rows = records.map((r) => {
    const d = describeCall(r);
    return h('li', { class: d.missed ? 'missed' : '', 'data-testid': d.missed ? 'recent-missed' : 'recent-call' }, h('span', {}, d.title), h('span', { class: 'hint' }, d.detail));
  });
  return [h('h2', {}, 'Recent calls'), h('ul', { class: 'card', 'data-testid': 'recent-calls' }, ...(rows.length ? rows : [h('li', {}, 'No calls yet.')]))];
}

function render(s: WebState): void {
  const p = page!;
  const ep = p.endpoint!;
  const account = ep.self.account;
  const status = h('p', { class: s.status.error ? 'status error' : 'status', role: 'status', 'data-testid': 'status' }, s.status.text);
  const parts: Array<Node | null> = [
    h(
      'header',
      {},
      h('h1', {}, h('span', { class: 'dot on', title: 'online' }), `Sweep — ${account}`),
      h('button', { class: 'small secondary', 'data-testid': 'logout', click: act(async () => {
        const access = p.access;
        await loggedOut('You logged out.', false);
        await access?.logout().catch(() => undefined);
        // A16: the server dropped it at logout; the next account on this browser subscribes anew.
        await savePushSubscription(undefined);
      }) }, 'Log out'),
    ),
    status,
    p.micProblem ? h('p', { class: 'status error', 'data-testid': 'mic-problem' }, p.micProblem) : null,
  ];

  // H1: a call ringing here shows over everything (below); the page shows the rest meanwhile.
  const incoming = s.call?.state === 'ringing' && s.call.direction === 'in' ? s.call : null;
  p.audio?.ring(incoming !== null || s.invite !== null);
  const call = s.call && s.call.state !== 'ended' && !incoming ? s.call : null;
  if (call) {
    const who = call.peer.label || call.peer.endpointId;
    const busy = call.state === 'sweeping';
    const nodeSiblings = s.siblings.filter((e) => e.kind !== 'browser');
    parts.push(
      h(
        'section',
        { class: 'card', 'data-testid': 'call' },
        h('p', { class: 'big' }, call.state === 'active' ? `On the call with ${who}` : `Moving the call with ${who}…`),
        h('p', { class: 'hint' }, call.muted ? 'Muted' : 'Microphone on', call.doorRights ? ' · may open the door' : ''),
        h('div', { class: 'row' },
          h('button', { class: 'secondary', 'data-testid': 'mute', disabled: busy, click: () => ep.setMuted(!call.muted) }, call.muted ? 'Unmute' : 'Mute'),
          h('button', {
            class: 'ok',
            'data-testid': 'door',
            disabled: !DOOR_SUPPORTED || !call.doorRights,
            title: DOOR_SUPPORTED ? (call.doorRights ? 'Open the door' : 'This call has no door rights') : 'This version cannot open the door',
            click: act(() => ep.openDoor()),
          }, 'Open door'),
        ),
        ...nodeSiblings.map((e) => h('button', { class: 'secondary', 'data-testid': `send-${e.endpointId}`, disabled: busy, click: act(() => ep.push(e.endpointId)) }, `Send to ${e.label || e.endpointId}`)),
        h('button', { class: 'danger', 'data-testid': 'hangup', click: act(() => ep.hangup()) }, 'Hang up'),
      ),
    );
  } else if (s.siblingCalls.length) {
    for (const c of s.siblingCalls) {
      const holder = s.siblings.find((e) => e.endpointId === c.endpointId);
      const farOnline = online(c.farEnd.endpointId, s);
      const reason = !ep.mic ? 'Allow the microphone to take the call.' : !farOnline ? `${c.farEnd.label || c.farEnd.endpointId} is offline.` : null;
      parts.push(
        h(
          'section',
          { class: 'card', 'data-testid': `sibling-call-${c.endpointId}` },
          h('p', { class: 'big' }, `${holder?.label ?? c.endpointId} is talking to ${c.farEnd.label || c.farEnd.endpointId}`),
          reason ? h('p', { class: 'hint' }, reason) : null,
          h('button', { 'data-testid': `take-${c.endpointId}`, disabled: reason !== null, click: act(() => ep.pull(c.endpointId)) }, 'Take the call here'),
        ),
      );
    }
  } else if (s.unreachable.length) {
    // Issue 17: never "no call" when a device that may hold one cannot be reached; say why.
    parts.push(
      h('section', { class: 'card', 'data-testid': 'unreachable' },
        ...s.unreachable.map((u) => h('p', {}, `${u.label} is online, but this phone cannot reach it (${u.reason}), so a call there would not show here.`)),
        h('p', { class: 'hint' }, s.unreachable.some((u) => /UDP is blocked/.test(u.reason))
          ? 'This network blocks the way calls travel (UDP). Try mobile data or another Wi-Fi. Retrying…'
          : 'Away from home? The building needs a TURN server for phones outside its network (README: "Answering from outside the home"). Retrying…'),
      ),
    );
  } else {
    parts.push(h('section', { class: 'card' }, h('p', {}, `No call on your account (${account}) right now.`)));
  }

  parts.push(...recentCallsView(p.recent?.list ?? []));
  parts.push(h('h2', {}, 'Your devices'));
  parts.push(h('ul', { class: 'card' }, ...(s.siblings.length ? s.siblings.map((e) => h('li', {}, h('span', {}, h('span', { class: 'dot on' }), e.label || e.endpointId), h('span', { class: 'hint' }, s.links.includes(e.endpointId) ? 'linked' : s.unreachable.some((u) => u.endpointId === e.endpointId) ? 'cannot reach' : e.kind))) : [h('li', {}, 'No other device of yours is online.')])));
  parts.push(h('h2', {}, 'Buddies'));
  parts.push(
    h('ul', { class: 'card' }, ...s.buddies.flatMap((b) => (b.endpoints.length ? b.endpoints : [null]).map((e) =>
      h('li', {}, h('span', {}, h('span', { class: e?.online ? 'dot on' : 'dot' }), e ? `${b.displayName}: ${e.label || e.endpointId}` : b.displayName), h('span', { class: 'hint' }, e?.online ? 'online' : 'offline')),
    ))),
  );
  parts.push(
    h('label', { class: 'toggle' },
      h('input', { type: 'checkbox', 'data-testid': 'dnd', checked: s.doNotDisturb, change: (ev: Event) => {
        const on = (ev.target as HTMLInputElement).checked;
        ep.setDoNotDisturb(on);
        setPageDoNotDisturb(p.access!, on).catch((err: unknown) => log.info({ err: toSweepError(err).message }, 'do not disturb not told to the server'));
      } }),
      ' Do not disturb (this phone does not ring; your other devices do)'),
  );
  parts.push(pushToggle(p));
  parts.push(h('p', { class: 'hint' }, `This phone: ${p.id.endpointId}`));

  if (incoming) {
    const who = incoming.peer.label || incoming.peer.endpointId;
    parts.push(
      h('div', { class: 'ringing', role: 'alertdialog', 'data-testid': 'incoming' },
        h('p', { 'data-testid': 'incoming-label' }, `${who} is ringing`),
        incoming.doorRights ? h('p', { class: 'hint' }, 'You can open the door once you answer.') : null,
        h('button', { class: 'ok', 'data-testid': 'answer-call', disabled: !ep.mic, click: act(() => ep.answerCall()) }, ep.mic ? 'Answer' : 'Answer (microphone needed)'),
        h('button', { class: 'secondary', 'data-testid': 'decline-call', click: act(() => ep.declineCall()) }, 'Decline'),
      ),
    );
  }

  if (s.invite) {
    const inv = s.invite;
    const from = s.siblings.find((e) => e.endpointId === inv.from)?.label ?? inv.from;
    parts.push(
      h('div', { class: 'ringing', role: 'alertdialog', 'data-testid': 'ringing' },
        h('p', {}, `${from} is sending you the call`),
        h('button', { class: 'ok', 'data-testid': 'answer', disabled: !ep.mic, click: act(() => ep.answerInvite()) }, ep.mic ? 'Answer' : 'Answer (microphone needed)'),
        h('button', { class: 'secondary', 'data-testid': 'decline', click: () => ep.declineInvite() }, 'Decline'),
      ),
    );
  }
  app.replaceChildren(...parts.filter((x): x is Node => x !== null));
}

void boot();
