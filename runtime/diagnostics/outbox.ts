/**
 * A bounded FIFO for messages that matter (events) while the broker is unreachable. Beyond
 * `capacity` the oldest entry is dropped and counted, so memory stays bounded however long the
 * outage lasts.
 */
export class Outbox<T> {
  private items: T[] = [];
  private droppedCount = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity: ${capacity}, a positive integer allowed`);
  }

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) {
      this.items.shift();
      this.droppedCount += 1;
    }
  }

  /** Takes everything queued, oldest first. */
  drain(): T[] {
    const out = this.items;
    this.items = [];
    return out;
  }

  get size(): number {
    return this.items.length;
  }

  /** Entries dropped since the last `takeDropped()`. */
  takeDropped(): number {
    const n = this.droppedCount;
    this.droppedCount = 0;
    return n;
  }
}
