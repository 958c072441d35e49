import type { PushSubscriptionJson } from '../../core/protocol/push.ts';
import type { Logger } from '../../core/log.ts';
import type { AccessConnection } from './access.ts';
import { loadDoNotDisturb, loadPushSubscription, saveDoNotDisturb, savePushSubscription } from './identity.ts';

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
    await handOver(access, sub.toJSON() as PushSubscriptionJson);
    return 'on';
  } catch (err) {
    log.info({ err: err instanceof Error ? err.message : String(err) }, 'push subscription failed');
    return 'failed';
  }
}

/**
 * A16: hands a push subscription to the server for this endpoint, and keeps it in the browser to
 * hand again later; while do not disturb is on, the server gets it only when that ends (H7).
 */
export async function handOver(access: AccessConnection, subscription: PushSubscriptionJson): Promise<void> {
  await savePushSubscription(subscription);
  if (!(await loadDoNotDisturb())) await access.pushSubscribe(subscription);
}

/**
 * H7 on the page: kept in the browser across reloads and closed tabs. While on, the server holds no
 * push subscription of this page, so a closed phone set not to ring is not rung by push either.
 */
export async function setPageDoNotDisturb(access: AccessConnection, on: boolean): Promise<void> {
  await saveDoNotDisturb(on);
  if (on) return access.pushUnsubscribe();
  const subscription = await loadPushSubscription();
  if (subscription) await access.pushSubscribe(subscription);
}

/** At each login: the kept setting, and a server that may have missed the last change (it was offline). */
export async function restorePageDoNotDisturb(access: AccessConnection, log: Logger): Promise<boolean> {
  // Unreadable storage rings: a missed door is worse than an unwanted ring.
  const on = await loadDoNotDisturb().catch(() => false);
  if (on) access.pushUnsubscribe().catch((err: unknown) => log.info({ err: err instanceof Error ? err.message : String(err) }, 'push subscription not withdrawn'));
  return on;
}
