import { z } from 'zod';
import { SweepError, toWireError, type ErrorCode } from '../core/errors.ts';
import { AccountName, EndpointId, EndpointInfo } from '../core/protocol/common.ts';
import { SignalPayload, type SignalIn } from '../core/protocol/access.ts';
import type { Logger } from '../platform/log.ts';
import { endpointSubject, presenceSubject, type Bus, type BusMessage, type BusSubscription } from './bus/bus.ts';
import { follows, type OnlineEndpoint, type OnlineRegistry } from './registry.ts';
import { PresenceMirror } from './presence-mirror.ts';
import type { AccountStore, OnlineRow } from './store.ts';

/** What travels on an endpoint's subject: link set-up for it (A5), or "a newer login took you over" (A6). */
const EndpointMessage = z.discriminatedUnion('t', [
  z.object({ t: z.literal('signal'), from: EndpointId, fromAccount: AccountName, payload: SignalPayload }),
  z.object({ t: z.literal('kick'), sessionId: z.string() }),
]);
const RelayReply = z.union([z.object({ ok: z.literal(true) }), z.object({ error: z.object({ code: z.string(), message: z.string() }) })]);
const PresenceMessage = z.object({ endpoint: EndpointInfo });


/**
 * One node's side of the bus: each local login subscribes its endpoint's subject (signals and
 * kicks for it) and, once per account, the presence subject of every account a local endpoint
 * follows (A4). The same path runs on a single node (in-process bus) and in a cluster (NATS).
 */
export class NodeBus {
  private readonly endpointSubs = new Map<OnlineEndpoint, BusSubscription>();
  private readonly presenceSubs = new Map<string, { sub: BusSubscription; users: number }>();
  private readonly mirror = new PresenceMirror();
  private readonly stopReconnect: () => void;

  constructor(
    readonly bus: Bus,
    private readonly registry: OnlineRegistry,
    private readonly log: Logger,
    private readonly deliverSignal: (target: OnlineEndpoint, signal: SignalIn) => void,
    private readonly store: AccountStore,
    private readonly relayTimeoutMs = 5_000,
  ) {
    this.stopReconnect = bus.onReconnect(() => void this.resync());
  }

  /** A login's profile rows: what its followers on this node now know. */
  seed(rows: readonly OnlineRow[]): void {
    this.mirror.seed(rows);
  }

  /**
   * A4: after a bus outage, presence messages may have been lost: the node reads the online
   * endpoints of every account its endpoints follow from the store, and tells them what changed.
   */
  async resync(): Promise<number> {
    const accounts = this.followedAccounts();
    try {
      const changes = this.mirror.reconcile(accounts, await this.store.onlineOf(accounts));
      for (const endpoint of changes) this.registry.deliverPresence(endpoint);
      this.log.info({ accounts: accounts.length, changes: changes.length }, 'presence re-read after a bus outage');
      return changes.length;
    } catch (err) {
      this.log.warn({ err }, 'presence not re-read after a bus outage');
      return 0;
    }
  }

  /** A local login starts hearing its signals and its accounts' presence. */
  attach(entry: OnlineEndpoint): void {
    this.endpointSubs.set(entry, this.bus.subscribe(endpointSubject(entry.info.endpointId), (msg) => this.onEndpointMessage(entry, msg)));
    for (const account of followedAccounts(entry)) {
      const known = this.presenceSubs.get(account);
      if (known) known.users += 1;
      else this.presenceSubs.set(account, { sub: this.bus.subscribe(presenceSubject(account), (msg) => this.onPresence(msg)), users: 1 });
    }
  }

  detach(entry: OnlineEndpoint): void {
    this.endpointSubs.get(entry)?.unsubscribe();
    this.endpointSubs.delete(entry);
    for (const account of followedAccounts(entry)) {
      const known = this.presenceSubs.get(account);
      if (!known) continue;
      known.users -= 1;
      if (known.users > 0) continue;
      known.sub.unsubscribe();
      this.presenceSubs.delete(account);
      this.mirror.forget(account);
    }
  }

  /** The accounts some local endpoint follows. */
  followedAccounts(): string[] {
    return [...this.presenceSubs.keys()];
  }

  /** A4: tells every node with a follower of the endpoint's account. */
  announce(endpoint: EndpointInfo): void {
    this.bus.publish(presenceSubject(endpoint.account), JSON.stringify({ endpoint }));
  }

  /** A6: a login of `endpointId` under `sessionId` replaces any other login of it, on any node. */
  kickElsewhere(endpointId: string, sessionId: string): void {
    this.bus.publish(endpointSubject(endpointId), JSON.stringify({ t: 'kick', sessionId }));
  }

  /**
   * A5: a signal to an endpoint on any node, by request/reply to its subject; no responders
   * means it is not online (OFFLINE). The node that holds the target enforces the same-account
   * or buddy rule and answers FORBIDDEN.
   */
  async relay(from: OnlineEndpoint, to: string, payload: SignalPayload): Promise<void> {
    const body = JSON.stringify({ t: 'signal', from: from.info.endpointId, fromAccount: from.account, payload });
    let text: string;
    try {
      text = await this.bus.request(endpointSubject(to), body, this.relayTimeoutMs);
    } catch (err) {
      if (toWireError(err).code === 'OFFLINE') throw new SweepError('OFFLINE', `signal.to: endpoint "${to}" is not online`);
      throw err;
    }
    const reply = RelayReply.parse(JSON.parse(text));
    if ('error' in reply) throw new SweepError(reply.error.code as ErrorCode, reply.error.message);
  }

  /** Lets subscriptions made so far reach the bus before the caller reads the store. */
  async flush(): Promise<void> {
    await this.bus.flush();
  }

  close(): void {
    this.stopReconnect();
    for (const sub of this.endpointSubs.values()) sub.unsubscribe();
    for (const { sub } of this.presenceSubs.values()) sub.unsubscribe();
    this.endpointSubs.clear();
    this.presenceSubs.clear();
  }

  private onEndpointMessage(entry: OnlineEndpoint, msg: BusMessage): void {
    const parsed = EndpointMessage.safeParse(safeJson(msg.data));
    if (!parsed.success) {
      this.log.warn({ endpointId: entry.info.endpointId }, 'bus: dropped a malformed endpoint message');
      return;
    }
    const m = parsed.data;
    const current = this.registry.get(entry.info.endpointId);
    if (m.t === 'kick') {
      if (current === entry && entry.sessionId !== m.sessionId) entry.peer.kick('replaced by a newer login of the same endpoint');
      return;
    }
    // Another subscription of this endpoint (a newer login on this node) answers for it.
    if (current !== entry) return;
    // A5: enforced by the node that delivers.
    if (!follows(entry, m.fromAccount)) {
      this.log.warn({ from: m.from, fromAccount: m.fromAccount, to: entry.info.endpointId, toAccount: entry.account }, 'signal refused: accounts may not talk');
      msg.respond(JSON.stringify({ error: { code: 'FORBIDDEN', message: `signal.to: endpoint "${entry.info.endpointId}" is neither of account "${m.fromAccount}" nor of a buddy` } }));
      return;
    }
    this.deliverSignal(entry, { from: m.from, fromAccount: m.fromAccount, payload: m.payload });
    msg.respond(JSON.stringify({ ok: true }));
  }

  private onPresence(msg: BusMessage): void {
    const parsed = PresenceMessage.safeParse(safeJson(msg.data));
    if (!parsed.success) {
      this.log.warn('bus: dropped a malformed presence message');
      return;
    }
    this.mirror.note(parsed.data.endpoint);
    this.registry.deliverPresence(parsed.data.endpoint);
  }
}

function followedAccounts(entry: OnlineEndpoint): string[] {
  return [entry.account, ...entry.buddies.map((b) => b.name)];
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
