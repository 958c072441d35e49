import type { Party } from '../protocol/peer.ts';
import type { Link } from './ports.ts';
import type { TimerHandle } from '../clock.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { CallSnapshot, RingForkState } from '../session/events.ts';
import { partyOf, type Call, type CallContext } from './call-context.ts';
import { householdCall } from './calls.ts';

interface Fork {
  endpointId: string;
  label: string;
  state: RingForkState;
  /** The link the invite went over: answers, declines and H8 are matched to this link. */
  link?: Link;
  /** Whether it ever rang (for history, H11: which devices rang). */
  rang?: boolean;
}

interface Ring {
  call: Call;
  account: string;
  forks: Map<string, Fork>;
  startedAtMono: number;
  timer?: TimerHandle;
  winner?: Party;
  /** Why the ring stopped, once it did; what the forks still ringing are told (H2, H5). */
  outcome?: 'answered' | 'missed' | 'cancelled';
  /** Resolves ringAccount: at the first fork ringing, or when the call ended before any did. */
  settled: () => void;
}

const PENDING: RingForkState[] = ['linking', 'inviting', 'ringing'];

/**
 * The caller's side of a household call (docs/protocol.md H1–H11): one session rung on every
 * online endpoint of an account (one fork each), kept ringing on endpoints that come online
 * meanwhile; the first answer wins and the other forks are cancelled with the reason.
 */
export class RingOut {
  private ring: Ring | undefined;

  constructor(private readonly ctx: CallContext) {
    ctx.onEnded((call) => this.onCallEnded(call));
    ctx.opts.bus.on(this, 'presence', (e) => this.onPresence(e.endpoint));
  }

  /** Whether `sessionId` is (or was) the household call this endpoint rang: its answers and declines go here. */
  rang(sessionId: string): boolean {
    return this.ring?.call.sessionId === sessionId;
  }

  /** Whether a fork still being rung needs the link to `peerId` (idle close, L3). */
  uses(peerId: string): boolean {
    const fork = this.live()?.forks.get(peerId);
    return fork !== undefined && PENDING.includes(fork.state);
  }

  /** H1: rings every online endpoint of `account`; resolves once one rings, or the call ended (missed at once, H7). */
  async ringAccount(account: string, opts: { doorRights?: boolean; label?: string } = {}): Promise<CallSnapshot> {
    const { ctx } = this;
    const self = ctx.opts.self;
    if (account !== self.account && !ctx.opts.isBuddy(account)) throw new SweepError('FORBIDDEN', `account ${account} is not a buddy of ${self.account} (P5)`);
    ctx.assertNoCall();
    const targets = (ctx.opts.householdOf?.(account) ?? []).filter((e) => e.endpointId !== self.endpointId);
    const call = householdCall(ctx.opts.crypto.randomId(9), account, opts.label ?? account, opts.doorRights ?? false);
    let settled!: () => void;
    const firstRing = new Promise<void>((resolve) => (settled = resolve));
    const ring: Ring = { call, account, forks: new Map(), startedAtMono: ctx.opts.clock.mono(), settled };
    this.ring = ring;
    ctx.call = call;
    ctx.apply(call, 'invite');
    ctx.opts.bus.emit('ring.started', { sessionId: call.sessionId, account, label: call.peer.label, endpoints: targets.map((t) => t.endpointId), startedAtMono: ring.startedAtMono });
    ring.timer = ctx.opts.clock.setTimeout(() => {
      delete ring.timer;
      if (this.live() === ring) this.end(ring, 'missed', `missed: nobody answered within ${ctx.opts.ringTimeoutMs ?? 60_000} ms (H5)`);
    }, ctx.opts.ringTimeoutMs ?? 60_000);
    for (const t of targets) this.fork(ring, t);
    this.settle(ring);
    await firstRing;
    return ctx.snapshot()!;
  }

  /** H2, H3, H9: an answer from a rung endpoint; the first one wins. */
  async onAnswer(link: Link, sessionId: string): Promise<{ startedAt: number }> {
    const { ctx } = this;
    const ring = this.ring!;
    const fork = this.forkOf(ring, link, sessionId);
    if (ring.winner) {
      if (ring.winner.endpointId === link.peerId) throw new SweepError('BAD_STATE', `session ${sessionId} was already answered here: replayed (H9)`);
      throw new SweepError('ANSWERED_ELSEWHERE', `answered on ${ring.winner.label || ring.winner.endpointId} (H3)`);
    }
    if (this.live() !== ring || fork.state !== 'ringing') throw new SweepError('BAD_STATE', `session ${sessionId} is not ringing on ${link.peerId} (${fork.state}) (H9)`);
    const call = ring.call;
    ring.winner = partyOf(link.peer!);
    ring.outcome = 'answered';
    this.clearTimer(ring);
    call.peer = ring.winner;
    call.peerCert = link.peer;
    call.startedAt = ctx.opts.clock.now();
    ctx.bindLink(call, link);
    this.setFork(ring, fork, 'answered');
    this.cancelRinging(ring);
    ctx.apply(call, 'answer');
    ctx.opts.bus.emit('ring.answered', { sessionId, account: ring.account, by: ring.winner, ms: this.msSince(ring) });
    await ctx.startMedia(link.media);
    return { startedAt: call.startedAt };
  }

  /** H4, H9: a rung endpoint declines (or hangs up while ringing): only its fork stops. */
  onDecline(link: Link, sessionId: string, reason: string): void {
    const ring = this.ring!;
    const fork = this.forkOf(ring, link, sessionId);
    if (this.live() !== ring || fork.state !== 'ringing') throw new SweepError('BAD_STATE', `session ${sessionId} is not ringing on ${link.peerId} (${fork.state}) (H9)`);
    this.setFork(ring, fork, 'declined', reason);
    this.settle(ring);
  }

  /** H8: a ringing fork whose link died stops; the others go on. */
  onLinkClosed(link: Link, reason: string): void {
    const ring = this.live();
    if (!ring) return;
    for (const fork of ring.forks.values()) {
      if (fork.link === link && PENDING.includes(fork.state)) this.setFork(ring, fork, 'lost', reason);
    }
    this.settle(ring);
  }

  close(): void {
    this.ctx.opts.bus.removeOwner(this);
    if (this.ring) this.clearTimer(this.ring);
  }

  private live(): Ring | undefined {
    return this.ring && this.ctx.call === this.ring.call && this.ring.call.state === 'ringing' ? this.ring : undefined;
  }

  /** H9: the fork of `link`'s endpoint, rung over this very link, of the household's account. */
  private forkOf(ring: Ring, link: Link, sessionId: string): Fork {
    const peer = link.peer!;
    if (peer.account !== ring.account) throw new SweepError('FORBIDDEN', `${peer.account}/${peer.endpointId} is not of the household ${ring.account} (H9)`);
    const fork = ring.forks.get(link.peerId);
    if (!fork || fork.link !== link) throw new SweepError('NOT_FOUND', `session ${sessionId} did not ring ${link.peerId} on this link (H9)`);
    return fork;
  }

  /** H1: rings one endpoint over a link made on demand; BUSY and DO_NOT_DISTURB skip it (H6, H7). */
  private fork(ring: Ring, target: { endpointId: string; label: string }): void {
    const fork: Fork = { endpointId: target.endpointId, label: target.label, state: 'linking' };
    ring.forks.set(target.endpointId, fork);
    this.setFork(ring, fork, 'linking');
    const run = async (): Promise<void> => {
      const { call } = ring;
      const link = await this.ctx.opts.links.get(target.endpointId);
      if (fork.state !== 'linking') return;
      fork.link = link;
      if (this.live() !== ring) return this.setFork(ring, fork, 'cancelled', 'the ring ended before the link was up');
      this.setFork(ring, fork, 'inviting');
      await link.rpc.request('call.invite', { sessionId: call.sessionId, doorRights: call.doorRights });
      if (stateOf(fork) !== 'inviting') return; // lost meanwhile (H8)
      if (this.live() === ring) return this.setFork(ring, fork, 'ringing');
      // The ring stopped while this invite was on its way: stop this endpoint too.
      this.setFork(ring, fork, 'ringing');
      this.cancel(ring, fork);
    };
    run()
      .catch((err: unknown) => {
        const e = toSweepError(err);
        if (fork.state !== 'linking' && fork.state !== 'inviting') return;
        this.setFork(ring, fork, e.code === 'BUSY' ? 'busy' : e.code === 'DO_NOT_DISTURB' ? 'dnd' : 'failed', `${e.code}: ${e.message}`);
      })
      .finally(() => {
        if (fork.state === 'ringing') ring.settled();
        this.settle(ring);
      });
  }

  /** H4, H7: no fork left ringing or being rung: the call is missed. */
  private settle(ring: Ring): void {
    if (this.live() !== ring) return ring.settled();
    const forks = [...ring.forks.values()];
    if (forks.some((f) => PENDING.includes(f.state))) return;
    const why = forks.map((f) => `${f.state} on ${f.label || f.endpointId}`).join(', ');
    this.end(ring, 'missed', `missed: ${why || 'no endpoint of the household is online'} (H4)`);
  }

  private end(ring: Ring, outcome: 'missed', reason: string): void {
    ring.outcome = outcome;
    this.ctx.apply(ring.call, 'hangup', reason);
  }

  /** The call ended: while still ringing, every ringing fork is told why (H5); the seam for history (H11). */
  private onCallEnded(call: Call): void {
    const ring = this.ring;
    if (!ring || ring.call !== call) return;
    this.clearTimer(ring);
    ring.outcome ??= 'cancelled';
    this.cancelRinging(ring);
    ring.settled();
    this.ctx.opts.bus.emit('ring.ended', {
      sessionId: call.sessionId,
      account: ring.account,
      outcome: ring.outcome,
      rang: [...ring.forks.values()].filter((f) => f.rang).map((f) => f.endpointId),
      ...(ring.winner ? { answeredBy: ring.winner } : {}),
      ms: this.msSince(ring),
    });
  }

  private cancelRinging(ring: Ring): void {
    for (const fork of ring.forks.values()) if (fork.state === 'ringing') this.cancel(ring, fork);
  }

  private cancel(ring: Ring, fork: Fork): void {
    const reason = ring.outcome === 'answered' ? 'answered' : ring.outcome === 'missed' ? 'missed' : 'callerHungUp';
    const by = ring.winner ? ring.winner.label || ring.winner.endpointId : undefined;
    this.setFork(ring, fork, 'cancelled', reason);
    fork.link?.rpc
      .request('call.cancel', { sessionId: ring.call.sessionId, reason, ...(by && reason === 'answered' ? { by } : {}) })
      .catch((err: unknown) => this.ctx.opts.log.debug({ err: toSweepError(err).message, peer: fork.endpointId }, 'cancel not delivered'));
  }

  /** H1: an endpoint of the household that comes online while it rings is rung too (again, after a reload). */
  private onPresence(info: { endpointId: string; account: string; label: string; online: boolean }): void {
    const ring = this.live();
    if (!ring || !info.online || info.account !== ring.account || info.endpointId === this.ctx.opts.self.endpointId) return;
    const fork = ring.forks.get(info.endpointId);
    if (fork && fork.state !== 'lost' && fork.state !== 'failed') return;
    this.fork(ring, info);
  }

  private setFork(ring: Ring, fork: Fork, state: RingForkState, reason?: string): void {
    fork.state = state;
    if (state === 'ringing') fork.rang = true;
    this.ctx.opts.bus.emit('ring.fork', { sessionId: ring.call.sessionId, endpointId: fork.endpointId, label: fork.label, state, ms: this.msSince(ring), ...(reason ? { reason } : {}) });
  }

  private clearTimer(ring: Ring): void {
    if (ring.timer) this.ctx.opts.clock.clear(ring.timer);
    ring.timer = undefined;
  }

  private msSince(ring: Ring): number {
    return Math.round((this.ctx.opts.clock.mono() - ring.startedAtMono) * 100) / 100;
  }
}

/** A fork's state as it is now (set by callbacks the type checker cannot see). */
function stateOf(fork: Fork): RingForkState {
  return fork.state;
}
