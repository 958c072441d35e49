import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { privateKeyFromPem, publicKeyFromRaw, rawPublicKey } from '../../platform/token.ts';

/**
 * The endpoint's two long-lived keys, generated on first boot and kept in its state directory:
 * an Ed25519 signing key (grants) and the DTLS certificate every link presents.
 */
export interface EndpointKeys {
  signingPrivateKey: KeyObject;
  signingPublicKey: KeyObject;
  /** base64url raw Ed25519 public key, as certified. */
  signingKeyRaw: string;
  /** Paths handed to node-datachannel (certificatePemFile / keyPemFile). */
  dtlsCertFile: string;
  dtlsKeyFile: string;
  /** "sha-256 AB:CD:…" as it appears in SDP. */
  dtlsFingerprint: string;
}

const run = promisify(execFile);

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes atomically with owner-only permissions, so a power cut never leaves half a key. */
async function writeSecret(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, path);
}

export function fingerprintOfPem(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const hex = createHash('sha256').update(der).digest('hex').toUpperCase();
  return `sha-256 ${hex.match(/../g)!.join(':')}`;
}

/**
 * A self-signed ECDSA P-256 certificate made by the openssl command line (on every Raspberry Pi OS
 * image), so the runtime carries no X.509 encoder of its own.
 */
async function makeDtlsCertificate(name: string, certFile: string, keyFile: string): Promise<void> {
  const cn = name.replace(/[^A-Za-z0-9._-]/g, '_');
  const tmpCert = `${certFile}.tmp-${process.pid}`;
  const tmpKey = `${keyFile}.tmp-${process.pid}`;
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', tmpKey, '-out', tmpCert, '-days', '7300', '-subj', `/CN=${cn}`,
  ]);
  await chmod(tmpKey, 0o600);
  await rename(tmpKey, keyFile);
  await rename(tmpCert, certFile);
}

/** Loads the endpoint's keys from `dir`, generating any that are missing. */
export async function loadOrCreateKeys(dir: string, name = 'sweep-endpoint'): Promise<EndpointKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const signingFile = join(dir, 'signing-key.pem');
  const dtlsCertFile = join(dir, 'dtls-cert.pem');
  const dtlsKeyFile = join(dir, 'dtls-key.pem');

  if (!(await exists(signingFile))) {
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeSecret(signingFile, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  }
  if (!(await exists(dtlsCertFile)) || !(await exists(dtlsKeyFile))) {
    await makeDtlsCertificate(name, dtlsCertFile, dtlsKeyFile);
  }
  const signingPrivateKey = privateKeyFromPem(await readFile(signingFile, 'utf8'));
  const signingKeyRaw = rawPublicKey(signingPrivateKey);
  return {
    signingPrivateKey,
    signingPublicKey: publicKeyFromRaw(signingKeyRaw),
    signingKeyRaw,
    dtlsCertFile,
    dtlsKeyFile,
    dtlsFingerprint: fingerprintOfPem(await readFile(dtlsCertFile, 'utf8')),
  };
}
