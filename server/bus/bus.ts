/**
 * The bus between access-server nodes (DESIGN.md §7): subjects carry JSON text. One interface,
 * two back ends: in-process (a single node, the embedded default) and NATS (a cluster).
 *
 * Contract, met by both:
 * - delivery is asynchronous (never inside `publish` or `request`) and, between one publisher
 *   and one subscription, in publishing order;
 * - `request` goes to the subscribers of the subject and resolves with the first reply; with no
 *   subscriber it rejects OFFLINE ("no responders"), with no reply in `timeoutMs` TIMEOUT, and
 *   with the bus down or closed CLOSED;
 * - a throwing handler is the handler's problem: the bus logs nothing and goes on.
 */
export interface Bus {
  publish(subject: string, data: string): void;
  subscribe(subject: string, handler: BusHandler): BusSubscription;
  request(subject: string, data: string, timeoutMs: number): Promise<string>;
  /** Resolves once everything sent and subscribed so far has reached the bus (a round trip). */
  flush(): Promise<void>;
  /** Called after the bus came back from an outage (messages in between may be lost). */
  onReconnect(listener: () => void): () => void;
  /** True while the bus can carry messages. */
  readonly connected: boolean;
  /** Idempotent; pending requests reject CLOSED. */
  close(): Promise<void>;
}

export interface BusMessage {
  readonly data: string;
  /** Answers a request; a no-op for a plain publish. */
  respond(data: string): void;
}

export type BusHandler = (msg: BusMessage) => void;

export interface BusSubscription {
  /** Idempotent. */
  unsubscribe(): void;
}

/**
 * A subject token for an endpoint id or account name: NATS separates tokens with '.', which both
 * may contain, so every name is written as hex (a-z0-9 only, never a wildcard).
 */
export function subjectToken(name: string): string {
  return Buffer.from(name, 'utf8').toString('hex');
}

/** A5: link set-up for one endpoint goes to the node that holds it. */
export const endpointSubject = (endpointId: string): string => `sweep.ep.${subjectToken(endpointId)}`;
/** A4: presence of an account's endpoints, heard by every node with a follower of that account. */
export const presenceSubject = (account: string): string => `sweep.presence.${subjectToken(account)}`;
