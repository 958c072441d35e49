import { randomBytes, type KeyObject } from 'node:crypto';
import type { CertificatePayload } from '../../platform/certificate.ts';
import type { Party, SessionState, SweepScope } from '../../core/protocol/peer.ts';
import type { Link } from '../p2p/link.ts';
import type { LinkManager } from '../p2p/link-manager.ts';
import type { PeerTransport } from '../p2p/transport.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import type { EventBus } from '../../core/bus.ts';
import type { Clock, TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';
import { transition, type CallEvent, type CallState } from '../../core/session/call-state.ts';
import type { CallSnapshot, EndpointEvents, SweepOutcome, SweepRole, SweepStep } from '../../core/session/events.ts';
import { checkUpdate, issueGrant, NonceSet } from './sweep-rules.ts';

/** What the call manager needs from the media engine. */
export interface MediaPort {
  attach(t: PeerTransport): void;
  detach(t: PeerTransport): void;
  setSendTargets(ts: PeerTransport[]): void;
  setPlayback(t: PeerTransport | null): void;
  /** Fires once, at the next audio packet that arrives from `t`. */
  onFirstAudio(t: PeerTransport, fn: () => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface CallManagerOptions {
  self: { account: string; endpointId: string; label: string };
  /** Accounts this endpoint accepts calls from besides its own (its buddies, P5). */
  isBuddy: (account: string) => boolean;
  signingKey: KeyObject;
  links: LinkManager;
  media: MediaPort;
  bus: EventBus<EndpointEvents>;
  clock: Clock;
  log: Logger;
  /** S4/S8: grant lifetime and every sweep step's deadline. */
  sweepTimeoutMs?: number;
  /** C1: an outgoing call nobody answers ends after this long. */
  ringTimeoutMs?: number;
  /** C5: how long a call outlives the link to its other party. */
  linkLossGraceMs?: number;
  /** S10: accept pushed sweeps at once (a simulated phone) or ask the user. */
  sweepInvites?: 'auto' | 'ask';
  /** S10: how long a pushed sweep rings here ('ask') before the sender is told "not answered". */
  inviteTimeoutMs?: number;
  /** Preferred push targets, in order (config); otherwise any online sibling. */
  pushPreference?: string[];
  /** S11: called after a sweep with scope "login" moved our call away. */
  onLoginSwept?: () => void;
}

interface Call {
  sessionId: string;
  state: CallState;
  direction: 'in' | 'out';
  peer: Party;
  /** The other party's verified certificate: the holder's signing key at the far end (S6). */
  peerCert: CertificatePayload | undefined;
  epoch: number;
  startedAt: number | null;
  doorRights: boolean;
  muted: boolean;
  onHold: boolean;
  /** The link this call runs on; the C5 timer watches this link, never "any link to that id" (L6). */
  link: Link | undefined;
  /** The other party's instance (L6): a link from another instance means it restarted. */
  peerInstance: string | undefined;
  /** The ring timer while ringing out (C1), then the link-loss timer (C5). */
  lossTimer?: TimerHandle;
}

interface HolderSweep {
  sweepId: string;
  sessionId: string;
  to: string;
  scope: SweepScope;
  timer: TimerHandle;
  timeline: Timeline;
}

interface FarEndMove {
  sweepId: string;
  oldHolder: Party;
  oldCert: CertificatePayload | undefined;
  oldLink: Link | undefined;
  oldInstance: string | undefined;
  oldEpoch: number;
  newTransport: PeerTransport;
  timer: TimerHandle;
  timeline: Timeline;
}

interface SiblingCall {
  sessionId: string;
  farEnd: Party;
  epoch: number;
}

interface KnownSiblingCall extends SiblingCall {
  /** Set while the sibling's link is down: the call is remembered for the C5 grace (S9). */
  lostTimer?: TimerHandle;
}

interface PendingInvite {
  from: string;
  fromLabel: string;
  sessionId: string;
  scope: SweepScope;
  answer: (accepted: boolean, reason: string) => void;
  timer: TimerHandle;
}

class Timeline {
  readonly startedAtMono: number;
  readonly steps: SweepStep[] = [];
  constructor(
    private readonly clock: Clock,
    private readonly emit: (step: string, ms: number) => void,
    startedAtMono?: number,
  ) {
    this.startedAtMono = startedAtMono ?? clock.mono();
  }
  mark(step: string): void {
    const ms = Math.round((this.clock.mono() - this.startedAtMono) * 100) / 100;
    this.steps.push({ step, ms });
    this.emit(step, ms);
  }
}

/**
 * Calls and sweeps on one endpoint (docs/protocol.md parts C and S). It plays every role of a
 * sweep: holder (E1), far end (E2) and newcomer (E3). One call at a time (C2).
 */
export class CallManager {
  private call: Call | undefined;
  private holderSweep: HolderSweep | undefined;
  private farEndMove: FarEndMove | undefined;
  private newcomerSweepId: string | undefined;
  private readonly siblingCalls = new Map<string, KnownSiblingCall>();
  private readonly nonces = new NonceSet();
  private readonly pendingInvites = new Map<string, PendingInvite>();
  private closed = false;

  constructor(private readonly opts: CallManagerOptions) {
    opts.links.onLinkCreated((link) => this.registerHandlers(link));
    opts.links.onLinkReady((link) => this.onLinkReady(link));
    opts.links.onLinkClosed((peerId, reason, link) => this.onLinkClosed(peerId, reason, link));
  }

  // ---- queries ---------------------------------------------------------------------------

  snapshot(): CallSnapshot | null {
    const c = this.call;
    if (!c) return null;
    return {
      sessionId: c.sessionId,
      state: c.state,
      direction: c.direction,
      peer: c.peer,
      epoch: c.epoch,
      startedAt: c.startedAt,
      doorRights: c.doorRights,
      muted: c.muted,
      onHold: c.onHold,
    };
  }

  /** Siblings' calls as they told us (S1, L3). */
  siblingCallsSnapshot(): Array<{ endpointId: string } & SiblingCall> {
    return [...this.siblingCalls].map(([endpointId, c]) => ({ endpointId, sessionId: c.sessionId, farEnd: c.farEnd, epoch: c.epoch }));
  }

  /** Pushed sweeps waiting for the user to accept them (S10, 'ask'). */
  pendingInvitesSnapshot(): Array<{ sweepId: string; from: string; fromLabel: string; sessionId: string }> {
    return [...this.pendingInvites].map(([sweepId, i]) => ({ sweepId, from: i.from, fromLabel: i.fromLabel, sessionId: i.sessionId }));
  }

  /** Whether a call or sweep uses the link to `peerId` (idle links are closed, L3). */
  usesPeer(peerId: string): boolean {
    if (this.call && this.call.state !== 'ended' && this.call.peer.endpointId === peerId) return true;
    if (this.holderSweep?.to === peerId) return true;
    if (this.farEndMove?.oldHolder.endpointId === peerId) return true;
    return this.siblingCalls.has(peerId);
  }

  // ---- user actions ----------------------------------------------------------------------

  /** C1: calls `peerId`; resolves once it rings there. */
  async placeCall(peerId: string, opts: { doorRights?: boolean } = {}): Promise<CallSnapshot> {
    this.assertNoCall();
    const link = await this.opts.links.get(peerId);
    const cert = link.peer!;
    this.assertNoCall();
    const call: Call = {
      sessionId: randomBytes(9).toString('base64url'),
      state: 'idle',
      direction: 'out',
      peer: partyOf(cert),
      peerCert: cert,
      link,
      peerInstance: link.peerInstance,
      epoch: 0,
      startedAt: null,
      doorRights: opts.doorRights ?? false,
      muted: false,
      onHold: false,
    };
    this.call = call;
    this.apply(call, 'invite');
    try {
      await link.rpc.request('call.invite', { sessionId: call.sessionId, doorRights: call.doorRights });
    } catch (err) {
      const e = toSweepError(err);
      if (this.call === call && call.state === 'ringing') this.apply(call, 'reject', `refused: ${e.code} ${e.message}`);
      throw e;
    }
    const ringMs = this.opts.ringTimeoutMs ?? 60_000;
    call.lossTimer = this.opts.clock.setTimeout(() => {
      delete call.lossTimer;
      if (this.call === call && call.state === 'ringing') {
        this.hangup('no answer').catch((err: unknown) => this.opts.log.debug({ err: toSweepError(err).message }, 'no-answer hangup failed'));
      }
    }, ringMs);
    return this.snapshot()!;
  }

  /** C1: answers the ringing incoming call. */
  async answer(): Promise<CallSnapshot> {
    const call = this.call;
    if (!call || call.state !== 'ringing' || call.direction !== 'in') {
      throw new SweepError('BAD_STATE', 'no incoming call is ringing');
    }
    const link = this.requireLink(call);
    const res = await link.rpc.request('call.answer', { sessionId: call.sessionId });
    if (this.call !== call || call.state !== 'ringing') throw new SweepError('BAD_STATE', 'the call ended while answering');
    call.startedAt = res.startedAt;
    this.apply(call, 'answer');
    await this.startMedia(link.transport);
    return this.snapshot()!;
  }

  async reject(reason = 'rejected'): Promise<void> {
    const call = this.call;
    if (!call || call.state !== 'ringing' || call.direction !== 'in') throw new SweepError('BAD_STATE', 'no incoming call is ringing');
    this.apply(call, 'reject', reason);
    await this.liveLink(call)
      ?.rpc.request('call.reject', { sessionId: call.sessionId, reason })
      .catch((err: unknown) => this.opts.log.debug({ err: toSweepError(err).message }, 'reject not delivered'));
  }

  /** C1: ends the call (any state but idle). */
  async hangup(reason = 'hung up'): Promise<void> {
    const call = this.call;
    if (!call || call.state === 'ended') throw new SweepError('BAD_STATE', 'there is no call to hang up');
    this.apply(call, 'hangup', reason);
    await this.liveLink(call)
      ?.rpc.request('call.hangup', { sessionId: call.sessionId, reason })
      .catch((err: unknown) => this.opts.log.debug({ err: toSweepError(err).message }, 'hangup not delivered'));
  }

  setMuted(muted: boolean): void {
    const call = this.call;
    if (!call || (call.state !== 'active' && call.state !== 'sweeping')) throw new SweepError('BAD_STATE', 'no call to mute');
    call.muted = muted;
    const link = this.liveLink(call);
    this.opts.media.setSendTargets(muted || !link ? [] : [link.transport]);
    this.emitState(call);
  }

  /**
   * S3–S7 as the newcomer: pulls the call from a sibling. Resolves when the far end's audio
   * arrives here; rejects (and the holder keeps the call, S8) otherwise.
   */
  async pull(opts: { from?: string; sweepId?: string; scope?: SweepScope; startedAtMono?: number } = {}): Promise<CallSnapshot> {
    if (this.call && this.call.state !== 'ended') throw new SweepError('BAD_STATE', `this endpoint already has a call (${this.call.state})`);
    if (this.newcomerSweepId) throw new SweepError('BUSY', 'a sweep is already in progress here');
    const holderId = opts.from ?? this.siblingCalls.keys().next().value;
    if (!holderId) throw new SweepError('NOT_FOUND', 'no endpoint of this account is in a call');
    const known = this.siblingCalls.get(holderId);
    const sweepId = opts.sweepId ?? randomBytes(9).toString('base64url');
    const scope = opts.scope ?? 'session';
    const timeoutMs = this.sweepTimeoutMs;
    const timeline = new Timeline(this.opts.clock, (step, ms) => this.emitStep(sweepId, 'newcomer', step, ms), opts.startedAtMono);
    this.newcomerSweepId = sweepId;
    const placeholder: Call = {
      sessionId: known?.sessionId ?? sweepId,
      state: 'idle',
      direction: 'in',
      peer: known?.farEnd ?? { account: this.opts.self.account, endpointId: holderId, label: '' },
      peerCert: undefined,
      link: undefined,
      peerInstance: undefined,
      epoch: known?.epoch ?? 0,
      startedAt: null,
      doorRights: false,
      muted: false,
      onHold: false,
    };
    this.call = placeholder;
    this.apply(placeholder, 'takeOver');
    let holderLink: Link | undefined;
    try {
      let session: SessionState;
      let grant: string | null;
      try {
        holderLink = await this.opts.links.get(holderId);
        timeline.mark('goAway');
        const info = await holderLink.rpc.request(
          'sweep.goAway',
          { sweepId, sessionId: known?.sessionId ?? sweepId, scope },
          { timeoutMs },
        );
        timeline.mark('sessionInfo');
        session = info.session;
        grant = info.grant;
        holderLink.rpc
          .request('sweep.ack', { sweepId }, { timeoutMs })
          .catch((err: unknown) => this.opts.log.debug({ err: toSweepError(err).message }, 'ack not delivered'));
      } catch (err) {
        const e = toSweepError(err);
        // S9: the holder is gone; take the call over without a grant if we know it.
        if (!known || (e.code !== 'CLOSED' && e.code !== 'TIMEOUT' && e.code !== 'OFFLINE')) throw e;
        this.opts.log.warn({ sweepId, holder: holderId, reason: e.message }, 'holder unreachable: trying a takeover without grant (S9)');
        timeline.mark('holderLost');
        session = {
          sessionId: known.sessionId,
          farEnd: known.farEnd,
          epoch: known.epoch,
          codec: 'opus/48000/1',
          startedAt: this.opts.clock.now(),
          onHold: false,
          muted: false,
          doorRights: false,
        };
        grant = null;
      }
      placeholder.sessionId = session.sessionId;
      placeholder.peer = session.farEnd;
      placeholder.epoch = session.epoch;
      placeholder.startedAt = session.startedAt;
      placeholder.muted = session.muted;
      placeholder.onHold = session.onHold;
      placeholder.doorRights = session.doorRights;

      const farLink = await this.opts.links.get(session.farEnd.endpointId);
      if (farLink.peer?.account !== session.farEnd.account) {
        throw new SweepError('FORBIDDEN', `far end ${session.farEnd.endpointId} is not of account ${session.farEnd.account}`);
      }
      this.opts.media.attach(farLink.transport);
      const firstAudio = new Promise<void>((resolve) => this.opts.media.onFirstAudio(farLink.transport, resolve));
      timeline.mark('update');
      const update = { sweepId, sessionId: session.sessionId, epoch: session.epoch + 1, grant };
      const deadline = this.opts.clock.mono() + timeoutMs;
      let res;
      for (;;) {
        try {
          res = await farLink.rpc.request('sweep.update', update, { timeoutMs });
          break;
        } catch (err) {
          // S9: the far end may not have seen the holder's link die yet; ask again until the deadline.
          const e = toSweepError(err);
          if (grant !== null || e.code !== 'UNAUTHORIZED' || this.opts.clock.mono() + 200 > deadline) throw e;
          await new Promise<void>((r) => this.opts.clock.setTimeout(r, 200));
        }
      }
      timeline.mark('updateResponse');
      if (this.call !== placeholder) throw new SweepError('BAD_STATE', 'the call was ended during the sweep');
      placeholder.epoch = res.epoch;
      placeholder.doorRights = res.doorRights;
      placeholder.peerCert = farLink.peer;
      placeholder.link = farLink;
      placeholder.peerInstance = farLink.peerInstance;
      this.apply(placeholder, 'completed');
      await this.startMedia(farLink.transport);
      await this.withTimeout(firstAudio, timeoutMs, 'no audio from the far end after the sweep');
      timeline.mark('firstFarEndAudio');
      this.finish(sweepId, 'newcomer', 'completed', timeline);
      return this.snapshot()!;
    } catch (err) {
      const e = toSweepError(err);
      timeline.mark('failed');
      if (holderLink && !holderLink.isClosed) {
        holderLink.rpc
          .request('sweep.cancel', { sweepId, reason: `${e.code}: ${e.message}` })
          .catch((cancelErr: unknown) => this.opts.log.debug({ err: toSweepError(cancelErr).message }, 'cancel not delivered'));
      }
      if (this.call === placeholder && placeholder.state === 'sweeping') this.apply(placeholder, 'abandon', `sweep failed: ${e.message}`);
      this.finish(sweepId, 'newcomer', 'refused', timeline, e);
      throw e;
    } finally {
      this.newcomerSweepId = undefined;
    }
  }

  /** S10 as the holder: asks a sibling to pull our call. Resolves when it accepted. */
  async push(opts: { to?: string; scope?: SweepScope } = {}): Promise<{ sweepId: string; to: string; startedAtMono: number }> {
    const call = this.call;
    if (!call || call.state !== 'active') throw new SweepError('BAD_STATE', 'there is no active call to sweep');
    const to = opts.to ?? this.choosePushTarget();
    const startedAtMono = this.opts.clock.mono();
    const sweepId = randomBytes(9).toString('base64url');
    const link = await this.opts.links.get(to);
    if (link.peer?.account !== this.opts.self.account) throw new SweepError('FORBIDDEN', `${to} is not an endpoint of this account`);
    const where = link.peer.label || to;
    this.emitStep(sweepId, 'holder', 'invite', 0);
    // The invitee may ring its user first (S10, 'ask'); it answers within its invite timeout.
    const timeoutMs = (this.opts.inviteTimeoutMs ?? 20_000) + 5000;
    let res;
    try {
      res = await link.rpc.request('sweep.invite', { sweepId, sessionId: call.sessionId, scope: opts.scope ?? 'session' }, { timeoutMs });
    } catch (err) {
      const e = toSweepError(err);
      if (e.code === 'TIMEOUT') throw new SweepError('REFUSED', `not answered on ${where}`);
      throw e;
    }
    if (!res.accepted) throw new SweepError('REFUSED', res.reason ? `${res.reason} on ${where}` : `declined on ${where}`);
    return { sweepId, to, startedAtMono };
  }

  /**
   * S10 when the user accepts a pushed sweep ('ask' mode): the one named, or the only one
   * pending (the panel's answer or sweep button, the lab's `a`, stdio `accept`).
   */
  async acceptInvite(sweepId?: string): Promise<CallSnapshot> {
    const [id, inv] = this.pendingInvite(sweepId);
    inv.answer(true, 'accepted');
    return this.pull({ from: inv.from, sweepId: id, scope: inv.scope });
  }

  /** S10: the user declines a pushed sweep; the sender keeps its call. */
  declineInvite(sweepId?: string): void {
    const [, inv] = this.pendingInvite(sweepId);
    inv.answer(false, 'declined');
  }

  private pendingInvite(sweepId: string | undefined): [string, PendingInvite] {
    if (sweepId !== undefined) {
      const inv = this.pendingInvites.get(sweepId);
      if (!inv) throw new SweepError('NOT_FOUND', `no pending sweep invite ${sweepId}`);
      return [sweepId, inv];
    }
    const first = [...this.pendingInvites][0];
    if (!first) throw new SweepError('NOT_FOUND', 'no call is being sent here');
    return first;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const inv of [...this.pendingInvites.values()]) inv.answer(false, 'endpoint closing');
    if (this.holderSweep) this.opts.clock.clear(this.holderSweep.timer);
    if (this.farEndMove) this.opts.clock.clear(this.farEndMove.timer);
    if (this.call?.lossTimer) this.opts.clock.clear(this.call.lossTimer);
    if (this.call && this.call.state !== 'ended') this.apply(this.call, 'hangup', 'endpoint closing');
  }

  // ---- inbound ---------------------------------------------------------------------------

  private registerHandlers(link: Link): void {
    const rpc = link.rpc;
    const peer = (): CertificatePayload => link.peer!; // admitted only after hello (P2)

    rpc.handle('call.invite', (body) => {
      const from = peer();
      if (from.account !== this.opts.self.account && !this.opts.isBuddy(from.account)) {
        throw new SweepError('FORBIDDEN', `account ${from.account} is not a buddy of ${this.opts.self.account} (P5)`);
      }
      this.endOldInstanceCall(link);
      if (this.call && this.call.state !== 'ended') throw new SweepError('BUSY', `${this.opts.self.endpointId} is in a call (C2)`);
      const call: Call = {
        sessionId: body.sessionId,
        state: 'idle',
        direction: 'in',
        peer: partyOf(from),
        peerCert: from,
        link,
        peerInstance: link.peerInstance,
        epoch: 0,
        startedAt: null,
        doorRights: body.doorRights,
        muted: false,
        onHold: false,
      };
      this.call = call;
      this.apply(call, 'invite');
      return {};
    });

    rpc.handle('call.answer', async (body) => {
      const call = this.callWith(body.sessionId, link);
      if (call.state !== 'ringing' || call.direction !== 'out') throw new SweepError('BAD_STATE', `call is ${call.state}, not ringing out`);
      if (call.lossTimer) {
        this.opts.clock.clear(call.lossTimer); // the ring timer
        delete call.lossTimer;
      }
      call.startedAt = this.opts.clock.now();
      call.link = link;
      this.apply(call, 'answer');
      await this.startMedia(link.transport);
      return { startedAt: call.startedAt };
    });

    rpc.handle('call.reject', (body) => {
      const call = this.callWith(body.sessionId, link);
      this.apply(call, 'reject', `rejected: ${body.reason}`);
      return {};
    });

    rpc.handle('call.hangup', (body) => {
      const call = this.callWith(body.sessionId, link);
      if (call.state !== 'ended') this.apply(call, 'hangup', `far end hung up: ${body.reason}`);
      return {};
    });

    rpc.handle('call.resume', (body) => this.onResume(link, body.sessionId, body.epoch));

    rpc.handle('sweep.goAway', (body) => this.onGoAway(link, body.sweepId, body.sessionId, body.scope));

    rpc.handle('sweep.ack', (body) => {
      if (this.holderSweep?.sweepId === body.sweepId) this.holderSweep.timeline.mark('ack');
      return {};
    });

    rpc.handle('sweep.cancel', (body) => {
      const hs = this.holderSweep;
      if (hs && hs.sweepId === body.sweepId && hs.to === link.peerId) this.rollback(`newcomer cancelled: ${body.reason}`);
      return {};
    });

    rpc.handle('sweep.update', (body) => this.onUpdate(link, body));

    rpc.handle('sweep.invite', (body) => {
      const from = peer();
      if (from.account !== this.opts.self.account) throw new SweepError('FORBIDDEN', 'only an endpoint of this account may push a call here (S10)');
      if ((this.call && this.call.state !== 'ended') || this.newcomerSweepId) return { accepted: false, reason: 'busy' };
      if (this.pendingInvites.has(body.sweepId)) throw new SweepError('BUSY', `sweep ${body.sweepId} is already ringing here`);
      if ((this.opts.sweepInvites ?? 'ask') === 'auto') {
        // Answer first, then pull (the push is a pull triggered by the holder).
        this.opts.clock.setTimeout(() => {
          this.pull({ from: link.peerId, sweepId: body.sweepId, scope: body.scope }).catch((err: unknown) =>
            this.opts.log.warn({ err: toSweepError(err).message, sweepId: body.sweepId }, 'pushed sweep failed'),
          );
        }, 0);
        return { accepted: true };
      }
      // S10 'ask': ring here; the answer goes back when the user accepts or declines, or the invite times out.
      return new Promise<{ accepted: boolean; reason?: string }>((resolve) => {
        const sweepId = body.sweepId;
        const answer = (accepted: boolean, reason: string): void => {
          if (this.pendingInvites.get(sweepId) !== invite) return;
          this.pendingInvites.delete(sweepId);
          this.opts.clock.clear(invite.timer);
          this.opts.bus.emit('sweep.inviteEnded', { sweepId, reason });
          resolve(accepted ? { accepted } : { accepted, reason });
        };
        const invite: PendingInvite = {
          from: link.peerId,
          fromLabel: from.label,
          sessionId: body.sessionId,
          scope: body.scope,
          answer,
          timer: this.opts.clock.setTimeout(() => answer(false, 'not answered'), this.opts.inviteTimeoutMs ?? 20_000),
        };
        this.pendingInvites.set(sweepId, invite);
        link.onClosed(() => answer(false, 'sender gone'));
        this.opts.bus.emit('sweep.invited', { sweepId, from: link.peerId, fromLabel: from.label, sessionId: body.sessionId });
      });
    });

    rpc.onNote('sweep.moved', (body) => this.onMoved(link, body.sessionId, body.epoch, body.to));

    rpc.onNote('presence.call', (body) => {
      if (link.peer?.account !== this.opts.self.account) return; // only siblings tell us their calls
      const prev = this.siblingCalls.get(link.peerId);
      if (prev?.lostTimer) this.opts.clock.clear(prev.lostTimer);
      if (body.call) {
        this.siblingCalls.set(link.peerId, { ...body.call });
        if (prev && prev.farEnd.endpointId !== body.call.farEnd.endpointId) this.opts.links.unpin(prev.farEnd.endpointId, `sibling:${link.peerId}`);
        // L3: link to the far end ahead of need while a sibling talks to it.
        if (body.call.farEnd.endpointId !== this.opts.self.endpointId) this.opts.links.pin(body.call.farEnd.endpointId, `sibling:${link.peerId}`);
      } else {
        this.siblingCalls.delete(link.peerId);
        this.opts.links.unpinAll(`sibling:${link.peerId}`);
      }
      this.opts.bus.emit('sibling.call', { endpointId: link.peerId, call: body.call });
    });
  }

  /** L7: the same certified endpoint (a reloaded page) takes its own call back over its new link. */
  private onResume(link: Link, sessionId: string, epoch: number) {
    const call = this.callWith(sessionId, link);
    if (call.state !== 'active' || this.farEndMove) throw new SweepError('BAD_STATE', `call is ${this.farEndMove ? 'moving' : call.state}, not active`);
    if (epoch !== call.epoch) throw new SweepError('STALE_EPOCH', `the call is at epoch ${call.epoch}, not ${epoch}: it moved meanwhile`);
    if (call.link && call.link !== link && !call.link.isClosed) call.link.close('the endpoint reclaimed its call over a new link (L7)');
    this.carryOn(call, link);
    this.opts.log.info({ sessionId, peer: link.peerId }, 'call resumed by a new instance of its party (L7)');
    this.emitState(call, 'resumed');
    return { sessionId, epoch: call.epoch, doorRights: call.doorRights, startedAt: call.startedAt };
  }

  /** S3, S4 as the holder. */
  private onGoAway(link: Link, sweepId: string, sessionId: string, scope: SweepScope) {
    const from = link.peer!;
    if (from.account !== this.opts.self.account) throw new SweepError('FORBIDDEN', 'only an endpoint of this account may take the call (S3)');
    const call = this.call;
    if (!call || call.sessionId !== sessionId || call.state === 'ended') throw new SweepError('NOT_FOUND', `no call ${sessionId} here`);
    if (call.state === 'sweeping' || this.holderSweep) throw new SweepError('BUSY', 'another sweep of this call is in progress (S12)');
    if (call.state !== 'active') throw new SweepError('BAD_STATE', `call is ${call.state}, not active`);
    const timeline = new Timeline(this.opts.clock, (step, ms) => this.emitStep(sweepId, 'holder', step, ms));
    timeline.mark('goAway');
    const { token } = issueGrant(
      { sessionId, from: this.opts.self.endpointId, to: link.peerId, epoch: call.epoch + 1, now: this.opts.clock.now(), ttlMs: this.sweepTimeoutMs },
      this.opts.signingKey,
    );
    this.apply(call, 'giveAway');
    this.holderSweep = {
      sweepId,
      sessionId,
      to: link.peerId,
      scope,
      timeline,
      // S8: without `moved` in time the holder simply keeps the call.
      timer: this.opts.clock.setTimeout(() => this.rollback('no confirmation from the far end in time'), this.sweepTimeoutMs),
    };
    timeline.mark('sessionInfo');
    const session: SessionState = {
      sessionId,
      farEnd: call.peer,
      epoch: call.epoch,
      codec: 'opus/48000/1',
      startedAt: call.startedAt ?? this.opts.clock.now(),
      onHold: call.onHold,
      muted: call.muted,
      doorRights: call.doorRights,
    };
    return { sweepId, session, grant: token };
  }

  /** S6, S7, S9 as the far end. */
  private onUpdate(link: Link, body: { sweepId: string; sessionId: string; epoch: number; grant: string | null }) {
    const call = this.call;
    if (!call || call.sessionId !== body.sessionId || call.state === 'ended') throw new SweepError('NOT_FOUND', `no call ${body.sessionId} here`);
    if (call.state !== 'active') throw new SweepError('BAD_STATE', `call is ${call.state}, not active`);
    if (!call.peerCert) throw new SweepError('BAD_STATE', 'the holder of this call is not known');
    // S9, L5: the holder is reachable while the link the call runs on is alive.
    const holderLink = this.liveLink(call);
    const nonce = checkUpdate({
      sessionId: call.sessionId,
      currentEpoch: call.epoch,
      holder: call.peerCert,
      holderReachable: holderLink !== undefined,
      sender: link.peer!,
      update: body,
      now: this.opts.clock.now(),
      nonceSeen: (n) => this.nonces.has(n),
    });
    if (nonce) this.nonces.add(nonce);
    const timeline = new Timeline(this.opts.clock, (step, ms) => this.emitStep(body.sweepId, 'farEnd', step, ms));
    timeline.mark('updateAccepted');
    const move: FarEndMove = {
      sweepId: body.sweepId,
      oldHolder: call.peer,
      oldCert: call.peerCert,
      oldLink: call.link,
      oldInstance: call.peerInstance,
      oldEpoch: call.epoch,
      newTransport: link.transport,
      timeline,
      timer: this.opts.clock.setTimeout(() => this.revertMove(move), this.sweepTimeoutMs),
    };
    if (this.farEndMove) this.opts.clock.clear(this.farEndMove.timer);
    this.farEndMove = move;
    call.epoch = body.epoch;
    call.peer = partyOf(link.peer!);
    call.peerCert = link.peer;
    this.bindLink(call, link);
    // S7: make before break — send to both, keep playing the old holder until the new one is heard.
    this.opts.media.attach(link.transport);
    this.opts.media.setSendTargets(holderLink ? [holderLink.transport, link.transport] : [link.transport]);
    this.opts.media.onFirstAudio(link.transport, () => this.completeMove(move));
    this.emitState(call);
    return { sessionId: call.sessionId, epoch: call.epoch, doorRights: call.doorRights };
  }

  private completeMove(move: FarEndMove): void {
    if (this.farEndMove !== move) return;
    this.opts.clock.clear(move.timer);
    this.farEndMove = undefined;
    move.timeline.mark('newHolderAudio');
    this.opts.media.setPlayback(move.newTransport);
    this.opts.media.setSendTargets(this.call?.muted ? [] : [move.newTransport]);
    const old = move.oldLink && !move.oldLink.isClosed ? move.oldLink : undefined;
    if (old && this.call) {
      old.rpc.notify('sweep.moved', { sessionId: this.call.sessionId, epoch: this.call.epoch, to: this.call.peer.endpointId });
      this.opts.links.touch(move.oldHolder.endpointId);
    }
    move.timeline.mark('moved');
    this.finish(move.sweepId, 'farEnd', 'completed', move.timeline);
  }

  /** S8 at the far end: the new holder's audio never came; the old holder keeps the call. */
  private revertMove(move: FarEndMove): void {
    if (this.farEndMove !== move || !this.call) return;
    this.farEndMove = undefined;
    const call = this.call;
    const newcomerLink = this.liveLink(call);
    call.peer = move.oldHolder;
    call.peerCert = move.oldCert;
    call.link = move.oldLink;
    call.peerInstance = move.oldInstance;
    // S13: the abandoned epoch is given back, so the holder's next grant (its epoch + 1) fits
    // again; the abandoned grant's nonce stays spent, so it cannot be replayed.
    call.epoch = move.oldEpoch;
    const old = this.liveLink(call);
    this.opts.media.setSendTargets(old ? [old.transport] : []);
    newcomerLink?.rpc.request('call.hangup', { sessionId: call.sessionId, reason: 'no audio from you after the sweep' }).catch(() => undefined);
    move.timeline.mark('reverted');
    this.finish(move.sweepId, 'farEnd', 'rolledBack', move.timeline, new SweepError('TIMEOUT', 'no audio from the new holder'));
    this.emitState(call);
    if (!old) this.startLossTimer(call);
  }

  /** S7 at the old holder. */
  private onMoved(link: Link, sessionId: string, epoch: number, to: string): void {
    const call = this.call;
    if (!call || call.sessionId !== sessionId || !sameParty(call.peer, link) || epoch <= call.epoch) {
      this.opts.log.warn({ sessionId, from: link.peerId }, 'sweep.moved that does not match our call; ignored');
      return;
    }
    const hs = this.holderSweep;
    this.holderSweep = undefined;
    if (hs) {
      this.opts.clock.clear(hs.timer);
      hs.timeline.mark('moved');
    }
    this.apply(call, 'moved', `swept to ${to}`);
    if (hs) this.finish(hs.sweepId, 'holder', 'moved', hs.timeline);
    if (hs?.scope === 'login') this.opts.onLoginSwept?.(); // S11
  }

  private rollback(reason: string): void {
    const hs = this.holderSweep;
    if (!hs) return;
    this.holderSweep = undefined;
    this.opts.clock.clear(hs.timer);
    hs.timeline.mark('rolledBack');
    const call = this.call;
    if (call && call.sessionId === hs.sessionId && call.state === 'sweeping') this.apply(call, 'rollback', reason);
    this.finish(hs.sweepId, 'holder', 'rolledBack', hs.timeline, new SweepError('REFUSED', reason));
  }

  private onLinkReady(link: Link): void {
    this.opts.bus.emit('link.state', { peerId: link.peerId, up: true });
    this.endOldInstanceCall(link);
    const sibling = this.siblingCalls.get(link.peerId);
    if (sibling && link.peer?.account === this.opts.self.account) {
      // The sibling is back: it will tell its call again (L3), whatever we remembered is stale.
      if (sibling.lostTimer) this.opts.clock.clear(sibling.lostTimer);
      this.forgetSiblingCall(link.peerId);
    }
    // L3: a sibling learns our call as soon as we are linked.
    if (link.peer?.account === this.opts.self.account) link.rpc.notify('presence.call', { call: this.presenceCall() });
  }

  /**
   * L6: a ready link from the other party of our call. From a new instance of it, the party
   * restarted and our call with its old instance is over ("peer restarted"). From the same
   * instance, the link was rebuilt (L4): the call carries on over the new link.
   */
  private endOldInstanceCall(link: Link): void {
    const call = this.call;
    if (!call || call.state === 'ended' || !sameParty(call.peer, link) || link === call.link || this.farEndMove) return;
    if (call.peerInstance !== undefined && link.peerInstance !== call.peerInstance) {
      // L7: a new instance that says it carries this call on may reclaim it with call.resume.
      if (link.peerResume === call.sessionId) return;
      this.apply(call, call.state === 'ringing' ? 'linkLost' : 'hangup', 'peer restarted: its new instance does not know this call (L6)');
      return;
    }
    if (call.link && !call.link.isClosed) return;
    if (call.state === 'ringing') call.link = link;
    else this.carryOn(call, link);
    this.opts.log.info({ sessionId: call.sessionId, peer: link.peerId }, 'call continues over a rebuilt link (L4)');
  }

  private onLinkClosed(peerId: string, reason: string, link: Link): void {
    this.opts.bus.emit('link.state', { peerId, up: false, reason });
    const sibling = this.siblingCalls.get(peerId);
    if (sibling && !sibling.lostTimer && link.peer?.account === this.opts.self.account) {
      // C5, S9: a sibling whose link died may have crashed holding its call; remember the call for
      // the grace, so this endpoint can still take it over.
      sibling.lostTimer = this.opts.clock.setTimeout(() => this.forgetSiblingCall(peerId), this.linkLossGraceMs);
    }
    const call = this.call;
    if (!call || call.state === 'ended' || call.link !== link) return;
    if (call.state === 'ringing') {
      this.apply(call, 'linkLost', `link lost: ${reason}`);
      return;
    }
    this.startLossTimer(call);
  }

  private forgetSiblingCall(peerId: string): void {
    if (!this.siblingCalls.delete(peerId)) return;
    this.opts.links.unpinAll(`sibling:${peerId}`);
    this.opts.bus.emit('sibling.call', { endpointId: peerId, call: null });
  }

  /** C5: the call outlives its link for a grace period, so a sibling can take it over (S9). */
  private startLossTimer(call: Call): void {
    if (call.lossTimer) return;
    const linkAtLoss = call.link;
    call.lossTimer = this.opts.clock.setTimeout(() => {
      delete call.lossTimer;
      // Still on the dead link: nobody took the call over and the link was not rebuilt (L6).
      if (this.call === call && call.state !== 'ended' && call.link === linkAtLoss && (!linkAtLoss || linkAtLoss.isClosed)) {
        this.apply(call, 'linkLost', 'link lost');
      }
    }, this.linkLossGraceMs);
  }

  // ---- helpers ---------------------------------------------------------------------------

  private get sweepTimeoutMs(): number {
    return this.opts.sweepTimeoutMs ?? 3000;
  }

  private get linkLossGraceMs(): number {
    return this.opts.linkLossGraceMs ?? this.sweepTimeoutMs;
  }

  /** The call now runs on `link` (L6, L7, S7); the C5 timer for the old one stops. */
  private bindLink(call: Call, link: Link): void {
    call.link = link;
    call.peerInstance = link.peerInstance;
    if (call.lossTimer) {
      this.opts.clock.clear(call.lossTimer);
      delete call.lossTimer;
    }
  }

  /** The same party carries on over a new link (L4, L7): audio both ways moves to it. */
  private carryOn(call: Call, link: Link): void {
    this.bindLink(call, link);
    this.opts.media.attach(link.transport);
    this.opts.media.setPlayback(link.transport);
    this.opts.media.setSendTargets(call.muted ? [] : [link.transport]);
  }

  /** The link the call runs on, while it is alive (L5). */
  private liveLink(call: Call): Link | undefined {
    return call.link && !call.link.isClosed ? call.link : undefined;
  }

  private apply(call: Call, event: CallEvent, reason?: string): void {
    const before = call.state;
    call.state = transition(before, event);
    this.opts.log.info({ sessionId: call.sessionId, from: before, to: call.state, event, reason }, 'call state');
    if (call.state === 'ended') this.onEnded(call);
    this.emitState(call, reason);
    if (call.state !== before && (call.state === 'active' || call.state === 'ended')) this.announceToSiblings();
  }

  private onEnded(call: Call): void {
    if (call.lossTimer) this.opts.clock.clear(call.lossTimer);
    if (this.holderSweep?.sessionId === call.sessionId) {
      this.opts.clock.clear(this.holderSweep.timer);
      this.holderSweep = undefined;
    }
    if (this.farEndMove) {
      this.opts.clock.clear(this.farEndMove.timer);
      this.farEndMove = undefined;
    }
    this.opts.media.setSendTargets([]);
    this.opts.media.setPlayback(null);
    this.opts.media.stop().catch((err: unknown) => this.opts.log.warn({ err }, 'media stop failed'));
  }

  private emitState(call: Call, reason?: string): void {
    const snap = this.call === call ? this.snapshot() : null;
    if (snap) this.opts.bus.emit('call.state', reason ? { call: snap, reason } : { call: snap });
  }

  private emitStep(sweepId: string, role: SweepRole, step: string, ms: number): void {
    this.opts.bus.emit('sweep.step', { sweepId, role, step, ms });
  }

  private finish(sweepId: string, role: SweepRole, outcome: SweepOutcome, timeline: Timeline, err?: SweepError): void {
    this.opts.log.info({ sweepId, role, outcome, timeline: timeline.steps, reason: err?.message }, 'sweep finished');
    this.opts.bus.emit('sweep.finished', {
      sweepId,
      role,
      outcome,
      startedAtMono: timeline.startedAtMono,
      timeline: timeline.steps,
      ...(err ? { reason: err.message, code: err.code } : {}),
    });
  }

  private presenceCall(): { sessionId: string; farEnd: Party; epoch: number } | null {
    const c = this.call;
    if (!c || (c.state !== 'active' && c.state !== 'sweeping')) return null;
    return { sessionId: c.sessionId, farEnd: c.peer, epoch: c.epoch };
  }

  private announceToSiblings(): void {
    const call = this.presenceCall();
    for (const link of this.opts.links.links()) {
      if (link.peer?.account === this.opts.self.account) link.rpc.notify('presence.call', { call });
    }
  }

  private async startMedia(t: PeerTransport): Promise<void> {
    this.opts.media.attach(t);
    this.opts.media.setPlayback(t);
    this.opts.media.setSendTargets(this.call?.muted ? [] : [t]);
    await this.opts.media.start();
  }

  /** The call `sessionId` with the certified party on `link` (account and endpoint id, P4). */
  private callWith(sessionId: string, link: Link): Call {
    const call = this.call;
    if (!call || call.sessionId !== sessionId || !sameParty(call.peer, link)) {
      throw new SweepError('NOT_FOUND', `no call ${sessionId} with ${link.peer?.account ?? '?'}/${link.peerId} here`);
    }
    return call;
  }

  private requireLink(call: Call): Link {
    const link = this.liveLink(call);
    if (!link) throw new SweepError('OFFLINE', `no link to ${call.peer.endpointId}`);
    return link;
  }

  private assertNoCall(): void {
    if (this.call && this.call.state !== 'ended') throw new SweepError('BUSY', `already in a call (${this.call.state})`);
    if (this.newcomerSweepId) throw new SweepError('BUSY', 'a sweep is in progress');
  }

  private choosePushTarget(): string {
    const siblings = this.opts.links.links().filter((l) => l.peer?.account === this.opts.self.account).map((l) => l.peerId);
    for (const preferred of this.opts.pushPreference ?? []) if (siblings.includes(preferred)) return preferred;
    const first = siblings[0];
    if (!first) throw new SweepError('NOT_FOUND', 'no other endpoint of this account is online to take the call');
    return first;
  }

  private async withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: TimerHandle | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = this.opts.clock.setTimeout(() => reject(new SweepError('TIMEOUT', `${what} within ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      if (timer) this.opts.clock.clear(timer);
    }
  }
}

/** Identity is account plus endpoint id (P4, issue 12 item 4). */
function sameParty(p: Party, link: Link): boolean {
  return link.peer !== undefined && link.peer.account === p.account && link.peer.endpointId === p.endpointId;
}

function partyOf(cert: CertificatePayload): Party {
  return { account: cert.account, endpointId: cert.endpointId, label: cert.label };
}
