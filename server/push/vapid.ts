import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import webpush from 'web-push';
import { z } from 'zod';
import { SweepError } from '../../core/errors.ts';
import { P256dhKey } from '../../core/protocol/push.ts';

export const VAPID_FILE = 'vapid.json';

const VapidFile = z.strictObject({
  publicKey: P256dhKey,
  privateKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a P-256 private key (32 bytes, base64url)'),
});
export type VapidKeys = z.infer<typeof VapidFile>;

/**
 * A16: the server's VAPID key pair (RFC 8292), made on first start and kept in the data dir
 * (0600, written whole then renamed). The private key never leaves this module's caller and is
 * never logged; the public key is what pages subscribe with.
 */
export async function loadOrCreateVapidKeys(dataDir: string): Promise<VapidKeys> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, VAPID_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const made = webpush.generateVAPIDKeys();
    text = JSON.stringify({ publicKey: made.publicKey, privateKey: made.privateKey });
    const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
    try {
      await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SweepError('INVALID_CONFIG', `${file}: not JSON`, { cause: err });
  }
  const parsed = VapidFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Names the field only: the file holds a secret.
    throw new SweepError('INVALID_CONFIG', `${file}: ${issue?.path.join('.') || 'file'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
