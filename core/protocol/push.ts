import { z } from 'zod';
import { AccountName, EndpointId, Id } from './common.ts';

/**
 * A16: Web Push (issue 15 item 4). A browser endpoint hands the access server its push
 * subscription; the endpoint that rings a household tells the server how the ring goes, and the
 * server pushes to the household's browser endpoints that are not online.
 */

/** 65 bytes (an uncompressed P-256 point), base64url: the subscription's `p256dh` key. */
export const P256dhKey = z.string().regex(/^[A-Za-z0-9_-]{87}$/, 'a P-256 public key (65 bytes, base64url without padding)');
/** 16 bytes, base64url: the subscription's `auth` secret. */
export const AuthSecret = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'an auth secret (16 bytes, base64url without padding)');

/** What `PushSubscription.toJSON()` gives (the server checks the URL's scheme and host, A16). */
export const PushSubscriptionJson = z.strictObject({
  endpoint: z.string().min(1).max(2048),
  expirationTime: z.number().int().nullable().optional(),
  keys: z.strictObject({ p256dh: P256dhKey, auth: AuthSecret }),
});
export type PushSubscriptionJson = z.infer<typeof PushSubscriptionJson>;

/** How a household ring goes, as the ringing endpoint tells the server (one push topic per call). */
export const RingNotice = z.strictObject({
  sessionId: Id,
  account: AccountName,
  /** Who rings, as the notification shows it ("Front door"). */
  label: z.string().max(64),
  state: z.enum(['ringing', 'answered', 'missed', 'cancelled']),
  /** `answered`: where ("Desk handset"). */
  by: z.string().max(64).optional(),
  /** `ringing`: how long the push is worth delivering (about the ring timeout). */
  ttlMs: z.number().int().min(1000).max(600_000).optional(),
  /**
   * Follow-ups: the endpoints the ring push went to, as the server answered it. The follow-up
   * then needs no memory on the node that pushed the ring (another node may send it).
   */
  pushedTo: z.array(EndpointId).max(64).optional(),
});
export type RingNotice = z.infer<typeof RingNotice>;

/** The payload the service worker gets (encrypted by the server for the subscription, RFC 8291). */
export const PushPayload = z.strictObject({
  v: z.literal(1),
  sessionId: Id,
  state: RingNotice.shape.state,
  title: z.string().max(128),
  body: z.string().max(256),
});
export type PushPayload = z.infer<typeof PushPayload>;

export const pushRequests = {
  /** The server's VAPID public key (65 bytes, base64url): the page subscribes with it. */
  'push.key': { body: z.strictObject({}), result: z.strictObject({ publicKey: P256dhKey }) },
  /** Binds this push subscription to the calling endpoint (replacing its previous one). */
  'push.subscribe': { body: z.strictObject({ subscription: PushSubscriptionJson }), result: z.strictObject({}) },
  /** Deletes the calling endpoint's subscription, and only its own. */
  'push.unsubscribe': { body: z.strictObject({}), result: z.strictObject({ removed: z.boolean() }) },
  /** The ringing endpoint's account may call `account`; `pushed`: how many pushes the push services accepted, `pushedTo`: to which endpoints. */
  'ring.notify': { body: RingNotice, result: z.strictObject({ pushed: z.number().int().min(0), pushedTo: z.array(EndpointId).max(64).optional() }) },
} as const;
