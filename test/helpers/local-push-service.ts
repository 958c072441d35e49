import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the push service received: the headers RFC 8030 gives meaning to. */
export interface PushRequestSeen {
  clientHash: string;
  ttl: string | undefined;
  urgency: string | undefined;
  topic: string | undefined;
}

export interface LocalSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  clientHash: string;
}

/** The parts of web-push-testing's model used here (it has no types). */
interface PushApiModel {
  notifyUrl: string;
  subscribe(options: { userVisibleOnly: 'true' | 'false'; applicationServerKey: string }): Promise<LocalSubscription>;
  getNotifications(body: { clientHash: string }): { messages: string[] };
  expireSubscription(clientHash: string): void;
}
interface TestingServer {
  _app: { use(fn: (req: { path: string; get(h: string): string | undefined }, res: unknown, next: () => void) => void): void; listen(port: number, host: string, cb: () => void): Server };
  setRequestHandlers(): void;
}

/**
 * A real Web Push service on 127.0.0.1 (the `web-push-testing` package, RFC 8030/8291/8292:
 * it checks the VAPID signature and decrypts what it receives), for tests without the internet.
 * Closed when the test ends.
 */
export async function startLocalPushService(t: { teardown(fn: () => unknown): void }): Promise<{
  subscribe(applicationServerKey: string): Promise<LocalSubscription>;
  messages(clientHash: string): string[];
  expire(clientHash: string): void;
  seen: PushRequestSeen[];
}> {
  const require = createRequire(import.meta.url);
  const Model = require('web-push-testing/src/PushApiModel.js') as { PushApiModel: new () => PushApiModel };
  const ServerClass = require('web-push-testing/src/server.js') as new (model: PushApiModel, port: number) => TestingServer;
  const model = new Model.PushApiModel();
  const service = new ServerClass(model, 0);
  const seen: PushRequestSeen[] = [];
  service._app.use((req, _res, next) => {
    const m = /^\/notify\/([0-9a-f]+)$/.exec(req.path);
    if (m) seen.push({ clientHash: m[1]!, ttl: req.get('TTL'), urgency: req.get('Urgency'), topic: req.get('Topic') });
    next();
  });
  // Loopback only (its own start() listens on every interface).
  const http = await new Promise<Server>((resolve) => {
    const s = service._app.listen(0, '127.0.0.1', () => resolve(s));
  });
  service.setRequestHandlers();
  model.notifyUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/notify/`;
  t.teardown(() => new Promise<void>((resolve) => http.close(() => resolve())));
  return {
    subscribe: (applicationServerKey) => model.subscribe({ userVisibleOnly: 'true', applicationServerKey }),
    messages: (clientHash) => model.getNotifications({ clientHash }).messages,
    expire: (clientHash) => model.expireSubscription(clientHash),
    seen,
  };
}
