import t, { type Test } from 'tap';
import { labWorld } from '../helpers/world.ts';
import { startLocalPushService, type LocalSubscription } from '../helpers/local-push-service.ts';
import { waitUntil } from '../../lab/story.ts';
import { closedPage, pageSocket, type LocalPush } from '../helpers/push-page.ts';
import type { PushPayload } from '../../core/protocol/push.ts';

/** A16: Web Push from the access server to a real local push service, driven by real household rings (part H). */

function payloads(push: LocalPush, sub: LocalSubscription): PushPayload[] {
  return push.messages(sub.clientHash).map((m) => JSON.parse(m) as PushPayload);
}

async function household(t: Test, ringTimeoutMs = 20_000) {
  const world = await labWorld(t, { push: { allowLoopbackHttp: true }, ringTimeoutMs });
  const push = await startLocalPushService(t);
  return { world, push };
}

void t.test('a ring of the household pushes "Front door intercom is ringing" to a closed phone page; the answer elsewhere replaces it under the same topic (A16, H2)', async (t) => {
  const { world, push } = await household(t);
  const sub = await closedPage(t, world, push, 'alice-page');
  await world.get('intercom').endpoint.calls.ringAccount('alice', { doorRights: true });
  await waitUntil(() => push.messages(sub.clientHash).length === 1, 8000, 'the ring push reached the push service');
  const [ring] = payloads(push, sub);
  t.match(ring, { v: 1, state: 'ringing', title: 'Front door intercom is ringing', body: 'Tap to answer' }, 'what the notification shows');
  const first = push.seen[0]!;
  t.equal(first.urgency, 'high', 'urgency high');
  t.equal(first.ttl, '20', 'lives as long as the ring timeout (20 s)');
  t.match(first.topic, /^[A-Za-z0-9_-]{32}$/, 'one topic per call');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ringing', 8000, 'the handset rings');
  await world.get('handset').endpoint.calls.answer();
  await waitUntil(() => push.messages(sub.clientHash).length === 2, 8000, 'the follow-up push');
  t.match(payloads(push, sub)[1], { state: 'answered', title: 'Front door intercom', body: 'Answered on Desk handset', sessionId: ring!.sessionId });
  t.equal(push.seen[1]!.topic, first.topic, 'same topic: it replaces the ring push');
  t.equal(push.seen.filter((s) => s.clientHash !== sub.clientHash).length, 0, 'no push to anyone else');
});

void t.test('a ring nobody answers ends with a "missed" push; an online page gets no push (A16, H5)', async (t) => {
  const { world, push } = await household(t, 3000);
  const closed = await closedPage(t, world, push, 'alice-page');
  const open = await pageSocket(t, world, 'alice-open');
  const key = (await open.request('push.key', {})).data as { publicKey: string };
  const openSub = await push.subscribe(key.publicKey);
  t.equal((await open.request('push.subscribe', { subscription: { endpoint: openSub.endpoint, keys: openSub.keys } })).status, 'ok');
  await world.get('intercom').endpoint.calls.ringAccount('alice');
  await waitUntil(() => push.messages(closed.clientHash).length === 1, 8000, 'the ring push');
  t.equal(push.seen[0]!.ttl, '3', 'the TTL follows the ring timeout');
  // Nobody answers within the ring timeout (H5).
  await waitUntil(() => push.messages(closed.clientHash).length === 2, 8000, 'the missed push');
  t.match(payloads(push, closed)[1], { state: 'missed', body: 'Missed' });
  t.same(push.messages(openSub.clientHash), [], 'the open page rings over its link, not by push');
});

void t.test('a subscription the push service reports gone (410) is deleted; the next ring pushes nothing (A16)', async (t) => {
  const { world, push } = await household(t);
  const sub = await closedPage(t, world, push, 'alice-page');
  push.expire(sub.clientHash);
  await world.get('intercom').endpoint.calls.ringAccount('alice');
  await waitUntil(() => push.seen.length === 1, 8000, 'the push service was tried');
  await world.get('intercom').endpoint.calls.hangup('test');
  await waitUntil(() => world.get('intercom').endpoint.calls.snapshot()?.state === 'ended', 5000, 'ended');
  t.same(await world.server.store.pushSubscriptionsOf('alice'), [], 'the subscription is gone from the store');
  await world.get('intercom').endpoint.calls.ringAccount('alice');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(push.seen.length, 1, 'nothing more was sent');
});

void t.test('push.subscribe refuses bad subscriptions with the field; one endpoint cannot delete another\'s (A16)', async (t) => {
  const { world, push } = await household(t);
  const page = await pageSocket(t, world, 'alice-page');
  const key = (await page.request('push.key', {})).data as { publicKey: string };
  const sub = await push.subscribe(key.publicKey);
  const refusal = async (subscription: unknown) => {
    const r = await page.request('push.subscribe', { subscription });
    return r.status === 'ok' ? 'ok' : `${r.error!.code}: ${r.error!.message}`;
  };
  t.match(await refusal({ endpoint: 'ftp://push.example/x', keys: sub.keys }), /^INVALID_MESSAGE: .*subscription\.endpoint: a ftp:\/\/ URL; allowed: https:\/\//);
  t.match(await refusal({ endpoint: 'http://push.example.com/x', keys: sub.keys }), /^INVALID_MESSAGE: .*subscription\.endpoint: a http:\/\/ URL/, 'plain http only to loopback in tests');
  t.match(await refusal({ endpoint: sub.endpoint, keys: { ...sub.keys, p256dh: 'AAAA' } }), /^INVALID_MESSAGE: .*keys\.p256dh/);
  t.match(await refusal({ endpoint: sub.endpoint, keys: { ...sub.keys, auth: sub.keys.auth + 'AA' } }), /^INVALID_MESSAGE: .*keys\.auth/);
  t.equal(await refusal({ endpoint: sub.endpoint, keys: sub.keys }), 'ok');

  const other = await pageSocket(t, world, 'alice-other');
  t.same((await other.request('push.unsubscribe', {})).data, { removed: false }, "another endpoint's unsubscribe removes only its own (none)");
  t.equal((await world.server.store.pushSubscriptionsOf('alice')).length, 1, 'the first page keeps its subscription');
  const desk = world.get('handset').endpoint.access;
  await t.rejects(desk.request('push.subscribe', { subscription: { endpoint: sub.endpoint, keys: sub.keys } }), { code: 'FORBIDDEN', message: /only browser endpoints/ });
  t.same((await page.request('push.unsubscribe', {})).data, { removed: true });
  t.equal(await refusal({ endpoint: sub.endpoint, keys: sub.keys }), 'ok');
  t.equal((await page.request('logout', {})).status, 'ok');
  t.same(await world.server.store.pushSubscriptionsOf('alice'), [], 'a page that logs out gets no more pushes (a shared browser, A10)');
});

void t.test('an endpoint id the operator releases takes its push subscription with it: the next account on that browser gets none of the old account\'s rings (A10, A16)', async (t) => {
  const { world, push } = await household(t);
  const sub = await closedPage(t, world, push, 'alice-page');
  t.equal(await world.server.store.releaseEndpoint('alice-page'), 'alice', 'what `sweep server endpoint release alice-page` does');
  t.same(await world.server.store.pushSubscriptionsOf('alice'), [], 'the subscription went with the binding');
  await world.get('intercom').endpoint.calls.ringAccount('alice');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ringing', 8000, 'the handset rings');
  await new Promise((r) => setTimeout(r, 300));
  t.same(push.messages(sub.clientHash), [], 'no ring push to the released page');
  await world.get('intercom').endpoint.calls.hangup('test');
});
