import type { EndpointInfo } from '../core/protocol/common.ts';
import type { Logger } from '../platform/log.ts';
import type { AccountStore } from './store.ts';
import { WritesWaiting } from './writes-waiting.ts';

/**
 * A4: a login that ends removes its online row and, if the row was still its own (a newer login
 * anywhere wins), tells the followers the endpoint went offline. A removal the store could not
 * take (it was out of reach) waits here and is tried again whenever the node renews its lease,
 * so an endpoint that left during a database outage does not stay online for ever.
 */
export class OnlineRows {
  /** By session id: a login ends once. */
  private readonly removals: WritesWaiting<string, EndpointInfo>;

  constructor(store: Pick<AccountStore, 'dropOnline'>, announceOffline: (endpoint: EndpointInfo) => void, log: Logger) {
    this.removals = new WritesWaiting(
      async (sessionId, endpoint) => {
        if (await store.dropOnline(endpoint.endpointId, sessionId)) announceOffline({ ...endpoint, online: false });
      },
      log,
      { kept: 'online row not removed; retried when the store answers', done: 'online rows left over from a store outage removed' },
    );
  }

  /** Removals waiting for the store. */
  get waiting(): number {
    return this.removals.size;
  }

  /** Removes the row of the login `sessionId`, or keeps the removal for `retry`; never rejects. */
  async drop(endpoint: EndpointInfo, sessionId: string): Promise<void> {
    await this.removals.try(sessionId, endpoint, { endpointId: endpoint.endpointId });
  }

  /** Tries the waiting removals again, one run at a time; stops at the first failure. Never rejects. */
  retry(): Promise<void> {
    return this.removals.retry();
  }
}
