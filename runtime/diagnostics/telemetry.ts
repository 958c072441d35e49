import { readFile } from 'node:fs/promises';
import { freemem, loadavg, totalmem } from 'node:os';
import type { MediaStats } from '../media/media-engine.ts';
import type { CallSnapshot } from '../../core/session/events.ts';
import type { EventMapper, LastSweep, SweepCounters } from './events.ts';
import type { ObservedEndpoint } from './observed.ts';

/** One sample on `<prefix>/<device>/telemetry` (Q6). */
export interface Telemetry {
  at: number;
  uptimeS: number;
  cpu: { percent: number; userMs: number; systemMs: number };
  memory: { rssBytes: number; heapUsedBytes: number; systemFreeBytes: number; systemTotalBytes: number };
  load1: number;
  temperatureC: number | null;
  links: { count: number; open: number; malformed: number; peers: string[] };
  call: CallSnapshot | null;
  media: MediaStats;
  /** Concealed + dropped frames since the previous sample: what a listener hears as glitches. */
  audioGlitches: number;
  sweeps: SweepCounters;
  lastSweep: LastSweep | null;
  outbox: { queued: number };
}

export interface SamplerDeps {
  mono: () => number;
  now: () => number;
  cpuUsage?: () => NodeJS.CpuUsage;
  memoryUsage?: () => NodeJS.MemoryUsage;
  /** °C, or null where the board has no sensor (default: /sys/class/thermal/thermal_zone0/temp). */
  readTemperature?: () => Promise<number | null>;
}

export async function readThermalZone(file = '/sys/class/thermal/thermal_zone0/temp'): Promise<number | null> {
  try {
    const milli = Number((await readFile(file, 'utf8')).trim());
    return Number.isFinite(milli) ? Math.round(milli / 100) / 10 : null;
  } catch {
    return null;
  }
}

/** Takes telemetry samples; CPU and glitch figures are deltas since the previous sample. */
export class TelemetrySampler {
  private readonly startedMono: number;
  private lastMono: number;
  private lastCpu: NodeJS.CpuUsage;
  private lastGlitches = 0;
  private readonly cpuUsage: () => NodeJS.CpuUsage;
  private readonly memoryUsage: () => NodeJS.MemoryUsage;
  private readonly readTemperature: () => Promise<number | null>;

  constructor(
    private readonly endpoint: ObservedEndpoint,
    private readonly events: EventMapper,
    private readonly outboxSize: () => number,
    private readonly deps: SamplerDeps,
  ) {
    this.cpuUsage = deps.cpuUsage ?? (() => process.cpuUsage());
    this.memoryUsage = deps.memoryUsage ?? (() => process.memoryUsage());
    this.readTemperature = deps.readTemperature ?? (() => readThermalZone());
    this.startedMono = deps.mono();
    this.lastMono = this.startedMono;
    this.lastCpu = this.cpuUsage();
  }

  async sample(): Promise<Telemetry> {
    const temperatureC = await this.readTemperature();
    const mono = this.deps.mono();
    const cpu = this.cpuUsage();
    const userMs = (cpu.user - this.lastCpu.user) / 1000;
    const systemMs = (cpu.system - this.lastCpu.system) / 1000;
    const elapsed = mono - this.lastMono;
    this.lastCpu = cpu;
    this.lastMono = mono;
    const mem = this.memoryUsage();
    const media = this.endpoint.media.stats();
    const glitches = media.framesConcealed + media.framesDropped;
    const audioGlitches = glitches - this.lastGlitches;
    this.lastGlitches = glitches;
    const links = this.endpoint.links.links();
    return {
      at: this.deps.now(),
      uptimeS: Math.round((mono - this.startedMono) / 1000),
      cpu: { percent: elapsed > 0 ? round1(((userMs + systemMs) / elapsed) * 100) : 0, userMs: round1(userMs), systemMs: round1(systemMs) },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, systemFreeBytes: freemem(), systemTotalBytes: totalmem() },
      load1: round1(loadavg()[0] ?? 0),
      temperatureC,
      links: {
        count: links.length,
        open: links.filter((l) => !l.isClosed && l.transport.isOpen).length,
        malformed: links.reduce((n, l) => n + l.malformedCount, 0),
        peers: links.map((l) => l.peerId),
      },
      call: this.endpoint.calls.snapshot(),
      media,
      audioGlitches,
      sweeps: { ...this.events.counters },
      lastSweep: this.events.lastSweep,
      outbox: { queued: this.outboxSize() },
    };
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
