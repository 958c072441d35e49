import { createHash } from 'node:crypto';
import webpush from 'web-push';
import { SweepError } from '../../core/errors.ts';
import type { PushPayload, PushSubscriptionJson, RingNotice } from '../../core/protocol/push.ts';
import type { Logger } from '../../platform/log.ts';
import type { OnlineEndpoint } from '../registry.ts';
import type { AccountStore, PushSubscriptionRow } from '../store.ts';
import type { VapidKeys } from './vapid.ts';

export interface PushOptions {
  /** The VAPID contact (RFC 8292): a mailto: or https: URL the push services may write to. */
  subject?: string;
  /** Tests only: accept http:// subscription endpoints on loopback (a local push service). */
  allowLoopbackHttp?: boolean;
  /** Per push request; default 10 s. */
  timeoutMs?: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
/** How long the pushes of one ring are remembered for its follow-up (beyond its TTL). */
const FOLLOW_UP_GRACE_MS = 60_000;
/** TTL of follow-ups: "missed" is worth delivering to a phone that comes back later; the rest are not. */
const FOLLOW_UP_TTL_S = { answered: 60, cancelled: 60, missed: 3600 } as const;

/**
 * A16: Web Push on the access server. Subscriptions are checked and bound to the endpoint that
 * made them; a ring notice from an endpoint that may call the household pushes to that
 * household's subscribed endpoints that are not online (urgency high, TTL about the ring
 * timeout, one topic per call), and the follow-up replaces it under the same topic. Subscriptions
 * the push service reports gone (404, 410) are deleted.
 */
export class PushService {
  /** sessionId → the endpoints pushed for that ring, until its follow-up. */
  private readonly rings = new Map<string, { endpoints: Set<string>; until: number }>();

  constructor(
    private readonly store: AccountStore,
    private readonly vapid: VapidKeys,
    private readonly log: Logger,
    private readonly opts: PushOptions = {},
  ) {}

  get publicKey(): string {
    return this.vapid.publicKey;
  }

  async subscribe(me: OnlineEndpoint, sub: PushSubscriptionJson, now: number): Promise<Record<string, never>> {
    if (me.info.kind !== 'browser') throw new SweepError('FORBIDDEN', `push.subscribe: only browser endpoints subscribe to pushes; this one is a ${me.info.kind}`);
    const url = this.checkEndpoint(sub.endpoint);
    if (Buffer.from(sub.keys.p256dh, 'base64url')[0] !== 0x04) throw new SweepError('INVALID_MESSAGE', 'push.subscribe: subscription.keys.p256dh: not an uncompressed P-256 point (must start with 0x04)');
    await this.store.putPushSubscription({ endpointId: me.info.endpointId, account: me.account, url: url.href, p256dh: sub.keys.p256dh, auth: sub.keys.auth, createdAt: now });
    this.log.info({ account: me.account, endpointId: me.info.endpointId, pushHost: url.host }, 'push subscription stored');
    return {};
  }

  async unsubscribe(me: OnlineEndpoint): Promise<{ removed: boolean }> {
    return { removed: await this.store.deletePushSubscription(me.info.endpointId) };
  }

  /** A16: a ring notice; returns how many pushes the push services accepted. */
  async notice(me: OnlineEndpoint, n: RingNotice, now: number): Promise<{ pushed: number; pushedTo: string[] }> {
    if (n.account !== me.account && !(await this.store.areBuddies(me.account, n.account))) {
      throw new SweepError('FORBIDDEN', `ring.notify: account: "${n.account}" is not an account ${me.account} may call (its own or a buddy)`);
    }
    for (const [id, r] of this.rings) if (r.until < now) this.rings.delete(id);
    const subs = await this.store.pushSubscriptionsOf(n.account);
    let targets: PushSubscriptionRow[];
    if (n.state === 'ringing') {
      const online = new Set((await this.store.onlineForAccount(n.account)).map((r) => r.endpointId));
      targets = subs.filter((s) => !online.has(s.endpointId));
      const ttlMs = n.ttlMs ?? 60_000;
      this.rings.set(n.sessionId, { endpoints: new Set(targets.map((s) => s.endpointId)), until: now + ttlMs + FOLLOW_UP_GRACE_MS });
    } else {
      // The ringing endpoint says where the ring push went (the node that sent it may be gone);
      // this node's memory covers a follow-up sent before that answer came back.
      const pushed = new Set([...(this.rings.get(n.sessionId)?.endpoints ?? []), ...(n.pushedTo ?? [])]);
      this.rings.delete(n.sessionId);
      targets = subs.filter((s) => pushed.has(s.endpointId));
    }
    const results = await Promise.all(targets.map((s) => this.send(s, n)));
    const pushedTo = targets.filter((_, i) => results[i]).map((s) => s.endpointId);
    this.log.info({ account: n.account, sessionId: n.sessionId, state: n.state, targets: targets.length, pushed: pushedTo.length }, 'ring pushed');
    return { pushed: pushedTo.length, pushedTo };
  }

  private checkEndpoint(text: string): URL {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new SweepError('INVALID_MESSAGE', 'push.subscribe: subscription.endpoint: not a URL');
    }
    const loopbackHttp = url.protocol === 'http:' && LOOPBACK.has(url.hostname) && this.opts.allowLoopbackHttp === true;
    if (url.protocol !== 'https:' && !loopbackHttp) {
      throw new SweepError('INVALID_MESSAGE', `push.subscribe: subscription.endpoint: a ${url.protocol}// URL; allowed: https:// (a push service)`);
    }
    if (url.username || url.password) throw new SweepError('INVALID_MESSAGE', 'push.subscribe: subscription.endpoint: a URL with credentials is not allowed');
    return url;
  }

  /** True when the push service took it; a subscription it reports gone is deleted. Never rejects. */
  private async send(s: PushSubscriptionRow, n: RingNotice): Promise<boolean> {
    const ringing = n.state === 'ringing';
    const payload: PushPayload = { v: 1, sessionId: n.sessionId, state: n.state, ...wording(n) };
    let status: number | undefined;
    try {
      // web-push encrypts (RFC 8291) and signs (VAPID, RFC 8292); the request itself goes by fetch,
      // which speaks the URL's scheme (web-push always speaks TLS, and a test's push service is plain http on loopback).
      const req = webpush.generateRequestDetails({ endpoint: s.url, keys: { p256dh: s.p256dh, auth: s.auth } }, JSON.stringify(payload), {
        vapidDetails: { subject: this.opts.subject ?? 'mailto:sweep@localhost', publicKey: this.vapid.publicKey, privateKey: this.vapid.privateKey },
        TTL: n.state === 'ringing' ? Math.ceil((n.ttlMs ?? 60_000) / 1000) : FOLLOW_UP_TTL_S[n.state],
        urgency: ringing ? 'high' : 'normal',
        // One topic per call: the follow-up replaces a ring push still waiting in the push service.
        topic: createHash('sha256').update(n.sessionId).digest('base64url').slice(0, 32),
      });
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const res = await fetch(s.url, { method: 'POST', headers, body: req.body ?? undefined, redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
      status = res.status;
      await res.arrayBuffer().catch(() => undefined);
      if (status >= 200 && status < 300) return true;
    } catch (err) {
      this.log.warn({ endpointId: s.endpointId, reason: err instanceof Error ? err.message : String(err) }, 'push not sent');
      return false;
    }
    if (status === 404 || status === 410) {
      await this.store.deletePushSubscription(s.endpointId, s.url).catch(() => false);
      this.log.info({ endpointId: s.endpointId, status }, 'push subscription gone; deleted');
    } else {
      this.log.warn({ endpointId: s.endpointId, status }, 'push not accepted');
    }
    return false;
  }
}

/** What the notification says (the service worker shows it as is). */
function wording(n: RingNotice): { title: string; body: string } {
  const who = n.label || 'The door';
  switch (n.state) {
    case 'ringing':
      return { title: `${who} is ringing`, body: 'Tap to answer' };
    case 'answered':
      return { title: who, body: `Answered on ${n.by ?? 'another device'}` };
    case 'missed':
      return { title: who, body: 'Missed' };
    case 'cancelled':
      return { title: who, body: 'Stopped ringing' };
  }
}
