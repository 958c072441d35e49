import { WebSocket } from 'ws';
import { fakeEndpointKeys } from './endpoint-keys.ts';
import type { startLocalPushService, LocalSubscription } from './local-push-service.ts';
import { waitUntil } from '../../lab/story.ts';
import type { World } from '../../lab/world.ts';

/** A16 in tests and the ring bench: a phone page as the access server sees it, and one whose tab was closed. */
export type LocalPush = Awaited<ReturnType<typeof startLocalPushService>>;

/**
 * A phone page of alice as the server sees it: the access WebSocket of a browser endpoint, spoken
 * by hand so the test can close it the way a closed tab does (no logout).
 */
export async function pageSocket(t: { teardown(fn: () => unknown): void }, world: World, endpointId: string, account = 'alice') {
  const ws = new WebSocket(world.server.url);
  t.teardown(() => ws.terminate());
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let next = 0;
  const request = (type: string, body: unknown): Promise<{ status: string; data?: unknown; error?: { code: string; message: string } }> =>
    new Promise((resolve) => {
      const id = `r${++next}`;
      const onMessage = (raw: Buffer) => {
        const msg = JSON.parse(raw.toString()) as { kind: string; id?: string; status: string };
        if (msg.kind !== 'res' || msg.id !== id) return;
        ws.off('message', onMessage);
        resolve(msg);
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ kind: 'req', id, type, body }));
    });
  const { signingKeyRaw, dtlsFingerprint } = fakeEndpointKeys();
  const login = await request('login', { username: account, password: world.passwords.get(account), endpointId, kind: 'browser', label: 'Smartphone (browser)', signingKey: signingKeyRaw, dtlsFingerprint });
  if (login.status !== 'ok') throw new Error(`login: ${JSON.stringify(login.error)}`);
  return { ws, request };
}

/** A page subscribes with the server's VAPID key, then its tab is closed (the socket goes, no logout). */
export async function closedPage(t: { teardown(fn: () => unknown): void }, world: World, push: LocalPush, endpointId: string): Promise<LocalSubscription> {
  const page = await pageSocket(t, world, endpointId);
  const key = (await page.request('push.key', {})).data as { publicKey: string };
  const sub = await push.subscribe(key.publicKey);
  const r = await page.request('push.subscribe', { subscription: { endpoint: sub.endpoint, keys: sub.keys } });
  if (r.status !== 'ok') throw new Error(`push.subscribe: ${JSON.stringify(r.error)}`);
  page.ws.terminate();
  await waitUntil(() => !world.get('intercom').endpoint.householdOf('alice').some((e) => e.endpointId === endpointId), 5000, 'the page is offline');
  return sub;
}

