import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { IPty, IPtyForkOptions } from 'node-pty';
import { SweepError } from '../../core/errors.ts';
import type { Clock, TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';

export interface ShellOptions {
  command: string;
  user?: string;
  idleTimeoutMs: number;
  maxBytesPerSecond: number;
}

export type SpawnPty = (file: string, args: string[], opts: IPtyForkOptions) => IPty;

export interface ShellSession {
  id: string;
  /** The operator key that opened it: only that key may type into it (Q12). */
  operatorKey: string;
  lastSeq: number;
}

const run = promisify(execFile);

/** uid and gid of `user` (via `id`, which also reads NSS), or NOT_FOUND. */
export async function lookupUser(user: string): Promise<{ uid: number; gid: number }> {
  try {
    const [u, g] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  } catch {
    throw new SweepError('NOT_FOUND', `shell.user: no user "${user}" on this device`);
  }
}

/**
 * The remote shell (Q11-Q13): one pty at a time, as the configured unprivileged user, closed
 * after `idleTimeoutMs` without input or output. Output is rate-limited to `maxBytesPerSecond`
 * (token bucket; the pty is paused while too much is pending), input too (excess is dropped).
 */
export class ShellHost {
  private session: (ShellSession & { pty: IPty; idle?: TimerHandle; pump?: TimerHandle; pending: Buffer[]; pendingBytes: number; paused: boolean }) | undefined;
  private outTokens: number;
  private inTokens: number;
  private lastRefill: number;

  constructor(
    private readonly opts: ShellOptions,
    private readonly deps: {
      clock: Clock;
      log: Logger;
      spawn: () => Promise<SpawnPty>;
      output: (session: string, data: Buffer) => void;
      closed: (session: string, reason: string, exitCode?: number) => void;
      isRoot?: () => boolean;
    },
  ) {
    this.outTokens = opts.maxBytesPerSecond;
    this.inTokens = opts.maxBytesPerSecond;
    this.lastRefill = deps.clock.mono();
  }

  get current(): ShellSession | undefined {
    return this.session;
  }

  async open(operatorKey: string, size: { cols: number; rows: number }): Promise<ShellSession> {
    if (this.session) throw new SweepError('BUSY', `a shell session (${this.session.id}) is already open; one at a time`);
    const isRoot = this.deps.isRoot ?? (() => process.getuid?.() === 0);
    if (!this.opts.user && isRoot()) throw new SweepError('FORBIDDEN', 'shell.user: required when the runtime runs as root (the shell never runs as root)');
    const ids = this.opts.user ? await lookupUser(this.opts.user) : undefined;
    if (ids?.uid === 0) throw new SweepError('FORBIDDEN', `shell.user: "${this.opts.user}" is root; an unprivileged user is required`);
    if (this.session) throw new SweepError('BUSY', 'a shell session was opened meanwhile; one at a time');
    const spawn = await this.deps.spawn();
    const id = randomBytes(12).toString('base64url');
    const pty = spawn(this.opts.command, [], {
      name: 'xterm',
      cols: size.cols,
      rows: size.rows,
      cwd: '/',
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', TERM: 'xterm', HOME: '/', LANG: 'C.UTF-8' },
      ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
    });
    const s = { id, operatorKey, lastSeq: -1, pty, pending: [] as Buffer[], pendingBytes: 0, paused: false };
    this.session = s;
    pty.onData((d) => {
      if (this.session !== s) return;
      const b = Buffer.from(d, 'utf8');
      s.pending.push(b);
      s.pendingBytes += b.length;
      this.touch();
      this.pump();
    });
    pty.onExit(({ exitCode }) => {
      if (this.session === s) this.end('exited', exitCode);
    });
    this.touch();
    this.deps.log.warn({ session: id, user: this.opts.user ?? '(runtime user)' }, 'remote shell opened');
    return { id, operatorKey, lastSeq: -1 };
  }

  /** Types `data` into session `id` if `seq` is newer than the last one (Q12). */
  input(id: string, seq: number, data: Buffer): void {
    const s = this.session;
    if (!s || s.id !== id) throw new SweepError('NOT_FOUND', `shell session ${id} is not open`);
    if (seq <= s.lastSeq) throw new SweepError('REPLAYED', `shell input seq ${seq}: not after ${s.lastSeq}`);
    s.lastSeq = seq;
    this.refill();
    if (data.length > this.inTokens) throw new SweepError('RATE_LIMITED', `shell input: ${data.length} bytes, ${Math.floor(this.inTokens)} allowed now`);
    this.inTokens -= data.length;
    this.touch();
    s.pty.write(data.toString('utf8'));
  }

  close(id?: string): void {
    if (this.session && (id === undefined || this.session.id === id)) this.end('closed');
  }

  private end(reason: string, exitCode?: number): void {
    const s = this.session;
    if (!s) return;
    this.flushAll(s);
    this.session = undefined;
    if (s.idle) this.deps.clock.clear(s.idle);
    if (s.pump) this.deps.clock.clear(s.pump);
    try {
      s.pty.kill();
    } catch {
      // already gone
    }
    this.deps.log.warn({ session: s.id, reason }, 'remote shell closed');
    this.deps.closed(s.id, reason, exitCode);
  }

  private touch(): void {
    const s = this.session;
    if (!s) return;
    if (s.idle) this.deps.clock.clear(s.idle);
    s.idle = this.deps.clock.setTimeout(() => this.end('idle'), this.opts.idleTimeoutMs);
  }

  private refill(): void {
    const now = this.deps.clock.mono();
    const add = ((now - this.lastRefill) * this.opts.maxBytesPerSecond) / 1000;
    this.lastRefill = now;
    this.outTokens = Math.min(this.opts.maxBytesPerSecond, this.outTokens + add);
    this.inTokens = Math.min(this.opts.maxBytesPerSecond, this.inTokens + add);
  }

  private pump(): void {
    const s = this.session;
    if (!s) return;
    this.refill();
    const n = Math.min(Math.floor(this.outTokens), s.pendingBytes);
    if (n > 0) {
      const all = Buffer.concat(s.pending);
      this.deps.output(s.id, all.subarray(0, n));
      const rest = all.subarray(n);
      s.pending = rest.length ? [rest] : [];
      s.pendingBytes = rest.length;
      this.outTokens -= n;
    }
    const tooMuch = s.pendingBytes > this.opts.maxBytesPerSecond;
    if (tooMuch && !s.paused) {
      s.pty.pause();
      s.paused = true;
    } else if (!tooMuch && s.paused) {
      s.pty.resume();
      s.paused = false;
    }
    if (s.pendingBytes > 0 && !s.pump) {
      s.pump = this.deps.clock.setTimeout(() => {
        s.pump = undefined;
        this.pump();
      }, 100);
    }
  }

  /** On close, what is pending within the current budget still goes out. */
  private flushAll(s: NonNullable<typeof this.session>): void {
    this.refill();
    const n = Math.min(Math.floor(this.outTokens), s.pendingBytes);
    if (n > 0) this.deps.output(s.id, Buffer.concat(s.pending).subarray(0, n));
  }
}
