import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AgentCommand, AgentLine } from './ns-agent.ts';

/** The script NatNet.sockets() runs inside a namespace (`node --import tsx NS_AGENT`). */
export const NS_AGENT = fileURLToPath(new URL('./ns-agent.ts', import.meta.url));

/** A datagram (or a TCP chunk) that arrived, with its sender as this socket saw it. */
export interface Received {
  data: Buffer;
  address: string;
  port: number;
}

/** Arrivals on one socket in order; receive() waits for the next, or resolves undefined on timeout or end. */
class Inbox {
  #queue: Received[] = [];
  #waiters: ((r: Received | undefined) => void)[] = [];
  #ended = false;

  push(r: Received): void {
    const w = this.#waiters.shift();
    if (w) w(r);
    else this.#queue.push(r);
  }

  end(): void {
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  get ended(): boolean {
    return this.#ended;
  }

  receive(timeoutMs: number): Promise<Received | undefined> {
    const r = this.#queue.shift();
    if (r || this.#ended) return Promise.resolve(r);
    return new Promise((resolve) => {
      const waiter = (x: Received | undefined) => {
        clearTimeout(timer);
        resolve(x);
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        resolve(undefined);
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }
}

type Command = AgentCommand extends infer C ? (C extends AgentCommand ? Omit<C, 'id'> : never) : never;

/** A UDP socket bound to 0.0.0.0:port inside the namespace. */
export class NsUdp {
  constructor(
    private readonly agent: NsSockets,
    private readonly sock: number,
    /** The local port it is bound to. */
    readonly port: number,
    private readonly inbox: Inbox,
  ) {}

  async send(data: Buffer | string, host: string, port: number): Promise<void> {
    await this.agent.request({ op: 'send', sock: this.sock, data: Buffer.from(data).toString('base64'), host, port });
  }

  /** The next datagram from anyone, or undefined when none arrives within timeoutMs. */
  receive(timeoutMs: number): Promise<Received | undefined> {
    return this.inbox.receive(timeoutMs);
  }

  async close(): Promise<void> {
    await this.agent.request({ op: 'close', sock: this.sock });
  }
}

/** A TCP (or TLS) connection made from inside the namespace. */
export class NsStream {
  constructor(
    private readonly agent: NsSockets,
    private readonly sock: number,
    /** Its local port. */
    readonly port: number,
    private readonly inbox: Inbox,
  ) {}

  async write(data: Buffer | string): Promise<void> {
    await this.agent.request({ op: 'send', sock: this.sock, data: Buffer.from(data).toString('base64') });
  }

  /** The next chunk read, or undefined on timeout or when the connection has ended. */
  receive(timeoutMs: number): Promise<Received | undefined> {
    return this.inbox.receive(timeoutMs);
  }

  get ended(): boolean {
    return this.inbox.ended;
  }

  async close(): Promise<void> {
    await this.agent.request({ op: 'close', sock: this.sock });
  }
}

/**
 * Sockets opened inside a network namespace by a child process (ns-agent.ts) that the test drives
 * over its stdin/stdout. A failed command rejects with the agent's error; when the agent exits,
 * pending commands reject and every socket's receive() resolves undefined. close() ends the
 * agent (idempotent).
 */
export class NsSockets {
  #child: ChildProcess;
  #nextId = 1;
  #pending = new Map<number, { resolve: (r: { sock?: number; port?: number }) => void; reject: (e: Error) => void }>();
  #inboxes = new Map<number, Inbox>();
  #exited: Promise<void>;
  #gone: string | undefined;
  #stderr = '';

  private constructor(child: ChildProcess, readonly ns: string) {
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
  }

  /** Wraps a freshly spawned agent (stdio all pipes) and waits until it is ready. */
  static async start(child: ChildProcess, ns: string): Promise<NsSockets> {
    const agent = new NsSockets(child, ns);
    await agent.#ready();
    return agent;
  }

  #ready(): Promise<void> {
    const child = this.#child;
    return new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-2000)));
      const gone = (why: string) => {
        if (this.#gone !== undefined) return;
        this.#gone = `the socket agent in ${this.ns} ${why}${this.#stderr ? `: ${this.#stderr.trim()}` : ''}`;
        for (const p of this.#pending.values()) p.reject(new Error(this.#gone));
        this.#pending.clear();
        for (const inbox of this.#inboxes.values()) inbox.end();
        reject(new Error(this.#gone));
      };
      child.once('error', (err) => gone(`did not start (${err.message})`));
      child.once('exit', (code, signal) => gone(`exited (${code ?? signal})`));
      if (!child.stdout || !child.stdin) {
        gone('has no stdin/stdout pipes');
        return;
      }
      createInterface({ input: child.stdout }).on('line', (text) => {
        const line = JSON.parse(text) as AgentLine;
        if ('ev' in line) {
          if (line.ev === 'ready') resolve();
          else if (line.ev === 'data') this.#inboxes.get(line.sock)?.push({ data: Buffer.from(line.data, 'base64'), address: line.address, port: line.port });
          else this.#inboxes.get(line.sock)?.end();
          return;
        }
        const p = this.#pending.get(line.id);
        this.#pending.delete(line.id);
        if (line.ok) p?.resolve(line);
        else p?.reject(new Error(`${this.ns}: ${line.error}`));
      });
    });
  }

  /** Sends one command; resolves with the agent's reply. */
  request(cmd: Command): Promise<{ sock?: number; port?: number }> {
    if (this.#gone !== undefined) return Promise.reject(new Error(this.#gone));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#child.stdin?.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  #inbox(sock: number | undefined): { sock: number; inbox: Inbox } {
    if (sock === undefined) throw new Error(`${this.ns}: the agent answered without a socket`);
    const inbox = new Inbox();
    this.#inboxes.set(sock, inbox);
    return { sock, inbox };
  }

  /** A UDP socket bound to 0.0.0.0:port (port 0: any free port). */
  async udp(port = 0): Promise<NsUdp> {
    const r = await this.request({ op: 'udp', port });
    const { sock, inbox } = this.#inbox(r.sock);
    return new NsUdp(this, sock, r.port ?? 0, inbox);
  }

  /** A TCP connection to host:port; with `ca` (PEM) a TLS connection that trusts only that certificate. */
  async tcp(host: string, port: number, opts: { ca?: string } = {}): Promise<NsStream> {
    const r = await this.request({ op: 'tcp', host, port, ...(opts.ca === undefined ? {} : { ca: opts.ca }) });
    const { sock, inbox } = this.#inbox(r.sock);
    return new NsStream(this, sock, r.port ?? 0, inbox);
  }

  /** A server on 0.0.0.0:port that answers every datagram (UDP) or chunk (TCP) with the sender's "address:port". */
  async reflect(proto: 'udp' | 'tcp', port: number): Promise<void> {
    await this.request({ op: 'reflect', proto, port });
  }

  async close(): Promise<void> {
    if (this.#gone === undefined) this.#child.stdin?.end();
    await this.#exited;
  }
}
