import type { CallRecord } from '../../core/protocol/history.ts';
import type { Logger } from '../../core/log.ts';

/** How many calls the page lists. */
const SHOWN = 10;
/** The intercom reports a call just after it ends: the list is read again a moment later (A15). */
const AFTER_CALL_MS = [1000, 4000];

/**
 * A15: the household's last calls as the access server keeps them, for the page: read at login
 * and again after every call this page saw end (the intercom's report is on its way then).
 */
export class RecentCalls {
  private records: CallRecord[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;

  constructor(
    private readonly read: (limit: number) => Promise<CallRecord[]>,
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {}

  get list(): readonly CallRecord[] {
    return this.records;
  }

  async refresh(): Promise<void> {
    try {
      const records = await this.read(SHOWN);
      if (this.closed) return;
      const changed = JSON.stringify(records) !== JSON.stringify(this.records);
      this.records = records;
      if (changed) this.onChange();
    } catch (err) {
      this.log.info({ err: err instanceof Error ? err.message : String(err) }, 'recent calls not read');
    }
  }

  /** A call ended here: read the list again once the intercom's report has had time to arrive. */
  callEnded(): void {
    for (const ms of AFTER_CALL_MS) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.refresh();
      }, ms);
      this.timers.add(timer);
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

/** One call in words: "Missed" with who rang, or where it was answered and where it moved. */
export function describeCall(r: CallRecord): { title: string; detail: string; missed: boolean } {
  const when = new Date(r.startedAt).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
  const door = r.door.label || r.door.endpointId;
  const rang = r.rang.map((e) => e.label || e.endpointId).join(', ') || 'no device';
  if (r.outcome !== 'answered' || !r.answeredBy) {
    const how = r.outcome === 'cancelled' ? 'Stopped ringing' : 'Missed';
    return { title: `${how}: ${door}`, detail: `${when} · rang ${rang}`, missed: r.outcome === 'missed' };
  }
  const moves = r.sweeps.map((s) => ` → ${s.to.label || s.to.endpointId}`).join('');
  const talk = Math.max(0, Math.round((r.durationMs - (r.answeredMs ?? 0)) / 1000));
  return { title: `${door}`, detail: `${when} · answered on ${r.answeredBy.label || r.answeredBy.endpointId}${moves} · ${Math.floor(talk / 60)}:${String(talk % 60).padStart(2, '0')}`, missed: false };
}
