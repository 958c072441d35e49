import { SessionToken } from '../../core/protocol/access.ts';
import { PushSubscriptionJson } from '../../core/protocol/push.ts';
import { SweepError } from '../../core/errors.ts';
import { toB64u } from '../../core/wire/b64.ts';

/**
 * The browser endpoint's long-lived identity (DESIGN.md §2), kept in IndexedDB: its endpoint id,
 * a persistent RTCCertificate (the DTLS certificate every link presents) and an Ed25519 signing
 * key pair made by WebCrypto whose private half is not extractable. The password is never
 * stored; only the short-lived session token (docs/protocol.md A7) is.
 */
export interface Identity {
  endpointId: string;
  certificate: RTCCertificate;
  signing: CryptoKeyPair;
  /** Raw Ed25519 public key, base64url (as certified). */
  signingKeyRaw: string;
  /** "sha-256 AB:CD:…" (upper case), as in SDP and the certificate. */
  dtlsFingerprint: string;
}

const DB_NAME = 'sweep';
const STORE = 'kv';

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new SweepError('INTERNAL', `IndexedDB: ${req.error?.message ?? 'cannot open'}`));
  });
}

async function withStore<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = fn(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(new SweepError('INTERNAL', `IndexedDB: ${req.error?.message ?? 'request failed'}`));
    });
  } finally {
    db.close();
  }
}

const get = (key: string): Promise<unknown> => withStore('readonly', (s) => s.get(key) as IDBRequest<unknown>);
const put = (key: string, value: unknown): Promise<IDBValidKey> => withStore('readwrite', (s) => s.put(value, key));
const del = (key: string): Promise<undefined> => withStore('readwrite', (s) => s.delete(key));

/** Loads the identity, making whatever part is missing (first visit). */
export async function loadOrCreateIdentity(): Promise<Identity> {
  const storedId = await get('endpointId');
  const endpointId = typeof storedId === 'string' ? storedId : `web-${Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
  if (endpointId !== storedId) await put('endpointId', endpointId);
  let certificate = (await get('dtlsCertificate')) as RTCCertificate | undefined;
  // A certificate close to its end is replaced; peers learn the new fingerprint at the next login.
  if (!certificate || certificate.expires < Date.now() + 7 * 86_400_000) {
    certificate = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256', expires: 365 * 86_400_000 } as AlgorithmIdentifier);
    await put('dtlsCertificate', certificate);
  }
  let signing = (await get('signingKey')) as CryptoKeyPair | undefined;
  if (!signing) {
    // Not extractable: the private key never leaves WebCrypto, even for this page.
    signing = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    await put('signingKey', signing);
  }
  const signingKeyRaw = toB64u(new Uint8Array(await crypto.subtle.exportKey('raw', signing.publicKey)));
  const fp = certificate.getFingerprints().find((f) => f.algorithm === 'sha-256');
  if (!fp?.value) throw new SweepError('INTERNAL', 'the DTLS certificate has no sha-256 fingerprint');
  return { endpointId, certificate, signing, signingKeyRaw, dtlsFingerprint: `sha-256 ${fp.value.toUpperCase()}` };
}

/** The stored session token (A7), if any and not expired. */
export async function loadSession(): Promise<SessionToken | undefined> {
  const raw = await get('session');
  const parsed = SessionToken.safeParse(raw);
  if (!parsed.success || parsed.data.expiresAt <= Date.now()) return undefined;
  return parsed.data;
}

export async function saveSession(session: SessionToken | undefined): Promise<void> {
  if (session) await put('session', session);
  else await del('session');
}

/** The call this page held, kept across a reload so the page can reclaim it (docs/protocol.md L7). */
export interface StoredCall {
  sessionId: string;
  farEnd: { account: string; endpointId: string; label: string };
  epoch: number;
  doorRights: boolean;
  muted: boolean;
  startedAt: number | null;
  /** Date.now() when it was last known active here. */
  savedAt: number;
}

export async function loadCall(): Promise<StoredCall | undefined> {
  const c = (await get('call')) as StoredCall | undefined;
  return c && typeof c.sessionId === 'string' && typeof c.savedAt === 'number' ? c : undefined;
}

export async function saveCall(call: StoredCall | undefined): Promise<void> {
  if (call) await put('call', call);
  else await del('call');
}

/** The username of the last login, to prefill the form (not a secret). */
export async function loadUsername(): Promise<string | undefined> {
  const u = await get('username');
  return typeof u === 'string' ? u : undefined;
}

export async function saveUsername(username: string): Promise<void> {
  await put('username', username);
}

/** H7: this page's do not disturb, kept across reloads and closed tabs. */
export async function loadDoNotDisturb(): Promise<boolean> {
  return (await get('doNotDisturb')) === true;
}

export async function saveDoNotDisturb(on: boolean): Promise<void> {
  await put('doNotDisturb', on);
}

/** A16: the push subscription last handed to the server, to hand again when do not disturb ends. */
export async function loadPushSubscription(): Promise<PushSubscriptionJson | undefined> {
  const parsed = PushSubscriptionJson.safeParse(await get('pushSubscription'));
  return parsed.success ? parsed.data : undefined;
}

export async function savePushSubscription(subscription: PushSubscriptionJson | undefined): Promise<void> {
  if (subscription) await put('pushSubscription', subscription);
  else await del('pushSubscription');
}
