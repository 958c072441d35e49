import type { EndpointInfo } from '../core/protocol/common.ts';
import type { Logger } from '../platform/log.ts';
import type { AccountStore } from './store.ts';

/**
 * A4: a login that ends removes its online row and, if the row was still its own (a newer login
 * anywhere wins), tells the followers the endpoint went offline. A removal the store could not
 * take (it was out of reach) waits here and is tried again whenever the node renews its lease,
 * so an endpoint that left during a database outage does not stay online for ever.
 */
export class OnlineRows {
  /** By session id: a login ends once. */
  private readonly pending = new Map<string, EndpointInfo>();
  private retrying: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<AccountStore, 'dropOnline'>,
    private readonly announceOffline: (endpoint: EndpointInfo) => void,
    private readonly log: Logger,
  ) {}

  /** Removals waiting for the store. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Removes the row of the login `sessionId`, or keeps the removal for `retry`; never rejects. */
  async drop(endpoint: EndpointInfo, sessionId: string): Promise<void> {
    try {
      await this.remove(endpoint, sessionId);
    } catch (err) {
      this.pending.set(sessionId, endpoint);
      this.log.warn({ err, endpointId: endpoint.endpointId, waiting: this.pending.size }, 'online row not removed; retried when the store answers');
    }
  }

  /** Tries the waiting removals again, one run at a time; stops at the first failure. Never rejects. */
  retry(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    this.retrying ??= this.retryAll().finally(() => (this.retrying = undefined));
    return this.retrying;
  }

  private async retryAll(): Promise<void> {
    for (const [sessionId, endpoint] of [...this.pending]) {
      try {
        await this.remove(endpoint, sessionId);
      } catch {
        return; // Still out of reach: the next renewal tries again.
      }
      this.pending.delete(sessionId);
    }
    this.log.info('online rows left over from a store outage removed');
  }

  private async remove(endpoint: EndpointInfo, sessionId: string): Promise<void> {
    if (await this.store.dropOnline(endpoint.endpointId, sessionId)) this.announceOffline({ ...endpoint, online: false });
  }
}
