import { z } from 'zod';
import { AccountName, EndpointId, Id } from './common.ts';
import type { Catalogue } from './envelope.ts';

/**
 * The peer protocol: JSON on the reliable ordered data channel `ctl` of a link between two
 * endpoints. Rule numbers (P…, S…) refer to docs/protocol.md.
 */

export const Party = z.strictObject({ account: AccountName, endpointId: EndpointId, label: z.string().max(64) });
export type Party = z.infer<typeof Party>;

export const Codec = z.literal('opus/48000/1');

/** Everything the next holder needs to carry a call on (S4). */
export const SessionState = z.strictObject({
  sessionId: Id,
  farEnd: Party,
  epoch: z.number().int().min(0),
  codec: Codec,
  startedAt: z.number().int(),
  onHold: z.boolean(),
  muted: z.boolean(),
  doorRights: z.boolean(),
});
export type SessionState = z.infer<typeof SessionState>;

/** The grant's signed payload (S4): the holder hands session `sessionId` at `epoch` to `to`. */
export const GrantPayload = z.strictObject({
  sessionId: Id,
  from: EndpointId,
  to: EndpointId,
  epoch: z.number().int().min(1),
  nonce: Id,
  expiresAt: z.number().int(),
});
export type GrantPayload = z.infer<typeof GrantPayload>;

export const SweepScope = z.enum(['session', 'login']);
export type SweepScope = z.infer<typeof SweepScope>;

const Token = z.string().max(4096);
const Reason = z.string().max(256);
const Empty = z.strictObject({});

export const peerCatalogue = {
  requests: {
    /**
     * P2: first message each way; carries the endpoint certificate and the sender's instance id,
     * new at every start of the endpoint's process or page (L6).
     */
    hello: { body: z.strictObject({ v: z.literal(1), certificate: Token, instance: Id, resume: Id.optional() }), result: Empty },
    /** C1: the sender calls the receiver. */
    'call.invite': { body: z.strictObject({ sessionId: Id, doorRights: z.boolean() }), result: Empty },
    'call.answer': { body: z.strictObject({ sessionId: Id }), result: z.strictObject({ startedAt: z.number().int() }) },
    'call.reject': { body: z.strictObject({ sessionId: Id, reason: Reason }), result: Empty },
    'call.hangup': { body: z.strictObject({ sessionId: Id, reason: Reason }), result: Empty },
    /**
     * H2, H5: the caller of a household call stops one rung endpoint's ring: another endpoint
     * answered (`by`: its label), nobody did (`missed`), or the caller hung up.
     */
    'call.cancel': {
      body: z.strictObject({ sessionId: Id, reason: z.enum(['answered', 'missed', 'callerHungUp']), by: z.string().max(64).optional() }),
      result: Empty,
    },
    /** L7: a restarted page reclaims its own call (same certified endpoint) within the C5 grace. */
    'call.resume': {
      body: z.strictObject({ sessionId: Id, epoch: z.number().int().min(0) }),
      result: z.strictObject({ sessionId: Id, epoch: z.number().int().min(0), doorRights: z.boolean(), startedAt: z.number().int().nullable() }),
    },
    /** S3: the newcomer asks the holder to give the call up. */
    'sweep.goAway': {
      body: z.strictObject({ sweepId: Id, sessionId: Id, scope: SweepScope }),
      result: z.strictObject({ sweepId: Id, session: SessionState, grant: Token }),
    },
    /** S4: the newcomer acknowledges the session info. */
    'sweep.ack': { body: z.strictObject({ sweepId: Id }), result: Empty },
    /** S5: the newcomer asks the far end to move the call to it. */
    'sweep.update': {
      body: z.strictObject({ sweepId: Id, sessionId: Id, epoch: z.number().int().min(1), grant: Token.nullable() }),
      result: z.strictObject({ sessionId: Id, epoch: z.number().int().min(1), doorRights: z.boolean() }),
    },
    /** S10: push: the holder asks a same-account endpoint to pull the call. */
    'sweep.invite': {
      body: z.strictObject({ sweepId: Id, sessionId: Id, scope: SweepScope }),
      result: z.strictObject({ accepted: z.boolean(), reason: Reason.optional() }),
    },
    /** S8: either side of a pending sweep gives up; the holder keeps the call. */
    'sweep.cancel': { body: z.strictObject({ sweepId: Id, reason: Reason }), result: Empty },
    /** D1: the current holder of an intercom call asks the intercom to pulse its door relay. */
    'door.open': { body: z.strictObject({ sessionId: Id }), result: z.strictObject({ pulseMs: z.number().int().min(1) }) },
  },
  notes: {
    /** L5: "I am alive", sent on every ready link at a fixed interval. */
    'link.alive': Empty,
    /** L3: a sibling tells its same-account endpoints which far end it is in a call with. */
    'presence.call': z.strictObject({
      call: z.strictObject({ sessionId: Id, farEnd: Party, epoch: z.number().int().min(0) }).nullable(),
    }),
    /** S7: the far end tells the old holder that the new holder's media flows. */
    'sweep.moved': z.strictObject({ sessionId: Id, epoch: z.number().int().min(1), to: EndpointId }),
  },
} satisfies Catalogue;
export type PeerCatalogue = typeof peerCatalogue;
