import type { SignalPayload } from '../protocol/access.ts';
import type { EndpointKind } from '../protocol/common.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import { randomB64u } from '../wire/b64.ts';
import type { PeerLink } from './peer-link.ts';
import type { NewLink, Signaller } from './new-link.ts';
import { LinkFailures, type LinkProblem } from './link-failures.ts';

export { peerLinkBasics, type NewLink, type Signaller } from './new-link.ts';

export interface LinkSetOptions<L extends PeerLink> {
  selfId: string;
  /** A browser always offers (L1): the phone page. */
  selfIsBrowser?: boolean;
  signaller: Signaller;
  /** Makes a link (its transport and PeerLink); the device over node-datachannel, the page over WebRTC. */
  makeLink: (spec: NewLink) => L;
  clock: Clock;
  log: Logger;
  /** Set-up plus hello deadline. */
  setupTimeoutMs?: number;
  /** An on-demand link nobody uses is closed after this long (L3). */
  idleCloseMs?: number;
  /** Whether a call or sweep currently uses the link to this peer. */
  inUse?: (peerId: string) => boolean;
  /** The peer's endpoint kind as presence told it, if known: a browser always offers (L1). */
  peerKind?: (peerId: string) => EndpointKind | undefined;
}

interface Entry<L> {
  link: L;
  linkId: string;
  lastUsed: number;
  /** The account the relay said the peer is of, when it said. */
  account: string | undefined;
}

/**
 * An endpoint's links (docs/protocol.md L1–L4), the same on the device and in the phone page:
 * at most one link per peer; a browser always offers, otherwise the endpoint whose id sorts first
 * offers, and the other asks with `connect`. Pinned peers are kept linked ahead of need and rebuilt
 * when their link fails (L3, L4); other links are made on demand and closed when idle.
 */
export class LinkSet<L extends PeerLink> {
  private readonly entries = new Map<string, Entry<L>>();
  private readonly waiters = new Map<string, Array<(link: L) => void>>();
  private readonly pins = new Map<string, Set<string>>();
  private readonly createdListeners: Array<(link: L) => void> = [];
  private readonly readyListeners: Array<(link: L) => void> = [];
  private readonly closedListeners: Array<(peerId: string, reason: string, link: L) => void> = [];
  private readonly rebuildTimers = new Map<string, TimerHandle>();
  private readonly failures: LinkFailures;
  private readonly failedListeners: Array<(problem: LinkProblem) => void> = [];
  private readonly idleTimer: TimerHandle;
  private closed = false;

  constructor(private readonly opts: LinkSetOptions<L>) {
    const idle = opts.idleCloseMs ?? 60_000;
    this.idleTimer = opts.clock.setInterval(() => this.closeIdle(), Math.max(1000, idle / 2));
    this.failures = new LinkFailures(opts.clock);
  }

  /** Called synchronously when a link object is made, before any peer message can arrive. */
  onLinkCreated(fn: (link: L) => void): void {
    this.createdListeners.push(fn);
  }

  onLinkReady(fn: (link: L) => void): void {
    this.readyListeners.push(fn);
  }

  /** Fires for links that were ready (authenticated) when they closed. */
  onLinkClosed(fn: (peerId: string, reason: string, link: L) => void): void {
    this.closedListeners.push(fn);
  }

  /** A link kept ahead of need could not be made (issue 17): the reason, attempts so far, retried with back-off. */
  onLinkFailed(fn: (problem: LinkProblem) => void): void {
    this.failedListeners.push(fn);
  }

  /** Why the links to `peerId` keep failing, while they do. */
  problem(peerId: string): LinkProblem | undefined {
    return this.failures.problem(peerId);
  }

  /** The ready link to `peerId`, if there is one now. */
  current(peerId: string): L | undefined {
    const e = this.entries.get(peerId);
    return e && e.link.peer && !e.link.isClosed ? e.link : undefined;
  }

  links(): L[] {
    return [...this.entries.values()].map((e) => e.link).filter((l) => l.peer && !l.isClosed);
  }

  /** A ready, authenticated link to `peerId`, made on demand. */
  async get(peerId: string): Promise<L> {
    if (this.closed) throw new SweepError('CLOSED', 'links closed');
    if (peerId === this.opts.selfId) throw new SweepError('BAD_STATE', 'no link to self');
    const existing = this.entries.get(peerId);
    if (existing && !existing.link.isClosed) {
      existing.lastUsed = this.opts.clock.mono();
      await existing.link.ready;
      return existing.link;
    }
    if (this.offersTo(peerId)) {
      const link = this.createLink(peerId, newLinkId(), 'offerer');
      await link.ready;
      return link;
    }
    // L1: the peer offers; ask it to, then wait for its link.
    const linkId = newLinkId();
    const timeoutMs = this.opts.setupTimeoutMs ?? 8000;
    let cancel!: () => void;
    const arrived = new Promise<L>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        this.removeWaiter(peerId, onLink);
        reject(new SweepError('TIMEOUT', `no link from ${peerId} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onLink = (link: L): void => {
        this.opts.clock.clear(timer);
        resolve(link);
      };
      cancel = () => {
        this.opts.clock.clear(timer);
        this.removeWaiter(peerId, onLink);
      };
      const list = this.waiters.get(peerId) ?? [];
      list.push(onLink);
      this.waiters.set(peerId, list);
    });
    try {
      await this.opts.signaller.signal(peerId, { kind: 'connect', linkId });
    } catch (err) {
      // Issue 12 item 1: an offline peer (OFFLINE) must not leave a wait behind that rejects later, unhandled.
      cancel();
      throw err;
    }
    const link = await arrived;
    await link.ready;
    return link;
  }

  /** Keeps a link to `peerId` ahead of need while any reason holds (L3). */
  pin(peerId: string, reason: string): void {
    if (this.closed || peerId === this.opts.selfId) return;
    const reasons = this.pins.get(peerId) ?? new Set();
    reasons.add(reason);
    this.pins.set(peerId, reasons);
    this.ensure(peerId);
  }

  unpin(peerId: string, reason: string): void {
    const reasons = this.pins.get(peerId);
    if (!reasons) return;
    reasons.delete(reason);
    if (reasons.size === 0) this.pins.delete(peerId);
    const e = this.entries.get(peerId);
    if (e) e.lastUsed = this.opts.clock.mono();
  }

  /** Drops every pin with this reason (e.g. a sibling's call ended). */
  unpinAll(reason: string): void {
    for (const peerId of [...this.pins.keys()]) this.unpin(peerId, reason);
  }

  isPinned(peerId: string): boolean {
    return this.pins.has(peerId);
  }

  /** Closes the link to a peer that went offline; no rebuild. */
  drop(peerId: string, reason: string): void {
    this.pins.delete(peerId);
    this.entries.get(peerId)?.link.close(reason);
  }

  /** Fed with every signal the relay delivers, with the sender's account as the relay says. Never throws. */
  acceptSignal(from: string, payload: SignalPayload, fromAccount?: string): void {
    if (this.closed) return;
    try {
      const entry = this.entries.get(from);
      const entryAccount = entry?.link.peer?.account ?? entry?.account;
      if (entry && !entry.link.isClosed && fromAccount !== undefined && entryAccount !== undefined && entryAccount !== fromAccount) {
        // Issue 12 item 4: identity is account plus endpoint id; a link is never replaced by another account's.
        this.opts.log.warn({ peer: from, fromAccount, linkedAccount: entryAccount, kind: payload.kind }, 'signal from another account for a linked endpoint id; ignored (P3)');
        return;
      }
      switch (payload.kind) {
        case 'connect':
          if (!this.offersTo(from)) {
            this.opts.log.warn({ peer: from }, 'connect from a peer that should offer itself; ignored (L1)');
            return;
          }
          if (entry && !entry.link.isClosed) {
            // The peer asks again: it has lost its side of our link. Rebuild.
            if (!entry.link.peer) return; // set-up in flight; it will complete
            entry.link.close('peer asked for a new link');
          }
          this.createLink(from, newLinkId(), 'offerer', fromAccount);
          return;
        case 'offer':
          if (this.offersTo(from)) {
            this.opts.log.warn({ peer: from }, 'offer from a peer that should not offer; ignored (L1)');
            return;
          }
          if (entry && !entry.link.isClosed) entry.link.close('peer offered a new link');
          this.createLink(from, payload.linkId, 'answerer', fromAccount).transport.acceptSignal(payload);
          return;
        case 'answer':
        case 'candidate':
          if (entry && entry.linkId === payload.linkId) entry.link.transport.acceptSignal(payload);
          else this.opts.log.debug({ peer: from, kind: payload.kind }, 'signal for an old link; ignored');
          return;
      }
    } catch (err) {
      this.opts.log.error({ err: toSweepError(err), peer: from }, 'signal handling failed');
    }
  }

  /** Marks the link as used now (idle timer). */
  touch(peerId: string): void {
    const e = this.entries.get(peerId);
    if (e) e.lastUsed = this.opts.clock.mono();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.clock.clear(this.idleTimer);
    for (const t of this.rebuildTimers.values()) this.opts.clock.clear(t);
    this.rebuildTimers.clear();
    for (const e of [...this.entries.values()]) e.link.close('endpoint closing');
    this.entries.clear();
    this.waiters.clear();
  }

  /** L1: a browser always offers; never to a browser (it offers, we answer); otherwise when our id sorts first. */
  private offersTo(peerId: string): boolean {
    if (this.opts.selfIsBrowser) return true;
    if (this.opts.peerKind?.(peerId) === 'browser') return false;
    return this.opts.selfId < peerId;
  }

  private ensure(peerId: string): void {
    const e = this.entries.get(peerId);
    if (e && !e.link.isClosed) return;
    this.get(peerId).catch((err: unknown) => {
      const problem = this.failures.failed(peerId, toSweepError(err).message);
      this.opts.log.info({ peer: peerId, reason: problem.reason, attempts: problem.attempts, retryMs: this.failures.retryDelayMs(peerId) }, 'link ahead of need not made yet');
      for (const fn of this.failedListeners) safe(this.opts.log, () => fn(problem));
      this.scheduleRebuild(peerId);
    });
  }

  private scheduleRebuild(peerId: string): void {
    if (this.closed || !this.pins.has(peerId) || this.rebuildTimers.has(peerId)) return;
    const timer = this.opts.clock.setTimeout(() => {
      this.rebuildTimers.delete(peerId);
      if (this.pins.has(peerId)) this.ensure(peerId);
    }, this.failures.retryDelayMs(peerId));
    this.rebuildTimers.set(peerId, timer);
  }

  private createLink(peerId: string, linkId: string, role: 'offerer' | 'answerer', account?: string): L {
    const log = this.opts.log.child({ peer: peerId, linkId });
    const link = this.opts.makeLink({
      peerId,
      linkId,
      role,
      account,
      setupTimeoutMs: this.opts.setupTimeoutMs ?? 8000,
      sendSignal: (payload) => {
        this.opts.signaller.signal(peerId, payload).catch((err: unknown) => {
          const e = toSweepError(err);
          log.debug({ err: e.message }, 'signal not delivered');
          // The relay says the peer is not there: the link cannot form; fail now, not at the deadline.
          if (e.code === 'OFFLINE') link.close(`${e.code}: ${e.message}`);
        });
      },
      log,
    });
    for (const fn of this.createdListeners) safe(log, () => fn(link));
    const entry: Entry<L> = { link, linkId, lastUsed: this.opts.clock.mono(), account };
    this.entries.set(peerId, entry);
    for (const w of this.waiters.get(peerId)?.splice(0) ?? []) w(link);
    link.onClosed((reason) => {
      if (this.entries.get(peerId) === entry) this.entries.delete(peerId);
      if (link.peer) {
        log.info({ reason }, 'link closed');
        for (const fn of this.closedListeners) safe(log, () => fn(peerId, reason, link));
      }
      this.scheduleRebuild(peerId);
    });
    link.ready.then(
      () => {
        log.info({ role }, 'link ready');
        this.failures.succeeded(peerId);
        for (const fn of this.readyListeners) safe(log, () => fn(link));
      },
      (err: unknown) => log.warn({ err: toSweepError(err).message }, 'link set-up failed'),
    );
    return link;
  }

  private removeWaiter(peerId: string, fn: (link: L) => void): void {
    const list = this.waiters.get(peerId);
    if (list) this.waiters.set(peerId, list.filter((w) => w !== fn));
  }

  private closeIdle(): void {
    const idle = this.opts.idleCloseMs ?? 60_000;
    const now = this.opts.clock.mono();
    for (const [peerId, e] of this.entries) {
      // A link still being set up ends at its own deadline, not as idle (a relayed set-up can take over a second).
      if (this.pins.has(peerId) || this.opts.inUse?.(peerId) || !e.link.peer) continue;
      if (now - e.lastUsed >= idle) e.link.close('idle');
    }
  }
}

function newLinkId(): string {
  return randomB64u(6);
}

function safe(log: Logger, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.error({ err }, 'link listener threw');
  }
}
