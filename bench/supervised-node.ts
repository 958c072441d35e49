import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Test } from 'tap';

/** One start of the node under the supervisor. */
interface Start {
  pid: number;
  listening: boolean;
}

/**
 * `sweep server serve …` restarted as systemd's `Restart=always` does it (deploy/systemd): a shell
 * loop starts the node again RestartSec after it died. The restart does not wait on the bench,
 * whose event loop is busy with 10,000 reconnecting clients just when the node dies; and the node
 * keeps the priority the supervisor had, not the lowered one of the bench's fleet.
 */
export class SupervisedNode {
  private readonly starts: Start[] = [];
  private partial = '';
  private wsUrl = '';

  private constructor(
    private readonly logFile: string,
    private readonly groupPid: number,
  ) {}

  /** The supervisor and the first node, listening; the whole process group is killed at teardown. */
  static async start(t: Test, o: { bundle: string; args: string[]; logFile: string; restartSecMs: number; nodeArgs?: string[] }): Promise<SupervisedNode> {
    const logFd = openSync(o.logFile, 'a');
    // "$0" is the pause; each start names its PID first (the shell's `wait` reaps it, as systemd would).
    const loop = 'while :; do "$@" & echo "pid: $!"; wait $!; sleep "$0"; done';
    const shell = spawn('sh', ['-c', loop, String(o.restartSecMs / 1000), process.execPath, ...(o.nodeArgs ?? []), o.bundle, 'server', 'serve', ...o.args], {
      stdio: ['ignore', 'pipe', logFd],
      detached: true,
    });
    closeSync(logFd);
    const groupPid = shell.pid ?? 0;
    t.teardown(() => {
      try {
        process.kill(-groupPid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    const node = new SupervisedNode(o.logFile, groupPid);
    shell.stdout?.on('data', (d: Buffer) => node.read(d.toString()));
    await node.listening(0);
    return node;
  }

  get url(): string {
    return this.wsUrl;
  }

  get httpUrl(): string {
    return this.url.replace('ws:', 'http:').replace('/access', '');
  }

  /** The PID of the node started last. */
  get pid(): number {
    return this.starts.at(-1)?.pid ?? 0;
  }

  /** How many times the node has been started. */
  get startCount(): number {
    return this.starts.length;
  }

  /** SIGKILL, as a crash; resolves once the process is gone. The supervisor starts it again. */
  async crash(): Promise<void> {
    const pid = this.pid;
    process.kill(pid, 'SIGKILL');
    while (isRunning(pid)) await new Promise((r) => setTimeout(r, 10));
  }

  /** Resolves once the node started after `startsBefore` starts listens. */
  async listening(startsBefore: number, limitMs = 60_000): Promise<void> {
    const deadline = Date.now() + limitMs;
    while (!(this.starts.length > startsBefore && this.starts.at(-1)?.listening)) {
      if (!isRunning(this.groupPid)) throw new Error(`supervisor exited: ${this.log()}`);
      if (Date.now() > deadline) throw new Error(`server did not start within ${limitMs / 1000} s: ${this.log()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The node started last is still running. */
  get alive(): boolean {
    return isRunning(this.pid);
  }

  /** A signal to the node started last (SIGTERM makes a profiled node write its profile). */
  signal(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  private read(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const pid = /^pid: (\d+)/.exec(line)?.[1];
      const url = /listening on (ws:\/\/\S+)/.exec(line)?.[1];
      if (pid) this.starts.push({ pid: Number(pid), listening: false });
      else if (url) this.wsUrl = url;
      else if (line.startsWith('public key: ')) {
        const last = this.starts.at(-1);
        if (last) last.listening = true;
      }
    }
  }

  private log(): string {
    return readFileSync(this.logFile, 'utf8').slice(-2000);
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
