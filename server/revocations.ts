import type { Logger } from '../platform/log.ts';
import type { AccountStore } from './store.ts';

/**
 * A9: session tokens this node revoked (a logout, a login answer never delivered) while the store
 * was out of reach. Each waits here and is revoked when the node next renews its lease, as
 * OnlineRows' removals are; meanwhile this node refuses it. Revoked by its hash, not by endpoint:
 * a newer login of the same endpoint keeps its own token. Without this, a token of a device that
 * logged out during a database outage logged in again once the database was back.
 */
export class Revocations {
  private readonly waiting = new Set<string>();
  private retrying: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<AccountStore, 'revokeLoginSession'>,
    private readonly log: Logger,
  ) {}

  /** Token hashes still to be revoked in the store. */
  get count(): number {
    return this.waiting.size;
  }

  /** Whether a token (by hash) was revoked here but not yet in the store: refused meanwhile. */
  has(tokenHash: string): boolean {
    return this.waiting.has(tokenHash);
  }

  /** Revokes the token now, or keeps it for `retry`; true once the store has it. Never rejects. */
  async revoke(tokenHash: string): Promise<boolean> {
    try {
      await this.store.revokeLoginSession(tokenHash);
      return true;
    } catch (err) {
      this.waiting.add(tokenHash);
      this.log.warn({ err, waiting: this.waiting.size }, 'session token not revoked in the store; refused here, revoked when the store answers');
      return false;
    }
  }

  /** Revokes the waiting tokens, one run at a time; stops at the first failure. Never rejects. */
  retry(): Promise<void> {
    if (this.waiting.size === 0) return Promise.resolve();
    this.retrying ??= this.retryAll().finally(() => (this.retrying = undefined));
    return this.retrying;
  }

  private async retryAll(): Promise<void> {
    for (const hash of [...this.waiting]) {
      try {
        await this.store.revokeLoginSession(hash);
      } catch {
        return; // Still out of reach: the next renewal tries again.
      }
      this.waiting.delete(hash);
    }
    this.log.info('session tokens left over from a store outage revoked');
  }
}
