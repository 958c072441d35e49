import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ChildEndpoint } from './child-endpoint.ts';
import type { EndpointConfigInput } from '../firmware-config/endpoint-config.ts';

const CLI = fileURLToPath(new URL('../tools/cli.ts', import.meta.url));

export type Line = Record<string, unknown>;
export const isEvent =
  (type: string, f: (l: Line) => boolean = () => true) =>
  (l: Line): boolean =>
    l.event === type && f(l);
export const callOf = (l: Line): { state: string; peer: { endpointId: string }; epoch: number; sessionId: string } | undefined =>
  l.call as { state: string; peer: { endpointId: string }; epoch: number; sessionId: string } | undefined;

export function sweepCli(args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, ['--import', 'tsx', CLI, ...args], (err, stdout, stderr) => {
      if (err) reject(new Error(`sweep ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    child.stdin?.end(stdin ?? '');
  });
}

export interface EndpointSpec {
  id: string;
  kind: 'intercom' | 'deskphone' | 'phone';
  account: string;
  frequencyHz: number;
  invites?: 'auto' | 'ask';
  label?: string;
  /** Extra config merged at the top level (links, calls, …). */
  extra?: Partial<EndpointConfigInput>;
  /** A network namespace to run the process in (`ip netns exec`), for the NAT tests (issue 17). */
  netns?: string;
}

/** Where and how the access server process runs (the NAT tests put it in a namespace with TURN). */
export interface ServerSpec {
  netns?: string;
  host?: string;
  /** More `sweep server serve` flags (`--turn`, `--turn-secret-file`, …). */
  args?: string[];
}

/** The command that runs the sweep CLI, inside `netns` when given. */
function cliCommand(netns: string | undefined): { file: string; args: string[] } {
  const node = [process.execPath, '--import', 'tsx', CLI];
  return netns ? { file: 'ip', args: ['netns', 'exec', netns, ...node] } : { file: node[0]!, args: node.slice(1) };
}

/**
 * An access server process and endpoint processes on loopback, as a building runs them: each in
 * its own OS process, so a fault test or benchmark can SIGKILL one and restart it as systemd would.
 */
export class ProcessWorld {
  private server: ChildProcess | undefined;
  private serverExited: Promise<unknown> = Promise.resolve();
  readonly endpoints = new Set<ChildEndpoint>();
  url = '';
  publicKey = '';

  private constructor(
    readonly dir: string,
    readonly passwords: Record<string, string>,
  ) {}

  /** Accounts with generated passwords, buddies, and the server started; `close()` undoes it all. */
  static async start(accounts: string[], buddies: Array<[string, string]>, server: ServerSpec = {}): Promise<ProcessWorld> {
    const dir = await mkdtemp(join(tmpdir(), 'sweep-pw-'));
    const passwords: Record<string, string> = {};
    const world = new ProcessWorld(dir, passwords);
    try {
      const data = join(dir, 'server');
      for (const a of accounts) {
        passwords[a] = randomBytes(18).toString('base64url');
        await sweepCli(['server', 'account', 'add', a, '--display', a, '--password-stdin', '--data', data], passwords[a]);
      }
      for (const [a, b] of buddies) await sweepCli(['server', 'buddy', 'add', a, b, '--data', data]);
      await world.startServer(0, server);
    } catch (err) {
      await world.close();
      throw err;
    }
    return world;
  }

  /** Ends every endpoint and the server, and removes the directory. Idempotent. */
  async close(): Promise<void> {
    await Promise.all([...this.endpoints].map((e) => e.close()));
    this.endpoints.clear();
    await this.stopServer();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** SIGKILLs an endpoint process, as a crash or a power cut would, and waits for it to be gone. */
  async kill(e: ChildEndpoint): Promise<void> {
    e.kill();
    await e.exited;
    this.endpoints.delete(e);
  }

  async startServer(port = 0, spec: ServerSpec = {}): Promise<void> {
    const cmd = cliCommand(spec.netns);
    const serve = ['server', 'serve', '--data', join(this.dir, 'server'), '--port', String(port), ...(spec.host ? ['--host', spec.host] : []), ...(spec.args ?? [])];
    const server = spawn(cmd.file, [...cmd.args, ...serve], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.server = server;
    this.serverExited = new Promise((r) => server.once('exit', r));
    const { url, publicKey } = await new Promise<{ url: string; publicKey: string }>((resolve, reject) => {
      let url = '';
      let stderr = '';
      server.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
      const timer = setTimeout(() => reject(new Error(`server did not print its url: ${stderr}`)), 20_000);
      server.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code} before it listened: ${stderr}`));
      });
      createInterface({ input: server.stdout }).on('line', (line) => {
        const u = /listening on (\S+)/.exec(line);
        if (u) url = u[1]!;
        const k = /public key: (\S+)/.exec(line);
        if (k && url) {
          clearTimeout(timer);
          resolve({ url, publicKey: k[1]! });
        }
      });
    });
    this.url = url;
    this.publicKey = publicKey;
  }

  async stopServer(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.server || this.server.exitCode !== null || this.server.signalCode !== null) return;
    this.server.kill(signal);
    await this.serverExited;
  }

  config(spec: EndpointSpec): EndpointConfigInput {
    return {
      endpoint: { id: spec.id, kind: spec.kind, label: spec.label ?? spec.id },
      access: { url: this.url, serverPublicKey: this.publicKey, username: spec.account, password: this.passwords[spec.account]! },
      stateDir: join(this.dir, spec.id),
      sweep: { timeoutMs: 3000, invites: spec.invites ?? 'ask', pushTo: [] },
      audio: { source: { driver: 'simulated', frequencyHz: spec.frequencyHz }, sink: { driver: 'simulated' } },
      log: { level: 'warn' },
      ...spec.extra,
    };
  }

  /** Starts (or, with the same id, restarts on the same state directory) an endpoint process. */
  async endpoint(spec: EndpointSpec): Promise<ChildEndpoint> {
    const e = await ChildEndpoint.start(this.config(spec), join(this.dir, `${spec.id}.json`), spec.netns ? { command: cliCommand(spec.netns) } : {});
    this.endpoints.add(e);
    return e;
  }
}

/** Resolves true when the process exits within `ms`, false if it is still running then. */
export async function exitsWithin(e: ChildEndpoint, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const still = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  const result = await Promise.race([e.exited.then(() => true as const), still]);
  clearTimeout(timer);
  return result;
}

/** `caller` rings `calleeId` and the callee (process `callee`) answers; resolves when both are active. */
export async function callAnswered(caller: ChildEndpoint, callee: ChildEndpoint, calleeId: string): Promise<void> {
  const calleeMark = callee.mark();
  const callerMark = caller.mark();
  await caller.command({ cmd: 'call', to: calleeId });
  await callee.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 5000, 'ringing', calleeMark);
  await callee.command({ cmd: 'answer' });
  await caller.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'active'), 5000, 'active at the caller', callerMark);
}
