import type { Clock, TimerHandle } from '../../core/clock.ts';

/** A Clock driven by the test: `advance(ms)` runs due timers in order. */
export class FakeClock implements Clock {
  private t = 1_700_000_000_000;
  private m = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void; every?: number }>();

  now(): number {
    return this.t;
  }
  mono(): number {
    return this.m;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.m + ms, fn });
    return { id };
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.m + ms, fn, every: ms });
    return { id };
  }
  clear(h: TimerHandle): void {
    this.timers.delete(h.id as number);
  }
  pending(): number {
    return this.timers.size;
  }
  advance(ms: number): void {
    const end = this.m + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void; every?: number }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      const [id, timer] = next;
      this.t += timer.at - this.m;
      this.m = timer.at;
      if (timer.every) timer.at += timer.every;
      else this.timers.delete(id);
      timer.fn();
    }
    this.t += end - this.m;
    this.m = end;
  }

  /** An event-loop stall: `ms` pass with no timer running, then each due timer fires once, late. */
  jump(ms: number): void {
    this.t += ms;
    this.m += ms;
    for (const [id, timer] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at > this.m || !this.timers.has(id)) continue;
      if (timer.every) timer.at = this.m + timer.every;
      else this.timers.delete(id);
      timer.fn();
    }
  }
}
