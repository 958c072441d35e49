import type { PushSubscriptionJson } from '../../core/protocol/push.ts';
import type { Logger } from '../../core/log.ts';
import type { AccessConnection } from './access.ts';

/** Where "ring this phone when the page is closed" stands. */
export type PushState = 'unsupported' | 'off' | 'on' | 'denied' | 'failed';

/** A16: the service worker, registered at start (it shows the ring pushes while the page is closed). */
export async function registerServiceWorker(log: Logger): Promise<ServiceWorkerRegistration | undefined> {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return undefined;
  try {
    return await navigator.serviceWorker.register('sw.js', { scope: './' });
  } catch (err) {
    log.info({ err: err instanceof Error ? err.message : String(err) }, 'service worker not registered');
    return undefined;
  }
}

/** The state without asking the user anything. */
export async function pushState(reg: ServiceWorkerRegistration | undefined): Promise<PushState> {
  if (!reg || !('PushManager' in window) || !('Notification' in window)) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  return (await reg.pushManager.getSubscription().catch(() => null)) ? 'on' : 'off';
}

/**
 * A16: with the user's consent (called from a tap): notification permission, a push subscription
 * with the server's VAPID key, handed to the server for this endpoint.
 */
export async function enablePush(reg: ServiceWorkerRegistration | undefined, access: AccessConnection, log: Logger): Promise<PushState> {
  if (!reg || !('PushManager' in window)) return 'unsupported';
  if ((await Notification.requestPermission()) !== 'granted') return 'denied';
  try {
    const key = await access.pushKey();
    const sub = (await reg.pushManager.getSubscription()) ?? (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
    await access.pushSubscribe(sub.toJSON() as PushSubscriptionJson);
    return 'on';
  } catch (err) {
    log.info({ err: err instanceof Error ? err.message : String(err) }, 'push subscription failed');
    return 'failed';
  }
}
