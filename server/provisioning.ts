import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProvisionRequest, type ProvisionResponse } from '../core/protocol/provision.ts';
import { describeIssues } from '../core/protocol/validate.ts';
import type { Clock } from '../core/clock.ts';
import { SweepError, toSweepError } from '../core/errors.ts';
import type { Logger } from '../platform/log.ts';
import { hashPassword } from './passwords.ts';
import type { LoginLimiter } from './shared-rate-limit.ts';
import type { AccountStore } from './store.ts';
import type { ClientAddresses } from './client-address.ts';

const MAX_BODY_BYTES = 4096;
/** One message for every refused code, so a guesser learns nothing about which part was wrong. */
const BAD_CODE = 'provisioning code is unknown, expired, already used, or for another account or endpoint';

export function hashCode(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}

/** A new one-time code for one endpoint of `account`; only its hash is stored. */
export async function createProvisionCode(store: AccountStore, account: string, endpointId: string, ttlMs: number, now = Date.now()): Promise<{ code: string; expiresAt: number }> {
  // A10: a code for an id bound to another account could only produce a device that is refused.
  const owner = await store.endpointOwner(endpointId);
  if (owner !== undefined && owner !== account) {
    throw new SweepError('FORBIDDEN', `endpoint "${endpointId}" belongs to account "${owner}"; release it first (sweep server endpoint release ${endpointId})`);
  }
  const code = randomBytes(16).toString('base64url');
  const expiresAt = now + ttlMs;
  await store.addProvisionCode(hashCode(code), account, endpointId, expiresAt, now);
  return { code, expiresAt };
}

export interface ProvisionContext {
  store: AccountStore;
  limiter: LoginLimiter;
  clock: Clock;
  log: Logger;
  publicKeyRaw: string;
  /** A11: the client address behind a trusted proxy. */
  addresses?: ClientAddresses;
}

/** POST /provision: exchanges a one-time code for the endpoint's credential (bound to its signing key). */
export async function handleProvision(ctx: ProvisionContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const send = (status: number, body: ProvisionResponse): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  };
  const address = ctx.addresses ? ctx.addresses.resolve(req.socket.remoteAddress, req.headers['x-forwarded-for']) : (req.socket.remoteAddress ?? 'unknown');
  try {
    const body = ProvisionRequest.safeParse(await readJson(req));
    if (!body.success) throw new SweepError('INVALID_MESSAGE', `provision: ${describeIssues(body.error)}`);
    const { code, account, endpointId, signingKey, password } = body.data;
    // Failed codes count per account and per address, like failed logins.
    const rateKey = `provision:${account}`;
    await ctx.limiter.check(rateKey, address);
    const now = ctx.clock.now();
    const found = await ctx.store.findProvisionCode(hashCode(code), now);
    if (!found || found.account !== account || found.endpointId !== endpointId) {
      await ctx.limiter.recordFailure(rateKey, address);
      ctx.log.warn({ address, account, endpointId }, 'provisioning refused');
      throw new SweepError('UNAUTHORIZED', BAD_CODE);
    }
    const passwordHash = await hashPassword(password);
    if (!(await ctx.store.redeemProvisionCode(hashCode(code), account, endpointId, passwordHash, signingKey, ctx.clock.now()))) {
      throw new SweepError('UNAUTHORIZED', BAD_CODE);
    }
    ctx.log.info({ account, endpointId, address }, 'endpoint provisioned');
    send(200, { status: 'ok', data: { account, endpointId, serverPublicKey: ctx.publicKeyRaw } });
  } catch (err) {
    const e = toSweepError(err);
    const status = e.code === 'UNAUTHORIZED' ? 401 : e.code === 'RATE_LIMITED' ? 429 : e.code === 'INVALID_MESSAGE' || e.code === 'TOO_LARGE' ? 400 : 500;
    if (status === 500) ctx.log.error({ err }, 'provisioning failed');
    send(status, { status: 'error', error: { code: e.code, message: status === 500 ? 'internal error' : e.message } });
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) throw new SweepError('INVALID_MESSAGE', `provision: content-type "${type}" is not application/json`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new SweepError('TOO_LARGE', `provision: body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new SweepError('INVALID_MESSAGE', 'provision: body is not valid JSON');
  }
}
