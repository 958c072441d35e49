import type { LoginResult } from '../../core/protocol/access.ts';
import type { EndpointInfo, EndpointKind } from '../../core/protocol/common.ts';
import type { Party } from '../../core/protocol/peer.ts';
import type { CallSnapshot, EndpointEvents } from '../../core/session/events.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import { EventBus } from '../../core/bus.ts';
import { systemClock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import { randomB64u } from '../../core/wire/b64.ts';
import { CallManager } from '../../core/engine/call-manager.ts';
import { answeredElsewhereText } from '../../core/engine/ring-in.ts';
import { verifyCertificateWeb, webCrypto } from '../../core/engine/webcrypto.ts';
import { PeerLink } from '../../core/link/peer-link.ts';
import { LinkSet, peerLinkBasics } from '../../core/link/link-set.ts';
import { RelayRenewal } from '../../core/link/relay-renewal.ts';
import type { AccessConnection } from './access.ts';
import type { Identity, StoredCall } from './identity.ts';
import { PageMedia } from './page-media.ts';
import { RtcTransport } from './rtc-transport.ts';
import { callEndedText, explain } from './wording.ts';

export { explain };

/** A pushed sweep ringing on the page (S10). */
export interface Invite {
  sweepId: string;
  from: string;
  sessionId: string;
}

/** What the page shows; every change is pushed to `onChange`. */
export interface WebState {
  siblings: EndpointInfo[];
  buddies: LoginResult['profile']['buddies'];
  siblingCalls: ReturnType<CallManager['siblingCallsSnapshot']>;
  links: string[];
  /** Siblings online but not reachable from here (issue 17): a call on them would not show. */
  unreachable: Array<{ endpointId: string; label: string; reason: string; attempts: number }>;
  call: CallSnapshot | null;
  invite: Invite | null;
  /** H7: this page is set not to ring. */
  doNotDisturb: boolean;
  /** The last thing that happened, in words, and whether it was a failure. */
  status: { text: string; error?: { code: string; message: string } };
}

export interface PhoneEndpointOptions {
  id: Identity;
  access: AccessConnection;
  login: LoginResult;
  serverKey: CryptoKey;
  /** The microphone, if the user allowed it. */
  mic: MediaStreamTrack | null;
  log: Logger;
  /** Called for each link's remote audio stream (the page plays and analyses it). */
  onRemoteStream: (peerId: string, stream: MediaStream) => void;
  sweepTimeoutMs?: number;
  /** H7: starts set not to ring (the page's kept toggle). */
  doNotDisturb?: boolean;
}

type PageLink = PeerLink<RtcTransport>;

/**
 * The phone page's endpoint: the protocol engine of core/engine (the same files the device runs)
 * on the page's ports — links over RTCPeerConnection (always the offerer, L1), the microphone as
 * an RTCRtpSender track, WebCrypto grants. What stays here is the page's own: presence lists,
 * the held call for a reload (L7), and every outcome in words a resident understands.
 */
export class PhoneEndpoint {
  readonly bus: EventBus<EndpointEvents>;
  readonly links: LinkSet<PageLink>;
  private readonly renewal: RelayRenewal<PageLink>;
  readonly calls: CallManager;
  /** New at every page load: a peer that sees a new one knows the page restarted (L6). */
  readonly instance = randomB64u(9);
  /** For the page's timing: performance.now() of the last completed pull's start and first far-end audio. */
  lastPull: { startedAt: number; firstAudioAt: number; steps: Record<string, number> } | undefined;
  private readonly media: PageMedia;
  private readonly siblings = new Map<string, EndpointInfo>();
  private readonly kinds = new Map<string, EndpointKind>();
  private status: WebState['status'] = { text: 'Logged in.' };
  private readonly changeFns: Array<(s: WebState) => void> = [];
  /** The call being reclaimed after a reload (L7): the link to its far end says so in hello. */
  private resuming: StoredCall | undefined;
  private lastCallState: CallSnapshot['state'] | undefined;
  private closed = false;

  constructor(private readonly opts: PhoneEndpointOptions) {
    const { log } = opts;
    const self = this.self;
    this.bus = new EventBus<EndpointEvents>(log);
    this.media = new PageMedia(opts.mic, log);
    this.links = new LinkSet<PageLink>({
      selfId: self.endpointId,
      selfIsBrowser: true,
      signaller: opts.access,
      clock: systemClock,
      log,
      inUse: (peerId) => this.calls.usesPeer(peerId),
      peerKind: (peerId) => this.kinds.get(peerId),
      makeLink: (spec) => {
        const transport = new RtcTransport({ linkId: spec.linkId, certificate: opts.id.certificate, sendSignal: spec.sendSignal, log: spec.log, ice: opts.access.result?.ice });
        transport.onRemoteStream((s) => opts.onRemoteStream(spec.peerId, s));
        const resume = this.resuming?.farEnd.endpointId === spec.peerId ? this.resuming.sessionId : undefined;
        return new PeerLink({
          ...peerLinkBasics(spec),
          transport,
          certificate: () => opts.access.result?.certificate ?? '',
          instance: this.instance,
          ...(resume ? { resume } : {}),
          verifyCertificate: (token) => verifyCertificateWeb(token, opts.serverKey, Date.now()),
          clock: systemClock,
        });
      },
    });
    this.calls = new CallManager({
      self,
      doNotDisturb: opts.doNotDisturb ?? false,
      isBuddy: (account) => opts.login.profile.buddies.some((b) => b.account === account),
      crypto: webCrypto(opts.id.signing.privateKey),
      links: this.links,
      media: this.media,
      bus: this.bus,
      clock: systemClock,
      log,
      sweepTimeoutMs: opts.sweepTimeoutMs ?? 3000,
      // C5: a sibling's call is remembered this long after its link died, so it can be taken over (S9).
      linkLossGraceMs: 10_000,
      // S10: a pushed sweep rings the page's user. H1: so does a household call (Answer, Decline).
      sweepInvites: 'ask',
    });
    this.bus.on(this, 'call.state', (e) => this.onCallState(e.call, e.reason));
    this.bus.on(this, 'sweep.invited', (e) => this.setStatus(`${e.fromLabel || e.from} is sending you the call.`));
    this.bus.on(this, 'sweep.inviteEnded', () => this.changed());
    this.bus.on(this, 'sibling.call', () => this.changed());
    this.bus.on(this, 'link.state', () => this.changed());
    this.links.onLinkFailed(() => this.changed());
    this.bus.on(this, 'sweep.finished', (e) => {
      const heard = e.timeline.find((s) => s.step === 'firstFarEndAudio');
      if (e.role !== 'newcomer' || e.outcome !== 'completed' || !heard) return;
      this.lastPull = { startedAt: e.startedAtMono, firstAudioAt: e.startedAtMono + heard.ms, steps: Object.fromEntries(e.timeline.map((s) => [s.step, s.ms])) };
    });
    this.renewal = new RelayRenewal<PageLink>({ links: () => this.links.links(), relayed: (l) => l.transport.relayed(), inUse: (peerId) => this.calls.usesPeer(peerId), clock: systemClock, log });
    opts.access.on('ice', () => void this.renewal.renew());
    opts.access.on('signal', (s) => this.links.acceptSignal(s.from, s.payload, s.fromAccount));
    opts.access.on('presence', (e) => this.onPresence(e));
    for (const s of opts.login.profile.siblings) this.onPresence(s);
  }

  get self(): Party {
    const p = this.opts.login.profile;
    return { account: p.account, endpointId: p.endpointId, label: 'Smartphone (browser)' };
  }

  get mic(): MediaStreamTrack | null {
    return this.media.microphone;
  }

  set mic(track: MediaStreamTrack | null) {
    this.media.microphone = track;
  }

  onChange(fn: (s: WebState) => void): void {
    this.changeFns.push(fn);
    fn(this.state());
  }

  state(): WebState {
    const invite = this.calls.pendingInvitesSnapshot()[0];
    return {
      siblings: [...this.siblings.values()],
      buddies: this.opts.login.profile.buddies,
      siblingCalls: this.calls.siblingCallsSnapshot(),
      links: this.links.links().map((l) => l.peerId),
      unreachable: [...this.siblings.values()].flatMap((e) => {
        const p = this.links.current(e.endpointId) ? undefined : this.links.problem(e.endpointId);
        return p ? [{ endpointId: e.endpointId, label: e.label || e.endpointId, reason: p.reason, attempts: p.attempts }] : [];
      }),
      call: this.calls.snapshot(),
      invite: invite ? { sweepId: invite.sweepId, from: invite.from, sessionId: invite.sessionId } : null,
      doNotDisturb: this.calls.doNotDisturb,
      status: this.status,
    };
  }

  // ---- user actions ------------------------------------------------------------------------

  /** S3–S7 as the newcomer: "Take the call here". */
  async pull(holderId: string): Promise<void> {
    await this.takeCall(holderId, () => this.calls.pull({ from: holderId }));
  }

  /** S10: answering a pushed sweep runs the pull with the invite's sweep id. */
  async answerInvite(): Promise<void> {
    const inv = this.calls.pendingInvitesSnapshot()[0];
    if (!inv) throw new SweepError('NOT_FOUND', 'no sweep is ringing');
    await this.takeCall(inv.from, () => this.calls.acceptInvite(inv.sweepId));
  }

  /** H2: answers the call ringing here; the first answer of the household wins. */
  async answerCall(): Promise<void> {
    const peer = this.calls.snapshot()?.peer;
    try {
      await this.takeCall(peer ? nameOf(peer) : '', () => this.calls.answer());
    } catch (err) {
      const e = toSweepError(err);
      // H3: another device of the household was first; the ring ended here: say where, not "failed".
      if (e.code !== 'ANSWERED_ELSEWHERE') throw e;
      this.setStatus(callEndedText('', answeredElsewhereText(e.message), (id) => this.labelOf(id)));
    }
  }

  /** H4: declines the call ringing here; the household's other devices ring on. */
  async declineCall(): Promise<void> {
    await this.calls.reject('declined on the phone');
    this.setStatus('Declined.');
  }

  /** H7: not rung while set (the household's other devices still are). */
  setDoNotDisturb(on: boolean): void {
    this.calls.setDoNotDisturb(on);
    this.setStatus(on ? 'Do not disturb: this phone does not ring.' : 'This phone rings again.');
  }

  declineInvite(): void {
    this.calls.declineInvite();
    this.setStatus('Declined: the call stays where it is.');
  }

  /**
   * L7: after a reload, takes back the call this page held (same endpoint identity, new instance)
   * from its far end, which keeps it for the C5 grace. Resolves true when the call runs again.
   */
  async resumeCall(stored: StoredCall): Promise<boolean> {
    if (this.calls.snapshot()?.state === 'active') return false;
    this.resuming = stored;
    this.setStatus(`Reconnecting your call with ${nameOf(stored.farEnd)}…`);
    try {
      await this.calls.resume(stored);
      this.setStatus(`Call resumed with ${nameOf(stored.farEnd)}.`);
      return true;
    } catch (err) {
      this.fail('The call ended while the page was reloading', toSweepError(err));
      return false;
    } finally {
      this.resuming = undefined;
    }
  }

  /** S10 as the holder: asks a sibling (the handset) to pull the call back. */
  async push(to: string): Promise<void> {
    const where = this.labelOf(to);
    this.setStatus(`Ringing on ${where}: you keep talking until it is answered there.`);
    try {
      await this.calls.push({ to });
      this.setStatus(`Answered on ${where}: moving the call there.`);
    } catch (err) {
      this.fail('The call could not be sent', toSweepError(err));
      throw err;
    }
  }

  async hangup(): Promise<void> {
    await this.calls.hangup('hung up on the phone');
    this.setStatus('You hung up.');
  }

  setMuted(muted: boolean): void {
    this.calls.setMuted(muted);
    this.setStatus(muted ? 'Muted: the door does not hear you.' : 'Unmuted.');
  }

  /** D1: only the current holder, only with door rights; the intercom decides (D2–D4). */
  async openDoor(): Promise<number> {
    try {
      const pulseMs = await this.calls.openDoor();
      this.setStatus(`Door opened (${pulseMs} ms).`);
      return pulseMs;
    } catch (err) {
      this.fail('The door did not open', toSweepError(err));
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const call = this.calls.snapshot();
    // The far end hears of a logout at once, not after the link-loss grace (C5).
    if (call && call.state !== 'ended') this.calls.hangup('phone logged out').catch(() => undefined);
    this.calls.close();
    this.renewal.close();
    this.links.close();
    this.bus.removeOwner(this);
  }

  // ---- the page's own ----------------------------------------------------------------------

  private async takeCall(from: string, take: () => Promise<unknown>): Promise<void> {
    if (!this.mic) throw new SweepError('BAD_STATE', 'the microphone is not available (allow it in the browser to take a call)');
    this.setStatus(`Taking the call from ${this.labelOf(from)}…`);
    try {
      await take();
    } catch (err) {
      this.fail('The call could not be taken', toSweepError(err));
      throw err;
    }
  }

  private onCallState(call: CallSnapshot, reason: string | undefined): void {
    const before = this.lastCallState;
    this.lastCallState = call.state;
    const who = nameOf(call.peer);
    if (call.state === 'ringing' && call.direction === 'in') {
      this.status = { text: `${who} is ringing.` };
    } else if (call.state === 'active' && before === 'ringing') {
      this.status = { text: `On the call with ${who}.` };
    } else if (call.state === 'active' && before === 'sweeping') {
      // S8: a reason means the holder's sweep was rolled back; none, that our pull completed.
      this.status = { text: reason ? `The call stays here: ${reason}.` : `On the call with ${who}.` };
    } else if (call.state === 'sweeping' && before === 'active') {
      this.status = { text: `Moving the call to ${this.labelOf(this.calls.sweepTarget() ?? '')}… (you keep talking until it is there)` };
    } else if (call.state === 'ended' && before !== 'ended') {
      this.status = { text: callEndedText(who, reason, (id) => this.labelOf(id)) };
    }
    this.changed();
  }

  private onPresence(e: EndpointInfo): void {
    if (e.online) this.kinds.set(e.endpointId, e.kind);
    if (e.account !== this.self.account) {
      // A buddy's endpoint: the profile's list is refreshed in place for the page.
      const buddy = this.opts.login.profile.buddies.find((b) => b.account === e.account);
      if (buddy) {
        buddy.endpoints = buddy.endpoints.filter((x) => x.endpointId !== e.endpointId);
        if (e.online) buddy.endpoints.push(e);
      }
      if (!e.online) this.links.drop(e.endpointId, 'went offline');
    } else if (e.endpointId !== this.self.endpointId) {
      if (e.online) {
        this.siblings.set(e.endpointId, e);
        // L3: siblings are linked ahead of need (browsers do not link to each other).
        if (e.kind !== 'browser') this.links.pin(e.endpointId, 'sibling');
      } else {
        this.siblings.delete(e.endpointId);
        this.links.drop(e.endpointId, 'went offline');
      }
    }
    this.changed();
  }

  private labelOf(endpointId: string): string {
    return this.siblings.get(endpointId)?.label || endpointId;
  }

  private setStatus(text: string): void {
    this.status = { text };
    this.changed();
  }

  private fail(what: string, e: SweepError): void {
    this.status = { text: `${what}: ${explain(e)}`, error: { code: e.code, message: e.message } };
    this.changed();
  }

  private changed(): void {
    if (this.closed) return;
    const s = this.state();
    for (const fn of this.changeFns) {
      try {
        fn(s);
      } catch (err) {
        this.opts.log.error({ err }, 'change listener threw');
      }
    }
  }
}

function nameOf(p: Party): string {
  return p.label || p.endpointId;
}
