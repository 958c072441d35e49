import { join } from 'node:path';
import { z } from 'zod';
import type { EventBus } from '../../core/bus.ts';
import { toSweepError } from '../../core/errors.ts';
import { CallRecord } from '../../core/protocol/history.ts';
import type { EndpointEvents } from '../../core/session/events.ts';
import type { Logger } from '../../platform/log.ts';
import type { AccessClient } from './access-client.ts';
import { StateFile } from '../state/state-file.ts';

/** Records kept while the access server is out of reach; the oldest is dropped first. */
const MAX_WAITING = 20;
/** Refusals that trying again cannot fix (the record itself is wrong). */
const FINAL = new Set(['FORBIDDEN', 'INVALID_MESSAGE', 'UNKNOWN_TYPE', 'TOO_LARGE']);
const Waiting = z.strictObject({ records: z.array(CallRecord).max(MAX_WAITING) });

/**
 * A15: sends every household call record this endpoint makes (`call.record` on the bus) to the
 * access server over its access connection. A record that cannot go now (offline, timeout) waits
 * and goes when the connection is back; the server stores a record sent twice once. The records
 * waiting are kept in the state dir, so a restart (a crash, a power cut) does not lose them.
 */
export class HistoryReporter {
  private readonly waiting: CallRecord[];
  private readonly kept: StateFile<z.infer<typeof Waiting>>;
  private sending = false;
  private closed = false;

  constructor(
    private readonly bus: EventBus<EndpointEvents>,
    private readonly access: Pick<AccessClient, 'request'>,
    private readonly log: Logger,
    stateDir: string,
  ) {
    this.kept = new StateFile(join(stateDir, 'call-records-waiting.json'), Waiting, log);
    this.waiting = this.kept.read()?.records ?? [];
    if (this.waiting.length > 0) {
      log.info({ records: this.waiting.length }, 'call records from before the restart wait for the access server');
      void this.flush();
    }
    bus.on(this, 'call.record', (e) => this.enqueue(e.record));
    bus.on(this, 'access.state', (e) => {
      if (e.connected) void this.flush();
    });
  }

  close(): void {
    this.closed = true;
    this.kept.close();
    this.bus.removeOwner(this);
  }

  private enqueue(record: CallRecord): void {
    this.waiting.push(record);
    if (this.waiting.length > MAX_WAITING) {
      const dropped = this.waiting.shift();
      this.log.warn({ sessionId: dropped?.sessionId }, 'call record dropped: too many waiting for the access server');
    }
    this.kept.write({ records: this.waiting });
    void this.flush();
  }

  /** One at a time, in order; stops at the first record that must wait. Never rejects. */
  private async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (!this.closed && this.waiting.length > 0) {
        const record = this.waiting[0]!;
        try {
          const { stored } = await this.access.request('history.report', { record });
          this.log.info({ sessionId: record.sessionId, outcome: record.outcome, stored }, 'call record reported');
        } catch (err) {
          const e = toSweepError(err);
          if (!FINAL.has(e.code)) {
            this.log.info({ sessionId: record.sessionId, code: e.code }, 'call record waits for the access server');
            return;
          }
          this.log.warn({ sessionId: record.sessionId, code: e.code, reason: e.message }, 'call record refused by the access server');
        }
        this.waiting.shift();
        this.kept.write({ records: this.waiting });
      }
    } finally {
      this.sending = false;
    }
  }
}
