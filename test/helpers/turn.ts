import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, listening } from './ports.ts';
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';

export interface LoopbackTurn {
  /** turn:127.0.0.1:PORT?transport=udp */
  udp: string;
  /** turn:127.0.0.1:PORT?transport=tcp */
  tcp: string;
  secret: string;
  /** Everything coturn printed (allocations, refusals). */
  output(): string;
}

/**
 * A real coturn on loopback with TURN REST auth (use-auth-secret), relaying between loopback
 * peers (allowed for the test only). Stopped with SIGKILL at teardown.
 */
export async function startLoopbackTurn(t: Test, opts: { secret?: string } = {}): Promise<LoopbackTurn> {
  const port = await freePort();
  const minPort = 40_000 + Math.floor(Math.random() * 20_000);
  const secret = opts.secret ?? randomBytes(24).toString('base64url');
  const args = [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--fingerprint', '--simple-log', '--log-file=stdout',
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    `--min-port=${minPort}`, `--max-port=${minPort + 200}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=sweep.test',
    '--allow-loopback-peers', '--no-software-attribute', `--pidfile=/tmp/sweep-turn-${port}.pid`,
  ];
  const child: ChildProcess = spawn('turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  });
  const deadline = Date.now() + 5000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`turnserver did not start: ${out.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { udp: `turn:127.0.0.1:${port}?transport=udp`, tcp: `turn:127.0.0.1:${port}?transport=tcp`, secret, output: () => out };
}
