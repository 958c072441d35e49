import type { BrowserContext, Page } from 'playwright-core';
import { waitUntil } from '../../lab/story.ts';
import { startLocalPushService } from '../helpers/local-push-service.ts';
import { loggedIn, noCallLeft, sleep, type BrowserWorld } from './harness.ts';

/**
 * The browser suite's step (10), A16: a closed page still rings. Its subscription (made with a
 * local push service, as Chromium's own needs its vendor's) is bound to it; the tab closes; the
 * door rings; the server's encrypted push reaches the push service, whose payload the service
 * worker shows; the answer on the handset replaces it. A second ring: the tap on the notification
 * opens the page, which resumes its session, rings and answers.
 */
export async function webPushStep(bw: BrowserWorld): Promise<Record<string, unknown>> {
  const { world } = bw;
  const intercom = world.get('intercom');
  const handset = world.get('handset');
  await noCallLeft(world);
  const closers: Array<() => unknown> = [];
  const push = await startLocalPushService({ teardown: (fn) => closers.push(fn) });
  try {
    const tab = await bw.phone('alice', 'alice-push');
    await tab.getByTestId('login').click();
    const tabId = await loggedIn(tab);
    const context = tab.context();
    // As on a phone whose user allowed both. CDP's grant rejects every permission it does not list,
    // and a page without the microphone's permission hides its addresses behind mDNS names (none at
    // all in this namespace): its links to the devices never open.
    await context.grantPermissions(['notifications', 'microphone']);
    const swReady = await tab.evaluate(() => (globalThis as unknown as { sweep: { serviceWorker: () => Promise<boolean> } }).sweep.serviceWorker());
    const vapid = await tab.evaluate(() => (globalThis as unknown as { sweep: { pushKey: () => Promise<string> } }).sweep.pushKey());
    const sub = await push.subscribe(vapid);
    await tab.evaluate((s) => (globalThis as unknown as { sweep: { subscribePush: (s: unknown) => Promise<void> } }).sweep.subscribePush(s), { endpoint: sub.endpoint, keys: sub.keys });
    const bound = (await world.server.store.pushSubscriptionsOf('alice')).map((r) => r.endpointId);
    const cdpHost = await context.newPage();
    const cdp = await context.newCDPSession(cdpHost);
    const registrations: Array<{ registrationId: string; scopeURL: string }> = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e: { registrations: Array<{ registrationId: string; scopeURL: string; isDeleted: boolean }> }) => registrations.push(...e.registrations.filter((r) => !r.isDeleted)));
    await cdp.send('ServiceWorker.enable');
    await tab.close();
    await waitUntil(() => !intercom.endpoint.householdOf('alice').some((e) => e.endpointId === tabId), 8000, 'the closed tab is offline');
    await intercom.endpoint.calls.ringAccount('alice', { doorRights: true });
    await waitUntil(() => push.messages(sub.clientHash).length === 1, 8000, 'the ring push reached the push service');
    const deliver = async (data: string) => {
      const reg = registrations.find((r) => r.scopeURL.startsWith(bw.url))!;
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: new URL(bw.url).origin, registrationId: reg.registrationId, data });
    };
    const shown = async (n: number) => {
      const worker = context.serviceWorkers()[0]!;
      const deadline = Date.now() + 8000;
      for (;;) {
        const list = await worker.evaluate(() => (globalThis as unknown as { registration: { getNotifications(): Promise<Array<{ title: string; body: string; tag: string }>> } }).registration.getNotifications().then((ns) => ns.map((x) => ({ title: x.title, body: x.body, tag: x.tag }))));
        if (list.length === n && (n === 0 || list[0]!.body !== '')) return list;
        if (Date.now() > deadline) return list;
        await sleep(50);
      }
    };
    await deliver(push.messages(sub.clientHash)[0]!);
    const ringing = await shown(1);
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state === 'ringing', 8000, 'the handset rings');
    await handset.endpoint.calls.answer();
    await waitUntil(() => push.messages(sub.clientHash).length === 2, 8000, 'the follow-up push');
    await deliver(push.messages(sub.clientHash)[1]!);
    await sleep(300);
    const replaced = await shown(1);
    await intercom.endpoint.calls.hangup('test over');
    const seen = push.seen.map((s) => ({ urgency: s.urgency, topic: s.topic }));
    const tap = await tapAnswers(bw, { push, sub, deliver, shown, context });
    return { swReady, bound, tabId, ringing, replaced, seen, ...tap };
  } finally {
    for (const close of closers) await close();
  }
}

type PushCtx = { push: Awaited<ReturnType<typeof startLocalPushService>>; sub: { clientHash: string }; deliver: (data: string) => Promise<void>; shown: (n: number) => Promise<unknown>; context: BrowserContext };

/**
 * A second ring: the tap on the notification. The service worker's notificationclick opens the
 * page's scope (sw.ts); the page resumes its session (A8) and must be rung with the household
 * while the door still rings (H1). What the test sees: `tapError` when it was not.
 */
async function tapAnswers(
  bw: BrowserWorld,
  x: PushCtx,
): Promise<Record<string, unknown>> {
  const { push, sub, deliver, shown, context } = x;
  const intercom = bw.world.get('intercom');
  const handset = bw.world.get('handset');
  try {
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state !== 'active', 5000, 'the handset call ended');
    // The tap: the service worker's notificationclick opens the page's scope (sw.ts); the page
    // resumes its session (A8) and is rung with the household while the door still rings (H1).
    const pushed = push.messages(sub.clientHash).length;
    const ring = intercom.endpoint.calls.ringAccount('alice', { doorRights: true }).catch(() => undefined);
    await waitUntil(() => push.messages(sub.clientHash).length === pushed + 1, 8000, 'the second ring push');
    await deliver(push.messages(sub.clientHash)[pushed]!);
    // The first call's "Answered on …" note stays; the second call's ring is a notification of its own.
    const tappedRinging = ((await shown(2)) as Array<{ title: string }>).filter((n) => n.title.endsWith('is ringing'));
    const tapped = await context.newPage();
    await tapped.goto(bw.url);
    await tapped.getByTestId('incoming').waitFor({ timeout: 15_000 }).catch(async () => {
      throw new Error(`the page the notification opened did not ring; it shows: ${(await tapped.innerText('body')).replace(/\s+/g, ' ').slice(0, 300)}`);
    });
    await tapped.getByTestId('answer-call').click();
    await waitUntil(() => intercom.endpoint.calls.snapshot()?.state === 'active', 10_000, 'the door talks to someone');
    const tapAnsweredBy = intercom.endpoint.calls.snapshot()?.peer.endpointId;
    await ring;
    await intercom.endpoint.calls.hangup('test over');
    return { tappedRinging, tapAnsweredBy, ...(await dndWithdrawsPush(bw, tapped, x)) };
  } catch (err) {
    await intercom.endpoint.calls.hangup('test over').catch(() => undefined);
    return { tapError: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * H7 with A16: do not disturb on the page withdraws its push subscription, is kept across a
 * reload, and a closed page set so gets no ring push; turned off, the subscription is back.
 */
async function dndWithdrawsPush(bw: BrowserWorld, page: Page, x: PushCtx): Promise<Record<string, unknown>> {
  const { push, sub, context } = x;
  const { world } = bw;
  const tabId = await loggedIn(page);
  const subscribed = async () => (await world.server.store.pushSubscriptionsOf('alice')).some((r) => r.endpointId === tabId);
  const until = async (want: boolean) => {
    for (const end = Date.now() + 5000; Date.now() < end && (await subscribed()) !== want; ) await sleep(50);
    return (await subscribed()) === want;
  };
  await page.getByTestId('dnd').check();
  const dndWithdrew = await until(false);
  await page.reload();
  await loggedIn(page);
  const dndKept = await page.getByTestId('dnd').isChecked();
  await page.close();
  await waitUntil(() => !world.get('intercom').endpoint.householdOf('alice').some((e) => e.endpointId === tabId), 8000, 'the page is closed');
  const before = push.messages(sub.clientHash).length;
  const ring = world.get('intercom').endpoint.calls.ringAccount('alice').catch(() => undefined);
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ringing', 8000, 'the handset rings');
  await sleep(1000);
  const dndPushes = push.messages(sub.clientHash).length - before;
  await world.get('intercom').endpoint.calls.hangup('test over');
  await ring;
  const again = await context.newPage();
  await again.goto(bw.url);
  await loggedIn(again);
  await again.getByTestId('dnd').uncheck();
  const dndOffSubscribed = await until(true);
  await again.close();
  return { dndWithdrew, dndKept, dndPushes, dndOffSubscribed };
}
