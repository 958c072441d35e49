import { spawn, type ChildProcess } from 'node:child_process';
import type { Test } from 'tap';
import { freePort, listening } from './ports.ts';

export interface LoopbackNats {
  url: string;
  port: number;
  readonly pid: number | undefined;
  /** Stops the server and waits for its process to end. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

/** A real nats-server (Debian's) on a free loopback port, stopped by PID at teardown. */
export async function startNats(t: Test): Promise<LoopbackNats> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';
  const start = async (): Promise<void> => {
    const c = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    const deadline = Date.now() + 30_000;
    while (!(await listening(port))) {
      if (c.exitCode !== null) throw new Error(`nats-server exited at start: ${output}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen within 30 s: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  t.teardown(stop);
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    stop,
    start,
  };
}

