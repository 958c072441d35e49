import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../core/clock.ts';

/** A node's own load figures, for monitoring and the cluster bench; JSON, no secrets. */
export const LOAD_PATH = '/health/load';

/** The part of perf_hooks' IntervalHistogram used here (a test passes its own). */
export interface DelayHistogram {
  enable(): boolean;
  disable(): boolean;
  reset(): void;
  percentile(p: number): number;
  readonly max: number;
  readonly count: number;
}

export interface LoopDelay {
  /** How late the event loop ran a due timer, ms (0 = on time), over `windowMs`. */
  p50: number;
  p99: number;
  max: number;
  windowMs: number;
}

/** What the server counts itself. */
export interface NodeCounts {
  node: string;
  /** Open sockets, logged in or not. */
  sockets: number;
  /** Endpoints logged in on this node. */
  endpoints: number;
  /** A11: logins refused "server busy" so far: token and proof logins (the login gate), password logins (the Argon2 gate). */
  loginsRefusedBusy: number;
  passwordChecksRefusedBusy: number;
}

export interface LoadFigures extends NodeCounts {
  rssMb: number;
  heapUsedMb: number;
  loopDelayMs: LoopDelay;
}

export interface LoadMonitorOptions {
  clock: Clock;
  /** Figures cover the last whole window of this length (default 10 s): a scrape every 10–15 s sees each. */
  windowMs?: number;
  /** Sampling period of the delay histogram, ms (default 20: 50 wake-ups a second). */
  resolutionMs?: number;
  histogram?: DelayHistogram;
  memory?: () => Pick<NodeJS.MemoryUsage, 'rss' | 'heapUsed'>;
}

const MB = 1024 * 1024;
const round1 = (n: number): number => Math.round(n * 10) / 10;

/**
 * Event-loop delay and memory of this process. The histogram's samples are whole sampling
 * periods, so the period is taken off: what is left is how late the loop was.
 */
export class LoadMonitor {
  private readonly histogram: DelayHistogram;
  private readonly windowMs: number;
  private readonly resolutionMs: number;
  private readonly memory: () => Pick<NodeJS.MemoryUsage, 'rss' | 'heapUsed'>;
  private last: LoopDelay | undefined;
  private windowStart: number;
  private timer: TimerHandle | undefined;

  constructor(private readonly opts: LoadMonitorOptions) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.resolutionMs = opts.resolutionMs ?? 20;
    this.histogram = opts.histogram ?? monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.memory = opts.memory ?? (() => process.memoryUsage());
    this.windowStart = opts.clock.mono();
  }

  start(): void {
    if (this.timer) return;
    this.histogram.enable();
    this.windowStart = this.opts.clock.mono();
    this.timer = this.opts.clock.setInterval(() => {
      this.last = this.read(this.windowMs);
      this.histogram.reset();
      this.windowStart = this.opts.clock.mono();
    }, this.windowMs);
  }

  /** Idempotent. */
  stop(): void {
    if (!this.timer) return;
    this.opts.clock.clear(this.timer);
    this.timer = undefined;
    this.histogram.disable();
  }

  /** The last whole window; before the first one ends, the time since start. */
  figures(counts: NodeCounts): LoadFigures {
    const mem = this.memory();
    const loopDelayMs = this.last ?? this.read(this.opts.clock.mono() - this.windowStart);
    return { ...counts, rssMb: round1(mem.rss / MB), heapUsedMb: round1(mem.heapUsed / MB), loopDelayMs };
  }

  private read(windowMs: number): LoopDelay {
    const late = (ns: number): number => (this.histogram.count ? round1(Math.max(0, ns / 1e6 - this.resolutionMs)) : 0);
    return { p50: late(this.histogram.percentile(50)), p99: late(this.histogram.percentile(99)), max: late(this.histogram.max), windowMs: Math.round(windowMs) };
  }
}
