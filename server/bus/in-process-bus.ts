import { SweepError } from '../../core/errors.ts';
import type { Bus, BusHandler, BusMessage, BusSubscription } from './bus.ts';

const DRAIN_BATCH = 256;

/**
 * The bus inside one process: what a single node uses, so it meets the same asynchronous,
 * ordered delivery as a cluster. Messages are queued and delivered one at a time on a later
 * turn of the event loop, in publishing order. Several nodes in one process may share one hub.
 */
export class InProcessBus implements Bus {
  private readonly subscribers = new Map<string, Set<BusHandler>>();
  private readonly queue: Array<() => void> = [];
  private draining = false;
  private closed = false;
  private readonly pending = new Set<(err: SweepError) => void>();

  get connected(): boolean {
    return !this.closed;
  }

  publish(subject: string, data: string): void {
    if (this.closed) return;
    this.enqueue(subject, { data, respond: () => undefined });
  }

  subscribe(subject: string, handler: BusHandler): BusSubscription {
    let set = this.subscribers.get(subject);
    if (!set) this.subscribers.set(subject, (set = new Set()));
    set.add(handler);
    return {
      unsubscribe: () => {
        const current = this.subscribers.get(subject);
        current?.delete(handler);
        if (current?.size === 0) this.subscribers.delete(subject);
      },
    };
  }

  request(subject: string, data: string, timeoutMs: number): Promise<string> {
    if (this.closed) return Promise.reject(new SweepError('CLOSED', 'bus: closed'));
    return new Promise<string>((resolve, reject) => {
      let open = true;
      const finish = (): void => {
        open = false;
        clearTimeout(timer);
        this.pending.delete(fail);
      };
      const fail = (err: SweepError): void => {
        if (!open) return;
        finish();
        reject(err);
      };
      const timer = setTimeout(() => fail(new SweepError('TIMEOUT', `bus: no reply on ${subject} within ${timeoutMs} ms`)), timeoutMs);
      this.pending.add(fail);
      const msg = {
        data,
        respond: (reply: string) => {
          if (!open) return;
          finish();
          resolve(reply);
        },
      };
      this.enqueue(subject, msg, () => fail(new SweepError('OFFLINE', `bus: no responders on ${subject}`)));
    });
  }

  flush(): Promise<void> {
    // Subscriptions take effect at once; queued messages are not waited for.
    return Promise.resolve();
  }

  onReconnect(): () => void {
    // Never disconnects.
    return () => undefined;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.queue.length = 0;
    this.subscribers.clear();
    for (const fail of [...this.pending]) fail(new SweepError('CLOSED', 'bus: closed'));
    return Promise.resolve();
  }

  private enqueue(subject: string, msg: BusMessage, noSubscriber?: () => void): void {
    this.queue.push(() => {
      const handlers = this.subscribers.get(subject);
      if (!handlers) noSubscriber?.();
      for (const handler of [...(handlers ?? [])]) {
        try {
          handler(msg);
        } catch {
          // A subscriber's failure is its own (see Bus).
        }
      }
    });
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    // A bounded batch per turn keeps delivery fair to the sockets' own traffic.
    for (let i = 0; i < DRAIN_BATCH && !this.closed; i++) {
      const next = this.queue.shift();
      if (!next) break;
      next();
    }
    if (this.queue.length > 0 && !this.closed) setImmediate(() => this.drain());
    else this.draining = false;
  }
}
