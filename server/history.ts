import { CallRecord, type CallRecord as CallRecordType } from '../core/protocol/history.ts';
import { MAX_MESSAGE_BYTES } from '../core/protocol/validate.ts';
import { SweepError } from '../core/errors.ts';
import type { Logger } from '../platform/log.ts';
import type { OnlineEndpoint } from './registry.ts';
import type { AccountStore } from './store.ts';

/** How long call records are kept unless the server is told otherwise (`--history-days`). */
export const DEFAULT_HISTORY_DAYS = 90;

/** Room left in a `history.list` answer for the envelope around the records (M2). */
const LIST_BYTES = MAX_MESSAGE_BYTES - 1024;

/**
 * A15: stores a household call's record for the endpoint that rang. The record must name the
 * reporter as its door, and ring an account the reporter may call (its own, or a buddy, P5):
 * anything else is refused FORBIDDEN and stored nowhere. The account's records older than
 * `retentionMs` are deleted first, and a record that old is not stored.
 */
export async function reportCall(store: AccountStore, log: Logger, me: OnlineEndpoint, record: CallRecordType, now: number, retentionMs: number): Promise<{ stored: boolean }> {
  const reporter = me.info.endpointId;
  if (record.door.endpointId !== reporter) {
    throw new SweepError('FORBIDDEN', `history.report: record.door.endpointId: "${record.door.endpointId}" is not the reporting endpoint "${reporter}"; an endpoint reports only calls it rang`);
  }
  if (record.account !== me.account && !(await store.areBuddies(me.account, record.account))) {
    throw new SweepError('FORBIDDEN', `history.report: record.account: "${record.account}" is not an account ${me.account} may call (its own or a buddy)`);
  }
  // Retention: a household's door log is kept for a while, not for ever (personal data).
  const before = now - retentionMs;
  await store.pruneCallRecords(record.account, before);
  if (record.startedAt < before) {
    log.info({ account: record.account, door: reporter, sessionId: record.sessionId }, 'call record older than the retention; not stored');
    return { stored: false };
  }
  const stored = await store.addCallRecord({
    doorEndpoint: reporter,
    sessionId: record.sessionId,
    account: record.account,
    callerAccount: me.account,
    startedAt: record.startedAt,
    record: JSON.stringify(record),
  });
  log.info({ account: record.account, door: reporter, sessionId: record.sessionId, outcome: record.outcome, rang: record.rang.length, stored }, 'call recorded');
  return { stored };
}

/** A15: the newest records `me`'s account may read (calls that rang it, or that it rang), as many as fit one message. */
export async function listCalls(store: AccountStore, log: Logger, me: OnlineEndpoint, limit: number): Promise<{ records: CallRecordType[] }> {
  const rows = await store.callRecordsFor(me.account, limit);
  const records: CallRecordType[] = [];
  let bytes = 0;
  for (const row of rows) {
    const parsed = CallRecord.safeParse(JSON.parse(row.record));
    if (!parsed.success) {
      log.warn({ sessionId: row.sessionId, door: row.doorEndpoint }, 'stored call record no longer valid; skipped');
      continue;
    }
    bytes += Buffer.byteLength(row.record) + 1;
    if (bytes > LIST_BYTES) break;
    records.push(parsed.data);
  }
  return { records };
}
