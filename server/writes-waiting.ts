import type { Logger } from '../platform/log.ts';

/**
 * Store writes that must happen even if the store is out of reach when they are due (a database
 * outage): each is tried at once, or kept by its key and tried again by `retry` (the node calls it
 * whenever it renews its lease), one run at a time, stopping at the first failure.
 */
export class WritesWaiting<K, V> {
  private readonly waiting = new Map<K, V>();
  private retrying: Promise<void> | undefined;

  constructor(
    private readonly write: (key: K, value: V) => Promise<void>,
    private readonly log: Logger,
    private readonly says: { kept: string; done: string },
  ) {}

  get size(): number {
    return this.waiting.size;
  }

  has(key: K): boolean {
    return this.waiting.has(key);
  }

  /** Writes now, or keeps the write for `retry`; true once the store has it. Never rejects. */
  async try(key: K, value: V, ids: Record<string, unknown> = {}): Promise<boolean> {
    try {
      await this.write(key, value);
      return true;
    } catch (err) {
      this.waiting.set(key, value);
      this.log.warn({ err, ...ids, waiting: this.waiting.size }, this.says.kept);
      return false;
    }
  }

  /** Tries the kept writes again, one run at a time; stops at the first failure. Never rejects. */
  retry(): Promise<void> {
    if (this.waiting.size === 0) return Promise.resolve();
    this.retrying ??= this.retryAll().finally(() => (this.retrying = undefined));
    return this.retrying;
  }

  private async retryAll(): Promise<void> {
    for (const [key, value] of [...this.waiting]) {
      try {
        await this.write(key, value);
      } catch {
        return; // Still out of reach: the next renewal tries again.
      }
      this.waiting.delete(key);
    }
    this.log.info(this.says.done);
  }
}
