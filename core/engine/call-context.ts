import type { CertificatePayload } from '../protocol/certificate.ts';
import type { Party } from '../protocol/peer.ts';
import type { Crypto, Link, Links, Media, MediaHandle } from './ports.ts';
import { SweepError } from '../errors.ts';
import type { EventBus } from '../bus.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import { transition, type CallEvent, type CallState } from '../session/call-state.ts';
import type { CallSnapshot, EndpointEvents, SweepOutcome, SweepRole } from '../session/events.ts';
import { Timeline } from './timeline.ts';

export { Timeline };

/** What the call manager needs from the media engine (ports.ts). */
export type MediaPort = Media;

export interface CallManagerOptions {
  self: { account: string; endpointId: string; label: string };
  /** Accounts this endpoint accepts calls from besides its own (its buddies, P5). */
  isBuddy: (account: string) => boolean;
  /** Grants are signed with this endpoint's key and checked with the holder's (S4, S6). */
  crypto: Crypto;
  links: Links;
  media: Media;
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
  /** H1: the online endpoints of an account (its household), from the profile and presence (A4). */
  householdOf?: (account: string) => Array<{ endpointId: string; label: string }>;
  /** H7: this endpoint starts set not to ring (config `calls.doNotDisturb`). */
  doNotDisturb?: boolean;
  /** S11: called after a sweep with scope "login" moved our call away. */
  onLoginSwept?: () => void;
}

export interface Call {
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

/**
 * The endpoint's one call (C2) and what every role needs around it: the state transition with
 * its events, the link the call runs on, media switching, and the sweep timeline. The roles
 * (calls.ts, holder.ts, far-end.ts, newcomer.ts, push.ts, siblings.ts) each own their own state
 * and timers, and hear of a call's end through `onEnded`.
 */
export class CallContext {
  call: Call | undefined;
  /** The sweep this endpoint is pulling as the newcomer, if any (S3). */
  newcomerSweepId: string | undefined;
  private readonly endedListeners: Array<(call: Call) => void> = [];
  private readonly changedListeners: Array<() => void> = [];
  /** H7: invites are answered DO_NOT_DISTURB while set. */
  doNotDisturb: boolean;
  /** The party whose link is kept for the call (L4). */
  private linkedPeer: string | undefined;

  constructor(readonly opts: CallManagerOptions) {
    this.doNotDisturb = opts.doNotDisturb ?? false;
  }

  get sweepTimeoutMs(): number {
    return this.opts.sweepTimeoutMs ?? 3000;
  }

  get linkLossGraceMs(): number {
    return this.opts.linkLossGraceMs ?? this.sweepTimeoutMs;
  }

  /** Called when a call ends, before the state is told: each role drops what it held for it. */
  onEnded(fn: (call: Call) => void): void {
    this.endedListeners.push(fn);
  }

  /** Called when the call becomes active or ends (siblings.ts tells the siblings, L3). */
  onActiveOrEnded(fn: () => void): void {
    this.changedListeners.push(fn);
  }

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

  /** C3: the one transition function; the call's end cascades to every role. */
  apply(call: Call, event: CallEvent, reason?: string): void {
    const before = call.state;
    call.state = transition(before, event);
    this.opts.log.info({ sessionId: call.sessionId, from: before, to: call.state, event, reason }, 'call state');
    if (call.state === 'ended') this.ended(call);
    this.emitState(call, reason);
    if (call.state !== before && (call.state === 'active' || call.state === 'ended')) for (const fn of this.changedListeners) fn();
  }

  emitState(call: Call, reason?: string): void {
    this.keepCallLinked();
    const snap = this.call === call ? this.snapshot() : null;
    if (snap) this.opts.bus.emit('call.state', reason ? { call: snap, reason } : { call: snap });
  }

  /**
   * L3, L4: the link to the call's other party is kept while the call lasts, rebuilt at once if
   * it fails (a rebuilt link to the same instance carries the call on, L6); it follows the party
   * when the call moves (S7).
   */
  private keepCallLinked(): void {
    const c = this.call;
    const want = c && (c.state === 'active' || c.state === 'sweeping') && c.peer.endpointId !== this.opts.self.endpointId ? c.peer.endpointId : undefined;
    if (want === this.linkedPeer) return;
    if (this.linkedPeer !== undefined) this.opts.links.unpin(this.linkedPeer, 'call');
    this.linkedPeer = want;
    if (want !== undefined) this.opts.links.pin(want, 'call');
  }

  timeline(sweepId: string, role: SweepRole, startedAtMono?: number): Timeline {
    return new Timeline(this.opts.clock, (step, ms) => this.emitStep(sweepId, role, step, ms), startedAtMono);
  }

  emitStep(sweepId: string, role: SweepRole, step: string, ms: number): void {
    this.opts.bus.emit('sweep.step', { sweepId, role, step, ms });
  }

  finish(sweepId: string, role: SweepRole, outcome: SweepOutcome, timeline: Timeline, err?: SweepError): void {
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

  /** The link the call runs on, while it is alive (L5). */
  liveLink(call: Call): Link | undefined {
    return call.link && !call.link.isClosed ? call.link : undefined;
  }

  requireLink(call: Call): Link {
    const link = this.liveLink(call);
    if (!link) throw new SweepError('OFFLINE', `no link to ${call.peer.endpointId}`);
    return link;
  }

  /** The call now runs on `link` (L6, L7, S7); the C5 timer for the old one stops. */
  bindLink(call: Call, link: Link): void {
    call.link = link;
    call.peerInstance = link.peerInstance;
    if (call.lossTimer) {
      this.opts.clock.clear(call.lossTimer);
      delete call.lossTimer;
    }
  }

  /** The same party carries on over a new link (L4, L7): audio both ways moves to it. */
  carryOn(call: Call, link: Link): void {
    this.bindLink(call, link);
    this.opts.media.attach(link.media);
    this.opts.media.setPlayback(link.media);
    this.opts.media.setSendTargets(call.muted ? [] : [link.media]);
  }

  async startMedia(t: MediaHandle): Promise<void> {
    this.opts.media.attach(t);
    this.opts.media.setPlayback(t);
    this.opts.media.setSendTargets(this.call?.muted ? [] : [t]);
    await this.opts.media.start();
  }

  /** The call `sessionId` with the certified party on `link` (account and endpoint id, P4). */
  callWith(sessionId: string, link: Link): Call {
    const call = this.call;
    if (!call || call.sessionId !== sessionId || !sameParty(call.peer, link)) {
      throw new SweepError('NOT_FOUND', `no call ${sessionId} with ${link.peer?.account ?? '?'}/${link.peerId} here`);
    }
    return call;
  }

  /** C2: one call at a time, and none while this endpoint pulls one. */
  assertNoCall(): void {
    if (this.call && this.call.state !== 'ended') throw new SweepError('BUSY', `already in a call (${this.call.state})`);
    if (this.newcomerSweepId) throw new SweepError('BUSY', 'a sweep is in progress');
  }

  private ended(call: Call): void {
    if (call.lossTimer) this.opts.clock.clear(call.lossTimer);
    for (const fn of this.endedListeners) fn(call);
    this.opts.media.setSendTargets([]);
    this.opts.media.setPlayback(null);
    this.opts.media.stop().catch((err: unknown) => this.opts.log.warn({ err }, 'media stop failed'));
  }
}

/** Identity is account plus endpoint id (P4, issue 12 item 4). */
export function sameParty(p: Party, link: Link): boolean {
  return link.peer !== undefined && link.peer.account === p.account && link.peer.endpointId === p.endpointId;
}

export function partyOf(cert: CertificatePayload): Party {
  return { account: cert.account, endpointId: cert.endpointId, label: cert.label };
}
