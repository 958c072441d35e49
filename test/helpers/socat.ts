import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A virtual serial cable: `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B` in a temporary
 * directory. `stop()` pulls the cable (both ptys vanish), `start()` plugs it back at the same
 * paths; `close()` stops socat and removes the directory (idempotent).
 */
export class SocatPair {
  #proc: ChildProcess | undefined;
  #closed = false;
  private constructor(readonly dir: string) {}

  get a(): string {
    return join(this.dir, 'A');
  }
  get b(): string {
    return join(this.dir, 'B');
  }

  static async create(): Promise<SocatPair> {
    const pair = new SocatPair(await mkdtemp(join(tmpdir(), 'sweep-socat-')));
    await pair.start();
    return pair;
  }

  async start(): Promise<void> {
    if (this.#proc) return;
    const proc = spawn('socat', [`pty,raw,echo=0,link=${this.a}`, `pty,raw,echo=0,link=${this.b}`], { stdio: 'ignore' });
    this.#proc = proc;
    proc.once('exit', () => {
      if (this.#proc === proc) this.#proc = undefined;
    });
    const deadline = Date.now() + 5000;
    while (!(existsSync(this.a) && existsSync(this.b))) {
      if (Date.now() > deadline || this.#proc !== proc) throw new Error(`socat did not make ${this.a} and ${this.b} within 5 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    this.#proc = undefined;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    await exited;
    // socat removes its links on SIGTERM; wait until it has.
    const deadline = Date.now() + 2000;
    while ((existsSync(this.a) || existsSync(this.b)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
