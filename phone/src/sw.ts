import { PushPayload } from '../../core/protocol/push.ts';

/**
 * The phone page's service worker (A16): shows the access server's ring pushes while the page is
 * closed, replaces them when the call is answered elsewhere or missed (same tag: the call's
 * session), and opens the page when tapped, which logs in again and gets the invite (H1).
 * Typed by hand: the page's build has the DOM library, not the worker one.
 */
interface PushEventLike {
  data: { json(): unknown } | null;
  waitUntil(p: Promise<unknown>): void;
}
interface NotificationEventLike {
  notification: { close(): void; data: unknown };
  action: string;
  waitUntil(p: Promise<unknown>): void;
}
interface WindowClientLike {
  url: string;
  focus(): Promise<unknown>;
}
interface WorkerScope {
  registration: { showNotification(title: string, options: NotificationOptions & { renotify?: boolean; requireInteraction?: boolean; actions?: Array<{ action: string; title: string }> }): Promise<void> };
  clients: { matchAll(o: { type: 'window'; includeUncontrolled: boolean }): Promise<WindowClientLike[]>; openWindow(url: string): Promise<unknown> };
  location: { href: string };
  addEventListener(type: 'push', fn: (e: PushEventLike) => void): void;
  addEventListener(type: 'notificationclick', fn: (e: NotificationEventLike) => void): void;
}

const sw = self as unknown as WorkerScope;

sw.addEventListener('push', (event) => {
  let json: unknown;
  try {
    json = event.data?.json();
  } catch {
    json = undefined;
  }
  const parsed = PushPayload.safeParse(json);
  if (!parsed.success) return;
  const p = parsed.data;
  const ringing = p.state === 'ringing';
  event.waitUntil(
    sw.registration.showNotification(p.title, {
      body: p.body,
      // One notification per call: the follow-up replaces the ring.
      tag: p.sessionId,
      renotify: ringing,
      requireInteraction: ringing,
      silent: !ringing,
      icon: 'icon-192.png',
      data: p,
      actions: ringing ? [{ action: 'answer', title: 'Answer' }] : [],
    }),
  );
});

sw.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const scope = new URL('./', sw.location.href).href;
  event.waitUntil(
    sw.clients.matchAll({ type: 'window', includeUncontrolled: true }).then(async (open) => {
      const page = open.find((c) => c.url.startsWith(scope));
      // The page resumes its session (A8) and the intercom rings it (H1).
      if (page) await page.focus();
      else await sw.clients.openWindow(scope);
    }),
  );
});
