import { connect, DebugEvents, ErrorCode, Events, StringCodec, type NatsConnection, type NatsError } from 'nats';
import { SweepError } from '../../core/errors.ts';
import type { Bus, BusHandler, BusSubscription } from './bus.ts';

const codec = StringCodec();

export interface NatsBusOptions {
  /** nats://host:port, several separated by commas (the servers of one NATS cluster). */
  url: string;
  /** Shown in NATS monitoring (the node's id). */
  name: string;
  /** Called with what happened to the connection (for the node's log); `routine`: a debug event. */
  onStatus?: (event: string, data: unknown, routine: boolean) => void;
}

const ROUTINE_EVENTS: ReadonlySet<string> = new Set(Object.values(DebugEvents));

/** Whether a NATS status event is routine (its client's ping every few seconds), not news for an operator. */
export function isRoutineBusStatus(event: string): boolean {
  return ROUTINE_EVENTS.has(event);
}

/**
 * The bus over NATS (a cluster's nodes): core NATS publish/subscribe and request/reply, which
 * says "no responders" when nobody subscribes to a subject. The client reconnects for ever;
 * listeners of `onReconnect` then refill what they may have missed (presence, from the store).
 */
export class NatsBus implements Bus {
  private readonly reconnectListeners = new Set<() => void>();
  private closing: Promise<void> | undefined;
  private isConnected = true;
  /** The flush that the callers of this turn share (see flush). */
  private nextFlush: Promise<void> | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly opts: NatsBusOptions,
  ) {
    void this.watch();
  }

  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const servers = opts.url.split(',').map((s) => s.trim());
    for (const s of servers) {
      if (!/^nats:\/\/[^/\s]+$/.test(s)) throw new SweepError('INVALID_CONFIG', `--bus: "${s}" is not a nats://host:port URL`);
    }
    try {
      const nc = await connect({ servers, name: opts.name, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2_000, maxPingOut: 2, timeout: 5_000 });
      return new NatsBus(nc, opts);
    } catch (err) {
      throw new SweepError('CLOSED', `bus: cannot connect to ${opts.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  get connected(): boolean {
    return this.isConnected && !this.nc.isClosed();
  }

  publish(subject: string, data: string): void {
    if (this.nc.isClosed()) return;
    this.nc.publish(subject, codec.encode(data));
  }

  subscribe(subject: string, handler: BusHandler): BusSubscription {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          handler({ data: codec.decode(msg.data), respond: (reply) => void msg.respond(codec.encode(reply)) });
        } catch {
          // A subscriber's failure is its own (see Bus).
        }
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  async request(subject: string, data: string, timeoutMs: number): Promise<string> {
    if (this.nc.isClosed()) throw new SweepError('CLOSED', 'bus: closed');
    try {
      const reply = await this.nc.request(subject, codec.encode(data), { timeout: timeoutMs });
      return codec.decode(reply.data);
    } catch (err) {
      const code = (err as NatsError).code;
      if (code === (ErrorCode.NoResponders as string)) throw new SweepError('OFFLINE', `bus: no responders on ${subject}`);
      if (code === (ErrorCode.Timeout as string)) throw new SweepError('TIMEOUT', `bus: no reply on ${subject} within ${timeoutMs} ms`);
      throw new SweepError('CLOSED', `bus: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * One PING for every flush asked in the same turn of the event loop: it is written after all
   * of them, so its PONG covers every subscription they made. A restart storm's logins each
   * flush; one round trip each cost the node and the server a PING apiece.
   */
  flush(): Promise<void> {
    if (this.nc.isClosed()) return Promise.reject(new SweepError('CLOSED', 'bus: closed'));
    this.nextFlush ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      this.nextFlush = undefined;
      try {
        await this.nc.flush();
      } catch (err) {
        throw new SweepError('CLOSED', `bus: ${(err as Error).message}`, { cause: err });
      }
    });
    return this.nextFlush;
  }

  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  close(): Promise<void> {
    this.closing ??= this.nc.close().catch(() => undefined);
    return this.closing;
  }

  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      this.opts.onStatus?.(status.type, status.data, isRoutineBusStatus(status.type));
      if (status.type === Events.Disconnect) this.isConnected = false;
      if (status.type === Events.Reconnect) {
        this.isConnected = true;
        for (const listener of [...this.reconnectListeners]) {
          try {
            listener();
          } catch {
            // A listener's failure is its own.
          }
        }
      }
    }
  }
}
