import type { LoginResult, SignalIn, SignalPayload } from '../../core/protocol/access.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import type { GrantPayload, Party, SessionState, SweepScope } from '../../core/protocol/peer.ts';
import { transition, type CallEvent } from '../../core/session/call-state.ts';
import type { CallSnapshot } from '../../core/session/events.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import type { AccessConnection } from './access.ts';
import { randomB64u } from '../../core/wire/b64.ts';
import { signToken, type Identity, type StoredCall } from './identity.ts';
import { BrowserLink } from './link.ts';
import type { WebLog } from './log.ts';
import { grantlessSession, holderGone, sendUpdate } from '../../core/engine/takeover.ts';
import { systemClock } from '../../core/clock.ts';

/** The browser's call: the runtime's snapshot less `direction` (the browser takes calls by sweep). */
export type WebCall = Omit<CallSnapshot, 'direction'>;

export interface SiblingCall {
  sessionId: string;
  farEnd: Party;
  epoch: number;
}

export interface Invite {
  sweepId: string;
  from: string;
  sessionId: string;
  scope: SweepScope;
}

/** What the page shows; every change is pushed to `onChange`. */
export interface WebState {
  siblings: EndpointInfo[];
  buddies: LoginResult['profile']['buddies'];
  siblingCalls: Array<{ endpointId: string } & SiblingCall>;
  links: string[];
  call: WebCall | null;
  invite: Invite | null;
  /** The last thing that happened, in words, and whether it was a failure. */
  status: { text: string; error?: { code: string; message: string } };
}

export interface WebEndpointOptions {
  id: Identity;
  access: AccessConnection;
  login: LoginResult;
  serverKey: CryptoKey;
  /** The microphone, if the user allowed it. */
  mic: MediaStreamTrack | null;
  log: WebLog;
  /** Called for each link's remote audio stream (the page plays and analyses it). */
  onRemoteStream: (peerId: string, stream: MediaStream) => void;
  sweepTimeoutMs?: number;
}

interface HolderSweep {
  sweepId: string;
  to: string;
  scope: SweepScope;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The browser endpoint: keeps links to its siblings and, while a sibling is in a call, to that
 * call's far end (L3), always as the offerer (L1); plays the newcomer (pull, pushed sweeps) and the
 * holder (goAway with a WebCrypto grant, push) of docs/protocol.md part S; talks, mutes, hangs up,
 * opens the door (D1).
 */
export class WebEndpoint {
  private readonly links = new Map<string, BrowserLink>();
  private readonly pins = new Map<string, Set<string>>();
  private readonly rebuild = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly siblings = new Map<string, EndpointInfo>();
  private readonly siblingCalls = new Map<string, SiblingCall>();
  private call: WebCall | null = null;
  private invite: Invite | null = null;
  private holderSweep: HolderSweep | undefined;
  private pulling = false;
  private status: WebState['status'] = { text: 'Logged in.' };
  private closed = false;
  private readonly changeFns: Array<(s: WebState) => void> = [];
  /** New at every page load: a peer that sees a new one knows the page restarted (L6). */
  readonly instance = randomB64u(9);
  /** The peer instance our call runs with (L6). */
  private callPeerInstance: string | undefined;
  private readonly siblingLost = new Map<string, ReturnType<typeof setTimeout>>();
  /** The call being reclaimed after a reload (L7): links to its far end say so in hello. */
  private resuming: StoredCall | undefined;
  /** For the page's timing: performance.now() of the last completed pull's first far-end audio. */
  lastPull: { startedAt: number; firstAudioAt: number; steps: Record<string, number> } | undefined;

  constructor(private readonly opts: WebEndpointOptions) {
    opts.access.on('signal', (s) => this.onSignal(s));
    opts.access.on('presence', (e) => this.onPresence(e));
    for (const s of opts.login.profile.siblings) this.onPresence(s);
  }

  get self(): Party {
    const p = this.opts.login.profile;
    return { account: p.account, endpointId: p.endpointId, label: 'Smartphone (browser)' };
  }

  get mic(): MediaStreamTrack | null {
    return this.opts.mic;
  }

  set mic(track: MediaStreamTrack | null) {
    this.opts.mic = track;
  }

  onChange(fn: (s: WebState) => void): void {
    this.changeFns.push(fn);
    fn(this.state());
  }

  state(): WebState {
    return {
      siblings: [...this.siblings.values()],
      buddies: this.opts.login.profile.buddies,
      siblingCalls: [...this.siblingCalls].map(([endpointId, c]) => ({ endpointId, ...c })),
      links: [...this.links.values()].filter((l) => l.peer && !l.isClosed).map((l) => l.peerId),
      call: this.call && { ...this.call },
      invite: this.invite,
      status: this.status,
    };
  }

  link(peerId: string): BrowserLink | undefined {
    const l = this.links.get(peerId);
    return l && !l.isClosed ? l : undefined;
  }

  // ---- user actions ------------------------------------------------------------------------

  /** S3–S7 as the newcomer: "Take the call here". */
  async pull(holderId: string, sweepId = randomB64u(9), scope: SweepScope = 'session'): Promise<void> {
    if (this.call && this.call.state !== 'ended') throw new SweepError('BAD_STATE', `this phone already has a call (${this.call.state})`);
    if (this.pulling) throw new SweepError('BUSY', 'a sweep is already in progress here');
    const mic = this.opts.mic;
    if (!mic) throw new SweepError('BAD_STATE', 'the microphone is not available (allow it in the browser to take a call)');
    const known = this.siblingCalls.get(holderId);
    const startedAt = performance.now();
    const timeoutMs = this.sweepTimeoutMs;
    this.pulling = true;
    const call: WebCall = {
      sessionId: known?.sessionId ?? sweepId,
      state: 'idle',
      peer: known?.farEnd ?? { account: this.self.account, endpointId: holderId, label: '' },
      epoch: known?.epoch ?? 0,
      startedAt: null,
      doorRights: false,
      muted: false,
      onHold: false,
    };
    this.call = call;
    this.apply(call, 'takeOver', `Taking the call from ${holderId}…`);
    let holderLink: BrowserLink | undefined;
    let farLink: BrowserLink | undefined;
    const steps: Record<string, number> = {};
    const mark = (step: string): void => {
      steps[step] = Math.round((performance.now() - startedAt) * 10) / 10;
    };
    try {
      let session: SessionState;
      let grant: string | null;
      try {
        holderLink = await this.get(holderId);
        // S3: ask the holder; S4: it answers with the session and a grant it signed.
        const info = await holderLink.rpc.request('sweep.goAway', { sweepId, sessionId: call.sessionId, scope }, { timeoutMs });
        holderLink.rpc.request('sweep.ack', { sweepId }, { timeoutMs }).catch((err: unknown) => this.opts.log.debug({ err }, 'ack not delivered'));
        ({ session, grant } = info);
      } catch (err) {
        // S9: the holder is gone (crashed, its link dead): take over the call we know of, without a grant.
        const e = toSweepError(err);
        if (!known || !holderGone(e)) throw e;
        this.opts.log.warn({ holder: holderId, reason: e.message }, 'holder unreachable: taking over without a grant (S9)');
        mark('holderLost');
        session = grantlessSession(known, Date.now());
        grant = null;
      }
      mark('sessionInfo');
      this.adopt(call, session);
      farLink = await this.get(session.farEnd.endpointId);
      if (farLink.peer?.account !== session.farEnd.account) {
        throw new SweepError('FORBIDDEN', `far end ${session.farEnd.endpointId} is not of account ${session.farEnd.account}`);
      }
      const heard = this.firstAudio(farLink, startedAt, timeoutMs);
      // S5: the grant goes to the far end; S6 is checked there.
      const update = { sweepId, sessionId: session.sessionId, epoch: session.epoch + 1, grant };
      const res = await sendUpdate(farLink.rpc, update, { clock: systemClock, timeoutMs });
      mark('updateResponse');
      if (this.call !== call) throw new SweepError('BAD_STATE', 'the call was ended during the sweep');
      call.epoch = res.epoch;
      call.doorRights = res.doorRights;
      this.callPeerInstance = farLink.peerInstance;
      // S7: the newcomer starts sending; the far end switches when it hears us.
      mic.enabled = !call.muted;
      await farLink.setSending(mic);
      this.apply(call, 'completed', `On the call with ${call.peer.label || call.peer.endpointId}.`);
      const firstAudioAt = await heard;
      mark('firstFarEndAudio');
      this.lastPull = { startedAt, firstAudioAt, steps };
      this.announce();
    } catch (err) {
      const e = toSweepError(err);
      if (holderLink && !holderLink.isClosed) {
        holderLink.rpc.request('sweep.cancel', { sweepId, reason: `${e.code}: ${e.message}` }).catch(() => undefined);
      }
      void farLink?.setSending(null);
      if (this.call === call && call.state === 'sweeping') this.apply(call, 'abandon');
      this.fail('The call could not be taken', e);
      throw e;
    } finally {
      this.pulling = false;
    }
  }

  /**
   * L7: after a reload, takes back the call this page held (same endpoint identity, new instance)
   * from its far end, which keeps it for the C5 grace. Resolves true when the call runs again.
   */
  async resumeCall(stored: StoredCall): Promise<boolean> {
    if (this.call && this.call.state !== 'ended') return false;
    const mic = this.opts.mic;
    this.resuming = stored;
    this.setStatus(`Reconnecting your call with ${stored.farEnd.label || stored.farEnd.endpointId}…`);
    try {
      const link = await this.get(stored.farEnd.endpointId);
      if (link.peer?.account !== stored.farEnd.account) throw new SweepError('FORBIDDEN', `${stored.farEnd.endpointId} is not of account ${stored.farEnd.account}`);
      const res = await link.rpc.request('call.resume', { sessionId: stored.sessionId, epoch: stored.epoch });
      const call: WebCall = {
        sessionId: res.sessionId,
        state: 'idle',
        peer: stored.farEnd,
        epoch: res.epoch,
        startedAt: res.startedAt,
        doorRights: res.doorRights,
        muted: stored.muted,
        onHold: false,
      };
      this.call = call;
      this.callPeerInstance = link.peerInstance;
      if (mic) mic.enabled = !call.muted;
      await link.setSending(mic);
      this.apply(call, 'resumed', `Call resumed with ${call.peer.label || call.peer.endpointId}.`);
      return true;
    } catch (err) {
      this.fail('The call ended while the page was reloading', toSweepError(err));
      return false;
    } finally {
      this.resuming = undefined;
    }
  }

  /** S10: answering a pushed sweep runs the pull with the invite's sweep id. */
  async answerInvite(): Promise<void> {
    const inv = this.invite;
    if (!inv) throw new SweepError('NOT_FOUND', 'no sweep is ringing');
    this.invite = null;
    await this.pull(inv.from, inv.sweepId, inv.scope);
  }

  declineInvite(): void {
    this.invite = null;
    this.setStatus('Declined: the call stays where it is.');
  }

  /** S10 as the holder: asks a sibling (the handset) to pull the call back. */
  async push(to: string): Promise<void> {
    const call = this.call;
    if (!call || call.state !== 'active') throw new SweepError('BAD_STATE', 'there is no active call to sweep');
    try {
      const link = await this.get(to);
      if (link.peer?.account !== this.self.account) throw new SweepError('FORBIDDEN', `${to} is not an endpoint of this account`);
      const where = link.peer.label || to;
      this.setStatus(`Ringing on ${where}: you keep talking until it is answered there.`);
      // S10: a device that asks its user first answers when the user accepts or its invite times out.
      const res = await link.rpc
        .request('sweep.invite', { sweepId: randomB64u(9), sessionId: call.sessionId, scope: 'session' }, { timeoutMs: 30_000 })
        .catch((err: unknown) => {
          const e = toSweepError(err);
          throw e.code === 'TIMEOUT' ? new SweepError('REFUSED', `not answered on ${where}`) : e;
        });
      if (!res.accepted) throw new SweepError('REFUSED', res.reason ? `${res.reason} on ${where}` : `declined on ${where}`);
      this.setStatus(`Answered on ${where}: moving the call there.`);
    } catch (err) {
      this.fail('The call could not be sent', toSweepError(err));
      throw err;
    }
  }

  async hangup(): Promise<void> {
    const call = this.call;
    if (!call || call.state === 'ended') throw new SweepError('BAD_STATE', 'there is no call to hang up');
    const link = this.link(call.peer.endpointId);
    this.apply(call, 'hangup', 'You hung up.');
    await link?.rpc.request('call.hangup', { sessionId: call.sessionId, reason: 'hung up on the phone' }).catch(() => undefined);
  }

  setMuted(muted: boolean): void {
    const call = this.call;
    if (!call || (call.state !== 'active' && call.state !== 'sweeping')) throw new SweepError('BAD_STATE', 'no call to mute');
    call.muted = muted;
    if (this.opts.mic) this.opts.mic.enabled = !muted;
    this.setStatus(muted ? 'Muted: the door does not hear you.' : 'Unmuted.');
  }

  /** D1: only the current holder, only with door rights; the intercom decides (D2–D4). */
  async openDoor(): Promise<number> {
    const call = this.call;
    if (!call || (call.state !== 'active' && call.state !== 'sweeping')) throw new SweepError('BAD_STATE', 'no call: the door opens only during a call');
    const link = this.link(call.peer.endpointId);
    if (!link) throw new SweepError('OFFLINE', `${call.peer.endpointId} is not reachable`);
    try {
      const res = await link.rpc.request('door.open', { sessionId: call.sessionId });
      this.setStatus(`Door opened (${res.pulseMs} ms).`);
      return res.pulseMs;
    } catch (err) {
      this.fail('The door did not open', toSweepError(err));
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.holderSweep) clearTimeout(this.holderSweep.timer);
    for (const t of this.rebuild.values()) clearTimeout(t);
    for (const t of this.siblingLost.values()) clearTimeout(t);
    if (this.call && this.call.state !== 'ended') {
      const link = this.link(this.call.peer.endpointId);
      link?.rpc.request('call.hangup', { sessionId: this.call.sessionId, reason: 'phone logged out' }).catch(() => undefined);
    }
    for (const l of this.links.values()) l.close('logged out');
    this.links.clear();
  }

  // ---- links (L1, L3, L4) ----------------------------------------------------------------------

  /** A ready link to `peerId`; the browser offers (L1). */
  async get(peerId: string): Promise<BrowserLink> {
    if (this.closed) throw new SweepError('CLOSED', 'logged out');
    const l = this.link(peerId) ?? this.createLink(peerId);
    await l.ready;
    return l;
  }

  private pin(peerId: string, reason: string): void {
    if (peerId === this.self.endpointId) return;
    const set = this.pins.get(peerId) ?? new Set();
    set.add(reason);
    this.pins.set(peerId, set);
    if (!this.link(peerId)) this.get(peerId).catch((err: unknown) => this.opts.log.debug({ peer: peerId, err: toSweepError(err).message }, 'link ahead of need not made yet'));
  }

  private unpin(peerId: string, reason: string): void {
    const set = this.pins.get(peerId);
    set?.delete(reason);
    if (set && set.size === 0) this.pins.delete(peerId);
  }

  private createLink(peerId: string): BrowserLink {
    const linkId = randomB64u(6);
    const resume = this.resuming?.farEnd.endpointId === peerId ? this.resuming.sessionId : undefined;
    const link = new BrowserLink({
      peerId,
      linkId,
      certificate: this.opts.id.certificate,
      endpointCertificate: () => this.opts.access.result?.certificate ?? '',
      instance: this.instance,
      ...(resume ? { resume } : {}),
      serverKey: this.opts.serverKey,
      sendSignal: (payload: SignalPayload) => {
        this.opts.access.signal(peerId, payload).catch((err: unknown) => {
          const e = toSweepError(err);
          link.close(`${e.code}: ${e.message}`);
        });
      },
      log: this.opts.log,
    });
    this.links.set(peerId, link);
    this.registerHandlers(link);
    link.onRemoteStream((s) => this.opts.onRemoteStream(peerId, s));
    link.ready.then(
      () => {
        this.endOldInstanceCall(link);
        const lost = this.siblingLost.get(peerId);
        if (lost) {
          // The sibling is back: it tells its call again (L3).
          clearTimeout(lost);
          this.siblingLost.delete(peerId);
          this.forgetSiblingCall(peerId);
        }
        // L3: a sibling learns our call as soon as we are linked.
        if (link.peer?.account === this.self.account) link.rpc.notify('presence.call', { call: this.presenceCall() });
        this.changed();
      },
      () => undefined,
    );
    link.onClosed(() => {
      if (this.links.get(peerId) === link) this.links.delete(peerId);
      if (this.siblingCalls.has(peerId) && !this.siblingLost.has(peerId)) {
        // C5, S9: a sibling that vanished may have crashed holding its call; remember it for the grace.
        this.siblingLost.set(peerId, setTimeout(() => {
          this.siblingLost.delete(peerId);
          this.forgetSiblingCall(peerId);
        }, LINK_LOSS_GRACE_MS));
      }
      this.changed();
      // L4: links kept ahead of need are rebuilt.
      if (this.pins.has(peerId) && !this.closed && !this.rebuild.has(peerId)) {
        this.rebuild.set(peerId, setTimeout(() => {
          this.rebuild.delete(peerId);
          if (this.pins.has(peerId) && !this.link(peerId)) this.pin(peerId, 'rebuild');
        }, 1000));
      }
    });
    return link;
  }

  private forgetSiblingCall(peerId: string): void {
    if (this.siblingCalls.delete(peerId)) this.unpinAll(`sibling:${peerId}`);
    this.changed();
  }

  /** L6: a ready link from our call's other party with a new instance: it restarted and forgot the call. */
  private endOldInstanceCall(link: BrowserLink): void {
    const call = this.call;
    if (!call || call.state === 'ended' || call.peer.endpointId !== link.peerId || call.peer.account !== link.peer?.account) return;
    if (this.callPeerInstance !== undefined && link.peerInstance !== this.callPeerInstance) {
      this.apply(call, 'hangup', `${call.peer.label || call.peer.endpointId} restarted: the call ended.`);
    }
  }

  private unpinAll(reason: string): void {
    for (const peerId of [...this.pins.keys()]) this.unpin(peerId, reason);
  }

  private onSignal(s: SignalIn): void {
    const p = s.payload;
    const link = this.links.get(s.from);
    switch (p.kind) {
      case 'connect':
        // L1: a node endpoint needs a link: we offer. A link still being set up will do.
        if (link && !link.isClosed) {
          if (!link.peer) return;
          link.close('peer asked for a new link');
        }
        this.createLink(s.from);
        return;
      case 'offer':
        this.opts.log.warn({ peer: s.from }, 'offer from a node endpoint ignored: the browser always offers (L1)');
        return;
      case 'answer':
      case 'candidate':
        if (link && link.linkId === p.linkId) link.acceptSignal(p);
        return;
    }
  }

  private onPresence(e: EndpointInfo): void {
    if (e.account !== this.self.account) {
      // A buddy's endpoint: the profile's list is refreshed in place for the page.
      const buddy = this.opts.login.profile.buddies.find((b) => b.account === e.account);
      if (buddy) {
        buddy.endpoints = buddy.endpoints.filter((x) => x.endpointId !== e.endpointId);
        if (e.online) buddy.endpoints.push(e);
      }
      if (!e.online) this.links.get(e.endpointId)?.close('went offline');
      this.changed();
      return;
    }
    if (e.endpointId === this.self.endpointId) return;
    if (e.online) {
      this.siblings.set(e.endpointId, e);
      // L3: siblings are linked ahead of need (browsers do not link to each other).
      if (e.kind !== 'browser') this.pin(e.endpointId, 'sibling');
    } else {
      this.siblings.delete(e.endpointId);
      this.pins.delete(e.endpointId);
      this.links.get(e.endpointId)?.close('went offline');
    }
    this.changed();
  }

  // ---- inbound peer requests -------------------------------------------------------------------

  private registerHandlers(link: BrowserLink): void {
    const rpc = link.rpc;
    rpc.handle('call.invite', () => {
      throw new SweepError('REFUSED', 'this phone takes calls by sweep only (S10): call the handset');
    });
    rpc.handle('call.answer', () => {
      throw new SweepError('NOT_FOUND', 'this phone placed no call');
    });
    rpc.handle('call.reject', () => {
      throw new SweepError('NOT_FOUND', 'this phone placed no call');
    });
    rpc.handle('call.hangup', (body) => {
      const call = this.call;
      if (!call || call.sessionId !== body.sessionId || call.peer.endpointId !== link.peerId || call.peer.account !== link.peer?.account) {
        throw new SweepError('NOT_FOUND', `no call ${body.sessionId} with ${link.peerId} here`);
      }
      if (call.state !== 'ended') this.apply(call, 'hangup', `${call.peer.label || call.peer.endpointId} hung up.`);
      return {};
    });
    rpc.handle('sweep.goAway', (body) => this.onGoAway(link, body.sweepId, body.sessionId, body.scope));
    rpc.handle('sweep.ack', () => ({}));
    rpc.handle('sweep.cancel', (body) => {
      const hs = this.holderSweep;
      if (hs && hs.sweepId === body.sweepId && hs.to === link.peerId) this.rollback(`the other device gave up (${body.reason})`);
      return {};
    });
    rpc.handle('sweep.update', () => {
      throw new SweepError('NOT_FOUND', 'this phone is nobody\'s far end');
    });
    rpc.handle('door.open', () => {
      throw new SweepError('NOT_FOUND', 'this phone has no door relay');
    });
    rpc.handle('sweep.invite', (body) => {
      if (link.peer?.account !== this.self.account) throw new SweepError('FORBIDDEN', 'only an endpoint of this account may push a call here (S10)');
      if ((this.call && this.call.state !== 'ended') || this.pulling || this.invite) return { accepted: false };
      this.invite = { sweepId: body.sweepId, from: link.peerId, sessionId: body.sessionId, scope: body.scope };
      this.setStatus(`${this.siblings.get(link.peerId)?.label ?? link.peerId} is sending you the call.`);
      return { accepted: true };
    });
    rpc.onNote('sweep.moved', (body) => this.onMoved(link, body.sessionId, body.epoch, body.to));
    rpc.onNote('presence.call', (body) => {
      if (link.peer?.account !== this.self.account) return;
      const prev = this.siblingCalls.get(link.peerId);
      if (body.call) {
        this.siblingCalls.set(link.peerId, body.call);
        if (prev && prev.farEnd.endpointId !== body.call.farEnd.endpointId) this.unpin(prev.farEnd.endpointId, `sibling:${link.peerId}`);
        // L3: link to the far end ahead of need while a sibling talks to it.
        this.pin(body.call.farEnd.endpointId, `sibling:${link.peerId}`);
      } else {
        this.siblingCalls.delete(link.peerId);
        this.unpinAll(`sibling:${link.peerId}`);
        if (this.invite?.from === link.peerId) this.invite = null;
      }
      this.changed();
    });
  }

  /** S3, S4 as the holder: a grant signed with the WebCrypto Ed25519 key. */
  private async onGoAway(link: BrowserLink, sweepId: string, sessionId: string, scope: SweepScope) {
    const from = link.peer!;
    if (from.account !== this.self.account) throw new SweepError('FORBIDDEN', 'only an endpoint of this account may take the call (S3)');
    const call = this.call;
    if (!call || call.sessionId !== sessionId || call.state === 'ended') throw new SweepError('NOT_FOUND', `no call ${sessionId} here`);
    if (call.state === 'sweeping' || this.holderSweep) throw new SweepError('BUSY', 'another sweep of this call is in progress (S12)');
    if (call.state !== 'active') throw new SweepError('BAD_STATE', `call is ${call.state}, not active`);
    const grant: GrantPayload = {
      sessionId,
      from: this.self.endpointId,
      to: link.peerId,
      epoch: call.epoch + 1,
      nonce: randomB64u(12),
      expiresAt: Date.now() + this.sweepTimeoutMs,
    };
    const token = await signToken(grant, this.opts.id.signing.privateKey);
    if (this.call !== call || call.state !== 'active' || this.holderSweep) throw new SweepError('BUSY', 'the call changed while the grant was signed');
    this.holderSweep = { sweepId, to: link.peerId, scope, timer: setTimeout(() => this.rollback('no confirmation from the far end in time'), this.sweepTimeoutMs) };
    this.apply(call, 'giveAway', `Moving the call to ${this.siblings.get(link.peerId)?.label ?? link.peerId}… (you keep talking until it is there)`);
    const session: SessionState = {
      sessionId,
      farEnd: call.peer,
      epoch: call.epoch,
      codec: 'opus/48000/1',
      startedAt: call.startedAt ?? Date.now(),
      onHold: call.onHold,
      muted: call.muted,
      doorRights: call.doorRights,
    };
    return { sweepId, session, grant: token };
  }

  /** S7 at the old holder: the far end has the new holder's audio; our leg ends. */
  private onMoved(link: BrowserLink, sessionId: string, epoch: number, to: string): void {
    const call = this.call;
    if (!call || call.sessionId !== sessionId || call.peer.endpointId !== link.peerId || call.peer.account !== link.peer?.account || epoch <= call.epoch) {
      this.opts.log.warn({ sessionId, from: link.peerId }, 'sweep.moved that does not match our call; ignored');
      return;
    }
    if (this.holderSweep) clearTimeout(this.holderSweep.timer);
    this.holderSweep = undefined;
    this.apply(call, 'moved', `The call moved to ${this.siblings.get(to)?.label ?? to}.`);
  }

  /** S8: the sweep failed; we keep the call, never on hold. */
  private rollback(reason: string): void {
    const hs = this.holderSweep;
    if (!hs) return;
    clearTimeout(hs.timer);
    this.holderSweep = undefined;
    const call = this.call;
    if (call && call.state === 'sweeping') this.apply(call, 'rollback', `The call stays here: ${reason}.`);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private get sweepTimeoutMs(): number {
    return this.opts.sweepTimeoutMs ?? 3000;
  }

  private adopt(call: WebCall, s: SessionState): void {
    call.sessionId = s.sessionId;
    call.peer = s.farEnd;
    call.epoch = s.epoch;
    call.startedAt = s.startedAt;
    call.muted = s.muted;
    call.onHold = s.onHold;
    call.doorRights = s.doorRights;
  }

  /** Resolves with performance.now() when the first far-end audio frame since `since` was played (RTCRtpReceiver sync sources). */
  private firstAudio(link: BrowserLink, since: number, timeoutMs: number): Promise<number> {
    const receiver = link.audio.receiver;
    const before = new Map(receiver.getSynchronizationSources().map((s) => [s.source, s.timestamp]));
    return new Promise<number>((resolve, reject) => {
      const deadline = since + timeoutMs + 2000;
      const poll = setInterval(() => {
        const now = performance.now();
        const fresh = receiver.getSynchronizationSources().some((s) => before.get(s.source) !== s.timestamp);
        if (fresh) {
          clearInterval(poll);
          resolve(now);
        } else if (now > deadline || link.isClosed) {
          clearInterval(poll);
          reject(new SweepError('TIMEOUT', `no audio from ${link.peerId} after the sweep`));
        }
      }, 2);
    });
  }

  private apply(call: WebCall, event: CallEvent, text?: string): void {
    const before = call.state;
    call.state = transition(before, event);
    if (call.state === 'ended') this.onEnded(call);
    if (text) this.status = { text };
    if (call.state !== before && (call.state === 'active' || call.state === 'ended')) this.announce();
    // L3/L4: the link to our own call's far end is kept (rebuilt if it dies) while the call lasts.
    if (call.state === 'active' && before !== 'active') this.pin(call.peer.endpointId, 'call');
    if (call.state === 'ended') this.unpin(call.peer.endpointId, 'call');
    this.changed();
  }

  private onEnded(call: WebCall): void {
    if (this.holderSweep) clearTimeout(this.holderSweep.timer);
    this.holderSweep = undefined;
    void this.link(call.peer.endpointId)?.setSending(null);
  }

  private presenceCall(): SiblingCall | null {
    const c = this.call;
    if (!c || (c.state !== 'active' && c.state !== 'sweeping')) return null;
    return { sessionId: c.sessionId, farEnd: c.peer, epoch: c.epoch };
  }

  /** L3: tell siblings which far end we are in a call with. */
  private announce(): void {
    const call = this.presenceCall();
    for (const l of this.links.values()) if (l.peer?.account === this.self.account && !l.isClosed) l.rpc.notify('presence.call', { call });
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

/** C5: how long a sibling's call is remembered after its link died, so it can be taken over (S9). */
const LINK_LOSS_GRACE_MS = 10_000;

/** A refusal in words a resident understands, with its code kept for support. */
export function explain(e: { code: string; message: string }): string {
  const plain: Record<string, string> = {
    FORBIDDEN: 'not allowed for this account',
    UNAUTHORIZED: 'not authorised',
    OFFLINE: 'the device is offline',
    TIMEOUT: 'no answer in time',
    BUSY: 'another move of this call is in progress',
    NOT_FOUND: 'that call is no longer there',
    STALE_EPOCH: 'the call moved meanwhile',
    REFUSED: 'refused',
    BAD_STATE: 'not possible right now',
    RATE_LIMITED: 'too many attempts, wait a moment',
    CLOSED: 'the connection closed',
    UNKNOWN_TYPE: 'the other device cannot do this',
  };
  return `${plain[e.code] ?? 'failed'} (${e.code}: ${e.message})`;
}
