import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { loadConfigFile } from '../firmware-config/load.ts';
import { PROVISION_PATH, ProvisionCode, ProvisionResponse } from '../core/protocol/provision.ts';
import { loadOrCreateKeys } from './identity/keys.ts';
import { writeFileAtomic } from '../firmware-config/atomic-write.ts';
import { SweepError } from '../core/errors.ts';

export interface ProvisionOptions {
  configFile: string;
  /** The one-time code from `sweep server provision-code add`. */
  code: string;
  /** Replace an existing secrets file (re-provisioning). */
  force?: boolean;
  /** Per-request deadline, ms. Default 15 s. */
  timeoutMs?: number;
}

export interface ProvisionResult {
  account: string;
  endpointId: string;
  secretsFile: string;
}

/** The HTTP(S) origin of the access server named by a ws(s):// access URL. */
export function accessHttpOrigin(accessUrl: string): string {
  const u = new URL(accessUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  return u.origin;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * `sweep provision`: makes this device's keys (on the device, in stateDir), checks that the access
 * server holds the private key of access.serverPublicKey's public key (by its /server.json, then
 * by the key it answers with), exchanges the one-time code for a credential bound to the device's
 * signing key, and writes the password to access.secretsFile (0600, atomically). The password is
 * made here and leaves the device only in that one request.
 */
export async function provision(opts: ProvisionOptions): Promise<ProvisionResult> {
  const code = ProvisionCode.safeParse(opts.code.trim());
  if (!code.success) throw new SweepError('INVALID_CONFIG', `code: ${code.error.issues[0]?.message ?? 'not a provisioning code'}`);
  const loaded = await loadConfigFile(opts.configFile, { secrets: false });
  const { config } = loaded;
  const secretsFile = loaded.secretsFile;
  if (!secretsFile) throw new SweepError('INVALID_CONFIG', `${opts.configFile}: access.secretsFile: provisioning writes the password to a secrets file; set access.secretsFile (e.g. "secrets.json") instead of access.password`);
  if (!opts.force && (await exists(secretsFile))) {
    throw new SweepError('BAD_STATE', `${secretsFile} exists: this device is provisioned already (use --force to replace its credential)`);
  }
  const origin = accessHttpOrigin(config.access.url);
  const timeoutMs = opts.timeoutMs ?? 15_000;

  const info = await fetchJson(`${origin}/server.json`, { method: 'GET' }, timeoutMs);
  const serverKey = (info as { publicKey?: unknown }).publicKey;
  if (serverKey !== config.access.serverPublicKey) {
    throw new SweepError('UNAUTHORIZED', `${opts.configFile}: access.serverPublicKey ${config.access.serverPublicKey} differs from the key ${String(serverKey)} served by ${origin}; check the config (sweep server pubkey on the server host)`);
  }

  const keys = await loadOrCreateKeys(config.stateDir, config.endpoint.id);
  const password = randomBytes(32).toString('base64url');
  const body = { code: code.data, account: config.access.username, endpointId: config.endpoint.id, signingKey: keys.signingKeyRaw, password };
  const raw = await fetchJson(`${origin}${PROVISION_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, timeoutMs);
  const res = ProvisionResponse.safeParse(raw);
  if (!res.success) throw new SweepError('INVALID_MESSAGE', `${origin}${PROVISION_PATH}: unexpected answer`);
  if (res.data.status === 'error') throw new SweepError('REFUSED', `${origin}${PROVISION_PATH}: ${res.data.error.message} (${res.data.error.code})`);
  if (res.data.data.serverPublicKey !== config.access.serverPublicKey) throw new SweepError('UNAUTHORIZED', `${origin}: answered with another server key`);
  await writeFileAtomic(secretsFile, `${JSON.stringify({ password }, null, 2)}\n`, 0o600);
  return { account: res.data.data.account, endpointId: res.data.data.endpointId, secretsFile };
}

async function fetchJson(url: string, init: RequestInit, timeoutMs: number): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  } catch (err) {
    throw new SweepError('OFFLINE', `${url}: ${(err as Error).message}`, { cause: err });
  }
  const text = await res.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SweepError('INVALID_MESSAGE', `${url}: HTTP ${res.status}, not JSON`);
  }
}
