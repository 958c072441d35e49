import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Test } from 'tap';
import { freePort } from './ports.ts';

const BIN = '/usr/lib/postgresql/15/bin';

export interface LoopbackPostgres {
  port: number;
  /** A fresh, empty database on this server (its URL). */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (fast shutdown) and waits for its process to end; the data stay. */
  stop(): Promise<void>;
  /** SIGKILLs the server, as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** The server's process id while it runs. */
  readonly pid: number | undefined;
  /** `url` (of createDatabase) through the server's Unix socket instead of loopback TCP. */
  viaSocket(url: string): string;
}

/** As root, the engine runs as the packaged `postgres` user (initdb refuses root). */
function engineUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/**
 * A real PostgreSQL 15 for one test: `initdb` into a temporary directory, the server on a free
 * loopback port with its unix socket in that directory too, stopped by PID and removed at
 * teardown. Trust authentication is for loopback test clusters only.
 */
export async function startPostgres(t: Test): Promise<LoopbackPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-pg-'));
  const data = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  mkdirSync(socketDir);
  const user = engineUser();
  if (user) for (const p of [dir, socketDir]) chownSync(p, user.uid, user.gid);
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(join(BIN, 'initdb'), ['-D', data, '-U', 'sweep', '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...as, stdio: 'pipe', cwd: dir, timeout: 120_000 });
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';

  const exited = (c: ChildProcess): Promise<void> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r())));
  const start = async (): Promise<void> => {
    // Durability off: these clusters live for one test.
    const args = ['-D', data, '-h', '127.0.0.1', '-p', String(port), '-k', socketDir, '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'];
    const c = spawn(join(BIN, 'postgres'), args, { ...as, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`postgres exited at start: ${output}`);
      if (await accepts(port)) return;
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 60 s: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c) return;
    const gone = exited(c);
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
  };
  t.teardown(async () => {
    await stopWith('SIGINT');
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  let made = 0;
  return {
    port,
    get pid() {
      return child?.pid;
    },
    async createDatabase(name: string): Promise<string> {
      const db = `${name.replace(/[^a-z0-9_]/g, '_')}_${++made}`;
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'sweep', database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${db}`);
      } finally {
        await client.end();
      }
      return `postgres://sweep@127.0.0.1:${port}/${db}`;
    },
    viaSocket: (url: string) => url.replace(`@127.0.0.1:${port}/`, `@${encodeURIComponent(socketDir)}:${port}/`),
    stop: () => stopWith('SIGINT'),
    kill: () => stopWith('SIGKILL'),
    start,
  };
}

async function accepts(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'sweep', database: 'postgres', connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}
