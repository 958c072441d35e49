import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuMsOf } from './proc.ts';

/** Wake-ups per second of the reference process: the rate of the audio path's main thread. */
const REFERENCE_HZ = 100;

/**
 * The host's price of a wake-up, measured beside a benchmark: a Node process that does nothing
 * but an empty 100 Hz timer. On this shared VM that price changes up to threefold from one half
 * hour to the next (40–180 µs), and with it every CPU figure of an endpoint (about 100 wake-ups a
 * second in a call): quote it with them to compare runs.
 */
export class ReferenceWake {
  readonly #child: ChildProcess;
  #cpu0 = 0;
  #t0 = 0;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async start(): Promise<ReferenceWake> {
    const child = spawn(process.execPath, ['-e', `setInterval(() => {}, ${1000 / REFERENCE_HZ}); process.stdout.write('ready\\n');`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(child.stdout, 'data');
    const ref = new ReferenceWake(child);
    // Past start-up before the window opens.
    await sleep(500);
    ref.#cpu0 = await cpuMsOf(child.pid!);
    ref.#t0 = performance.now();
    return ref;
  }

  /** CPU µs per empty wake-up since start; the process is stopped. */
  async stop(): Promise<number> {
    const cpu = await cpuMsOf(this.#child.pid!);
    const seconds = (performance.now() - this.#t0) / 1000;
    await this.close();
    return Math.round(((cpu - this.#cpu0) * 1000) / (seconds * REFERENCE_HZ));
  }

  /** Stops the process (idempotent). */
  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.#child.kill();
    await exited;
  }
}
