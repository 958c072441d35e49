import type { Logger } from '../log.ts';
import { SweepError, toWireError, type ErrorCode } from '../errors.ts';
import { systemClock, type Clock } from '../clock.ts';
import { Envelope, type Catalogue, type NoteBody, type NoteType, type ParsedRequestBody, type RequestBody, type RequestResult, type RequestType } from './envelope.ts';
import { parseJsonText, parseWith } from './validate.ts';

const KNOWN_CODES = new Set<string>([
  'INVALID_MESSAGE', 'INVALID_CONFIG', 'UNKNOWN_TYPE', 'TOO_LARGE', 'TIMEOUT', 'CLOSED', 'UNAUTHORIZED',
  'FORBIDDEN', 'RATE_LIMITED', 'NOT_FOUND', 'OFFLINE', 'BUSY', 'STALE_EPOCH', 'REPLAYED', 'EXPIRED',
  'REFUSED', 'BAD_STATE', 'ANSWERED_ELSEWHERE', 'DO_NOT_DISTURB', 'INTERNAL',
]);

export type RequestHandler<C extends Catalogue, T extends RequestType<C>> = (
  body: ParsedRequestBody<C, T>,
) => Promise<RequestResult<C, T>> | RequestResult<C, T>;

interface Pending {
  type: string;
  resolve: (data: unknown) => void;
  reject: (err: SweepError) => void;
  timer: { id: unknown };
  /** Where the request was made; its stack is formatted only if the request fails. */
  caller: Error;
}

export interface RpcChannelOptions<C extends Catalogue> {
  catalogue: C;
  /** Writes one text frame to the transport. May throw; the channel turns that into a rejection. */
  send: (text: string) => void;
  /** Only these three levels are used, so a browser can pass a console-backed logger. */
  log: Pick<Logger, 'debug' | 'warn' | 'error'>;
  clock?: Clock;
  timeoutMs?: number;
  /** Called before any inbound request is dispatched; throw a SweepError to refuse it (e.g. before hello). */
  admit?: (type: string) => void;
  /** Told about every inbound message that was refused as malformed (for counters and logs). */
  onBadMessage?: (err: SweepError) => void;
  /**
   * A17: the peer reads `retryAfterMs` on errors, so refusals carry it. Off by default: an older
   * peer's strict schema would drop the whole response, and its request would time out.
   */
  sendRetryAfter?: boolean;
}

/**
 * Request/response over one ordered text channel (mediasoup's Channel, herdsman's Waitress):
 * ids, a timeout per request, the caller's stack kept on rejection, reject-all on close,
 * and notifications delivered after the response that precedes them.
 */
export class RpcChannel<C extends Catalogue> {
  private readonly pending = new Map<string, Pending>();
  private readonly handlers = new Map<string, (body: unknown) => unknown>();
  private readonly noteHandlers = new Map<string, (body: unknown) => void>();
  private readonly clock: Clock;
  /** Why the channel closed; its error is made only for a request that meets it (a reconnecting crowd closes many channels with nothing pending). */
  private closedBecause: string | undefined;

  constructor(private readonly opts: RpcChannelOptions<C>) {
    this.clock = opts.clock ?? systemClock;
  }

  get closed(): boolean {
    return this.closedBecause !== undefined;
  }

  handle<T extends RequestType<C>>(type: T, handler: RequestHandler<C, T>): void {
    this.handlers.set(type, handler as (body: unknown) => unknown);
  }

  onNote<T extends NoteType<C>>(type: T, fn: (body: NoteBody<C, T>) => void): void {
    this.noteHandlers.set(type, fn as (body: unknown) => void);
  }

  request<T extends RequestType<C>>(
    type: T,
    body: RequestBody<C, T>,
    options: { timeoutMs?: number } = {},
  ): Promise<RequestResult<C, T>> {
    // Captured, not formatted: formatting a stack on every request (with source maps, 0.1 ms and
    // more) was a fifth of a light client's login; only a failure reads it.
    const caller = new Error();
    if (this.closedBecause !== undefined) return Promise.reject(new SweepError('CLOSED', this.closedBecause));
    const id = randomId();
    return new Promise<RequestResult<C, T>>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.opts.timeoutMs ?? 5000;
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(withStack(new SweepError('TIMEOUT', `${type}: no response within ${timeoutMs} ms`), caller));
      }, timeoutMs);
      this.pending.set(id, {
        type,
        resolve: resolve as (d: unknown) => void,
        reject,
        timer,
        caller,
      });
      try {
        this.opts.send(JSON.stringify({ kind: 'req', id, type, body }));
      } catch (err) {
        this.settle(id)?.reject(new SweepError('CLOSED', `${type}: send failed: ${(err as Error).message}`));
      }
    });
  }

  notify<T extends NoteType<C>>(type: T, body: NoteBody<C, T>): void {
    if (this.closedBecause !== undefined) return;
    try {
      this.opts.send(JSON.stringify({ kind: 'note', type, body }));
    } catch (err) {
      this.opts.log.warn({ err, type }, 'notification not sent');
    }
  }

  /** Feeds one inbound frame. Never throws: malformed input is answered or logged and dropped. */
  receive(text: string | Uint8Array | ArrayBuffer): void {
    if (this.closedBecause !== undefined) return;
    let env: Envelope;
    try {
      env = parseWith(Envelope, parseJsonText(text, 'message'), 'message');
    } catch (err) {
      this.bad(err as SweepError);
      return;
    }
    if (env.kind === 'res') this.onResponse(env);
    else if (env.kind === 'req') void this.onRequest(env.id, env.type, env.body);
    else this.onNoteMessage(env.type, env.body);
  }

  close(reason = 'channel closed'): void {
    if (this.closedBecause !== undefined) return;
    this.closedBecause = reason;
    if (this.pending.size > 0) {
      const closed = new SweepError('CLOSED', reason);
      for (const [id] of [...this.pending]) this.settle(id)?.reject(closed);
    }
    this.handlers.clear();
    this.noteHandlers.clear();
  }

  private settle(id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    this.clock.clear(p.timer);
    return p;
  }

  private onResponse(env: Extract<Envelope, { kind: 'res' }>): void {
    const p = this.settle(env.id);
    if (!p) {
      this.opts.log.debug({ id: env.id }, 'response to no pending request (late or unknown)');
      return;
    }
    if (env.status === 'error') {
      const code = (KNOWN_CODES.has(env.error.code) ? env.error.code : 'REFUSED') as ErrorCode;
      p.reject(withStack(new SweepError(code, `${p.type}: ${env.error.message}`, { retryAfterMs: env.error.retryAfterMs }), p.caller));
      return;
    }
    const schema = Object.hasOwn(this.opts.catalogue.requests, p.type) ? this.opts.catalogue.requests[p.type]?.result : undefined;
    try {
      p.resolve(schema ? parseWith(schema, env.data, `${p.type} result`) : env.data);
    } catch (err) {
      this.bad(err as SweepError);
      p.reject(withStack(err as SweepError, p.caller));
    }
  }

  private async onRequest(id: string, type: string, rawBody: unknown): Promise<void> {
    let reply: object;
    try {
      // Own keys only: "constructor" or "toString" must not find Object.prototype's members (M2).
      const entry = Object.hasOwn(this.opts.catalogue.requests, type) ? this.opts.catalogue.requests[type] : undefined;
      if (!entry) throw new SweepError('UNKNOWN_TYPE', `unknown request type "${type}"`);
      this.opts.admit?.(type);
      const body = parseWith(entry.body, rawBody, type);
      const handler = this.handlers.get(type);
      if (!handler) throw new SweepError('UNKNOWN_TYPE', `request type "${type}" is not handled here`);
      const data = await handler(body);
      reply = { kind: 'res', id, status: 'ok', data: data ?? {} };
    } catch (err) {
      // A throw without a Sweep code is a fault here (a driver, a bug): its message may name
      // paths, hosts or queries, so it goes to this side's log and the peer learns only its kind.
      if (!(err instanceof SweepError)) this.opts.log.error({ err, type }, 'request failed');
      const wire = err instanceof SweepError ? toWireError(err, this.opts.sendRetryAfter === true) : { code: 'INTERNAL', message: `${type}: internal error (the details are in the answering side's log)` };
      if (wire.code === 'INVALID_MESSAGE' || wire.code === 'UNKNOWN_TYPE') this.bad(err as SweepError);
      reply = { kind: 'res', id, status: 'error', error: wire };
    }
    if (this.closedBecause !== undefined) return;
    try {
      this.opts.send(JSON.stringify(reply));
    } catch (err) {
      this.opts.log.warn({ err, type }, 'response not sent');
    }
  }

  private onNoteMessage(type: string, rawBody: unknown): void {
    const schema = Object.hasOwn(this.opts.catalogue.notes, type) ? this.opts.catalogue.notes[type] : undefined;
    if (!schema) {
      this.bad(new SweepError('UNKNOWN_TYPE', `unknown notification type "${type}"`));
      return;
    }
    let body: unknown;
    try {
      body = parseWith(schema, rawBody, type);
    } catch (err) {
      this.bad(err as SweepError);
      return;
    }
    // Delivered after the continuation of any response that arrived before it (mediasoup #510).
    defer(() => {
      const fn = this.noteHandlers.get(type);
      if (!fn) return;
      try {
        fn(body);
      } catch (err) {
        this.opts.log.error({ err, type }, 'notification handler threw');
      }
    });
  }

  private bad(err: SweepError): void {
    this.opts.log.warn({ code: err.code, reason: err.message }, 'refused malformed message');
    this.opts.onBadMessage?.(err);
  }
}

/** 12 random characters of base64url (9 bytes), from WebCrypto: this file also runs in browsers. */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

/** After pending I/O continuations: setImmediate in Node, a zero timeout in browsers. */
const nodeImmediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
const defer = (fn: () => void): void => {
  if (nodeImmediate) nodeImmediate(fn);
  else setTimeout(fn, 0);
};

function withStack(err: SweepError, caller: Error): SweepError {
  const stack = caller.stack;
  if (stack) err.stack = `${err.name}: ${err.message}\n${stack.split('\n').slice(2).join('\n')}`;
  return err;
}
