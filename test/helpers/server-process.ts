import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

const MAIN = fileURLToPath(new URL('../../server/main.ts', import.meta.url));

export interface ServerProcess {
  url: string;
  httpUrl: string;
  node: string;
  pid: number;
  child: ChildProcess;
  /** SIGKILL, as a crash; resolves once the process is gone. */
  kill(): Promise<void>;
  output(): string;
}

export interface ServerProcessOptions {
  /**
   * The node's log (stderr) goes to this file, appended, instead of a pipe: a node logging
   * thousands of logins would otherwise block on a full pipe whenever the reader is busy.
   */
  logFile?: string;
  /** Node's own flags before the entry point (`--cpu-prof` to profile the node). */
  nodeArgs?: string[];
  /** The `sweep` bundle to run (deploy/bundle.ts, as systemd runs it) instead of the sources through tsx. */
  bundle?: string;
}

/** `sweep server serve …` as a child process on a free loopback port (or `--port` in `args`); killed by PID at teardown. */
export async function startServerProcess(t: Test, args: string[], opts: ServerProcessOptions = {}): Promise<ServerProcess> {
  const logFd = opts.logFile === undefined ? undefined : openSync(opts.logFile, 'a');
  const entry = opts.bundle === undefined ? ['--import', 'tsx', MAIN] : [opts.bundle, 'server'];
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...entry, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', logFd ?? 'pipe'] });
  if (logFd !== undefined) closeSync(logFd);
  let out = '';
  let piped = '';
  const err = (): string => (opts.logFile === undefined ? piped : readFileSync(opts.logFile, 'utf8').slice(-8000));
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (piped = (piped + d.toString()).slice(-8000)));
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await gone;
  };
  t.teardown(kill);
  const deadline = Date.now() + 60_000;
  while (!/public key: /.test(out)) {
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`server did not start within 60 s: ${err().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /listening on (ws:\/\/\S+)/.exec(out)?.[1] ?? '';
  const node = /node: (\S+)/.exec(out)?.[1] ?? '';
  return { url, httpUrl: url.replace('ws:', 'http:').replace('/access', ''), node, pid: child.pid ?? 0, child, kill, output: err };
}
