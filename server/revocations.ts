import type { Logger } from '../platform/log.ts';
import type { AccountStore } from './store.ts';
import { WritesWaiting } from './writes-waiting.ts';

/**
 * A9: session tokens this node revoked (a logout, a login answer never delivered) while the store
 * was out of reach. Each waits here and is revoked when the node next renews its lease, as
 * OnlineRows' removals are; meanwhile this node refuses it. Revoked by its hash, not by endpoint:
 * a newer login of the same endpoint keeps its own token. Without this, a token of a device that
 * logged out during a database outage logged in again once the database was back.
 */
export class Revocations {
  private readonly revocations: WritesWaiting<string, true>;

  constructor(store: Pick<AccountStore, 'revokeLoginSession'>, log: Logger) {
    this.revocations = new WritesWaiting((hash) => store.revokeLoginSession(hash), log, {
      kept: 'session token not revoked in the store; refused here, revoked when the store answers',
      done: 'session tokens left over from a store outage revoked',
    });
  }

  /** Token hashes still to be revoked in the store. */
  get count(): number {
    return this.revocations.size;
  }

  /** Whether a token (by hash) was revoked here but not yet in the store: refused meanwhile. */
  has(tokenHash: string): boolean {
    return this.revocations.has(tokenHash);
  }

  /** Revokes the token now, or keeps it for `retry`; true once the store has it. Never rejects. */
  revoke(tokenHash: string): Promise<boolean> {
    return this.revocations.try(tokenHash, true);
  }

  /** Revokes the waiting tokens, one run at a time; stops at the first failure. Never rejects. */
  retry(): Promise<void> {
    return this.revocations.retry();
  }
}
