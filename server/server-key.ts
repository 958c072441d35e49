import { generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { privateKeyFromPem, publicKeyFromRaw, rawPublicKey } from '../platform/token.ts';
import { SweepError } from '../core/errors.ts';

export interface ServerKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Ed25519 raw public key, base64url: what every endpoint is configured with. */
  publicKeyRaw: string;
  /**
   * HMAC-SHA256 key for the server's own short-lived tokens (A14 nonces), derived from the private
   * key: every node of a cluster holds the same key file, so each has it without more configuration.
   */
  macKey: Buffer;
}

/** Derives the MAC key from the private key (HKDF-SHA256); the label keeps it apart from any other use. */
function macKeyOf(privateKey: KeyObject): Buffer {
  const secret = privateKey.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'sweep server mac v1', 32));
}

export const SERVER_KEY_FILE = 'server-key.pem';

/**
 * Loads the server's Ed25519 signing key from `dataDir`, creating it on first start.
 * Written to a temporary file (0600) and renamed, so a crash never leaves half a key.
 */
export async function loadOrCreateServerKey(dataDir: string): Promise<ServerKey> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, SERVER_KEY_FILE);
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const { privateKey } = generateKeyPairSync('ed25519');
    pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
    try {
      await writeFile(tmp, pem, { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }
  let privateKey: KeyObject;
  try {
    privateKey = privateKeyFromPem(pem);
  } catch (err) {
    throw new SweepError('INVALID_CONFIG', `${file}: not a PEM private key`, { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SweepError('INVALID_CONFIG', `${file}: a ${privateKey.asymmetricKeyType ?? 'unknown'} key, expected ed25519`);
  }
  const publicKeyRaw = rawPublicKey(privateKey);
  return { privateKey, publicKey: publicKeyFromRaw(publicKeyRaw), publicKeyRaw, macKey: macKeyOf(privateKey) };
}
