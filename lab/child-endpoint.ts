import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { EndpointConfigInput } from '../firmware-config/endpoint-config.ts';
import { SweepError } from '../core/errors.ts';

const CLI = fileURLToPath(new URL('../tools/cli.ts', import.meta.url));
/** The bundle a device runs (`npm run build`). */
export const BUNDLE = fileURLToPath(new URL('../dist/sweep.mjs', import.meta.url));

type Line = Record<string, unknown>;

/**
 * One endpoint in its own OS process (`sweep endpoint --control stdio`), driven over its stdin
 * and stdout JSON lines: the multi-process test and the CPU benchmark use it.
 */
export class ChildEndpoint {
  private readonly lines: Line[] = [];
  private readonly waiters: Array<{ match: (l: Line) => boolean; resolve: (l: Line) => void }> = [];
  private seq = 0;
  readonly exited: Promise<number | null>;
  stderr = '';

  private constructor(private readonly child: ChildProcessByStdio<Writable, Readable, Readable>) {
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        return;
      }
      this.lines.push(line);
      for (const w of [...this.waiters]) {
        if (w.match(line)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /**
   * `command`: run the endpoint with another program instead of this Node and this checkout, e.g.
   * an arm64 bundle's own Node under qemu (`{ file: 'qemu-aarch64-static', args: ['…/bin/node', '…/dist/sweep.mjs'] }`).
   */
  static async start(
    config: EndpointConfigInput,
    configFile: string,
    opts: { timeoutMs?: number; nodeArgs?: string[]; bundle?: boolean; command?: { file: string; args: string[] } } = {},
  ): Promise<ChildEndpoint> {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    await writeFile(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    const entry = opts.bundle ? [BUNDLE] : ['--import', 'tsx', CLI];
    const [file, args] = opts.command ? [opts.command.file, opts.command.args] : [process.execPath, [...(opts.nodeArgs ?? []), ...entry]];
    const child = spawn(file, [...args, 'endpoint', '--config', configFile, '--control', 'stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const ce = new ChildEndpoint(child);
    try {
      await Promise.race([
        ce.waitFor((l) => l.event === 'ready', timeoutMs),
        ce.exited.then((code) => {
          throw new SweepError('INTERNAL', `endpoint exited with ${code} before ready: ${ce.stderr.slice(-2000)}`);
        }),
      ]);
    } catch (err) {
      await ce.close();
      throw err;
    }
    return ce;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Every line seen so far (events and results). */
  seen(): Line[] {
    return [...this.lines];
  }

  /** Number of lines seen so far: pass it to `waitFor` to wait only for later lines. */
  mark(): number {
    return this.lines.length;
  }

  waitFor(match: (l: Line) => boolean, timeoutMs = 10_000, what = 'line', fromLine = 0): Promise<Line> {
    const found = this.lines.slice(fromLine).find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Line>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: Line) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new SweepError('TIMEOUT', `no ${what} from pid ${this.pid} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Sends a command; resolves with its data or rejects with its error. */
  async command(cmd: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const id = `c${++this.seq}`;
    const reply = this.waitFor((l) => l.id === id, timeoutMs, `reply to ${String(cmd.cmd)}`);
    this.child.stdin.write(`${JSON.stringify({ id, ...cmd })}\n`);
    const res = await reply;
    if (res.status !== 'ok') {
      const e = res.error as { code?: string; message?: string } | undefined;
      throw new SweepError('REFUSED', `${String(cmd.cmd)}: ${e?.code ?? ''} ${e?.message ?? ''}`);
    }
    return (res.data ?? {}) as Record<string, unknown>;
  }

  /** Asks the endpoint to quit; kills it if it has not exited in time. Idempotent. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}
