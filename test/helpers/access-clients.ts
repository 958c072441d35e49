import type { Test } from 'tap';
import { WebSocket } from 'ws';
import { AccessClient, type AccessClientOptions } from '../../runtime/access/access-client.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from './endpoint-keys.ts';

/** The test accounts' passwords (alice and bob are buddies in the tests that use them; carol a stranger). */
export const PASSWORDS: Record<string, string> = { alice: 'alice-pw-1', bob: 'bob-pw-2', carol: 'carol-pw-3' };

/** A desk phone's access client for `account` with throwaway keys and quick back-off; closed when the test ends. */
export function testClient(t: Test, server: { url: string; publicKeyRaw: string }, account: string, endpointId: string, over: Partial<AccessClientOptions> = {}): AccessClient {
  const client = new AccessClient({
    url: server.url,
    username: account,
    password: PASSWORDS[account] ?? 'x',
    endpointId,
    kind: 'deskphone',
    label: `${endpointId} label`,
    ...fakeEndpointKeys(),
    serverPublicKeyRaw: server.publicKeyRaw,
    log: silentLogger(),
    backoff: { initialMs: 20, maxMs: 200 },
    requestTimeoutMs: 5000,
    ...over,
  });
  t.teardown(() => client.close());
  return client;
}

/** A test client, logged in. */
export async function onlineClient(t: Test, server: { url: string; publicKeyRaw: string }, account: string, endpointId: string): Promise<AccessClient> {
  const c = testClient(t, server, account, endpointId);
  await c.start();
  return c;
}

/** One answer on a raw access socket. */
export interface RawAnswer {
  status: string;
  data?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/** A raw access socket that sends requests and awaits their answers; terminated when the test ends. */
export async function rawAccess(t: Test, url: string): Promise<(type: string, body: object) => Promise<RawAnswer>> {
  const ws = new WebSocket(url);
  t.teardown(() => ws.terminate());
  await new Promise((r) => ws.once('open', r));
  const waiting = new Map<string, (m: RawAnswer) => void>();
  ws.on('message', (d: Buffer) => {
    const m = JSON.parse(d.toString()) as RawAnswer & { id?: string };
    if (m.id) waiting.get(m.id)?.(m);
  });
  let n = 0;
  return (type, body) =>
    new Promise((resolve) => {
      const id = `r${++n}`;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ kind: 'req', id, type, body }));
    });
}
