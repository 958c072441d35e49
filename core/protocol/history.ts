import { z } from 'zod';
import { AccountName, EndpointId, Id } from './common.ts';

/**
 * A15: the record of one household call (docs/protocol.md part H), made by the endpoint that
 * rang (the intercom) from its H11 events and kept by the access server. One record per call,
 * however many endpoints rang.
 */
export const HistoryEndpoint = z.strictObject({ endpointId: EndpointId, label: z.string().max(64) });
export type HistoryEndpoint = z.infer<typeof HistoryEndpoint>;

/** A sweep of the answered call between two devices of the household (S7, seen on the far end). */
export const HistorySweep = z.strictObject({
  from: HistoryEndpoint,
  to: HistoryEndpoint,
  /** ms since the ring started. */
  ms: z.number().min(0).max(86_400_000),
});
export type HistorySweep = z.infer<typeof HistorySweep>;

export const CallRecord = z.strictObject({
  sessionId: Id,
  /** The household rung: the account whose endpoints may read the record (with the caller's). */
  account: AccountName,
  /** The door: the endpoint that rang, which is the one reporting (A15). */
  door: HistoryEndpoint,
  /** Who rang: the label the call rang with (the bell button's flat). */
  caller: z.string().max(64),
  /** Wall clock, ms since the epoch, when the ring started. */
  startedAt: z.number().int().min(0),
  /** Every endpoint that rang (H11), in the order they started ringing. */
  rang: z.array(HistoryEndpoint).max(64),
  answeredBy: HistoryEndpoint.optional(),
  /** ms from the ring to the answer. */
  answeredMs: z.number().min(0).max(86_400_000).optional(),
  sweeps: z.array(HistorySweep).max(64),
  outcome: z.enum(['answered', 'missed', 'cancelled']),
  reason: z.string().max(256).optional(),
  /** ms from the ring to the end of the call (ringing and talking). */
  durationMs: z.number().min(0).max(86_400_000),
});
export type CallRecord = z.infer<typeof CallRecord>;

export const HistoryReportResult = z.strictObject({
  /** False when the server already had this record (a report sent again after a lost answer). */
  stored: z.boolean(),
});

export const HistoryListBody = z.strictObject({ limit: z.number().int().min(1).max(20) });
/** The newest first; the server sends fewer than `limit` when more would not fit one message (M2). */
export const HistoryListResult = z.strictObject({ records: z.array(CallRecord).max(20) });
