import { createHash } from 'node:crypto';
import type { LoginBody, ResumeBody } from '../core/protocol/access.ts';
import { SweepError, toWireError } from '../core/errors.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../platform/log.ts';
import { dummyHash } from './passwords.ts';
import type { Revocations } from './revocations.ts';
import type { PasswordGate } from './password-gate.ts';
import type { LoginLimiter } from './shared-rate-limit.ts';
import type { Account, AccountStore } from './store.ts';

export interface CredentialContext {
  store: AccountStore;
  limiter: LoginLimiter;
  passwords: PasswordGate;
  clock: Clock;
  /** A9: tokens revoked here that the store does not know of yet (an outage). */
  revocations?: Pick<Revocations, 'has'>;
}

const WRONG_CREDENTIALS = 'username or password is wrong';
const BAD_SESSION = 'session token is unknown, expired or already used; log in with the password';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * A2, A11: the account whose password (or provisioned device credential) `body` carries.
 * The attempt counts from the start, before Argon2, so parallel attempts cannot all pass.
 */
export async function checkPassword(ctx: CredentialContext, address: string, body: LoginBody, log: Logger): Promise<Account> {
  const { store, limiter, passwords } = ctx;
  const { username, endpointId } = body;
  const ids = { account: username, endpointId };
  const attempt = await limiter.reserve(username, address);
  let account: Account | undefined;
  let matches: boolean;
  try {
    account = await store.getAccount(username);
    // An unknown name costs a hash check too, so timing does not reveal which names exist.
    const hash = account?.passwordHash ?? (await dummyHash());
    matches = await passwords.verify(hash, body.password);
    // A provisioned device's own credential works for that endpoint id, with the signing key it was issued to.
    const device = !matches && account ? await store.getEndpointCredential(account.name, endpointId) : undefined;
    if (device && device.signingKey === body.signingKey) matches = await passwords.verify(device.passwordHash, body.password);
  } catch (err) {
    // Nothing was decided (server busy, store out of reach): the attempt is not a failure.
    attempt.release();
    if (toWireError(err).code === 'RATE_LIMITED') log.warn(ids, 'login refused: password checks busy');
    throw storeTrouble(err, log, ids);
  }
  if (!account || !matches) {
    // Counted even if the socket closed meanwhile: closing early must not hide a wrong guess.
    attempt.failed();
    log.warn({ ...ids, reason: account ? 'wrong password' : 'unknown account' }, 'login refused');
    throw new SweepError('UNAUTHORIZED', WRONG_CREDENTIALS);
  }
  attempt.succeeded();
  return account;
}

/** A8: the account of a single-use session token bound to `body.endpointId`; rate limited per endpoint id and address. */
export async function checkSessionToken(ctx: CredentialContext, address: string, body: ResumeBody, log: Logger): Promise<Account> {
  const { store, limiter, clock } = ctx;
  // Keyed apart from usernames ('#' is not an account name character).
  const attempt = await limiter.reserve(`#${body.endpointId}`, address);
  let account: Account | undefined;
  try {
    const hash = hashToken(body.token);
    const session = ctx.revocations?.has(hash) ? undefined : await store.takeLoginSession(hash, clock.now());
    account = session && session.endpointId === body.endpointId ? await store.getAccount(session.account) : undefined;
  } catch (err) {
    attempt.release();
    throw storeTrouble(err, log, { endpointId: body.endpointId });
  }
  if (!account) {
    attempt.failed();
    log.warn({ endpointId: body.endpointId }, 'resume refused');
    throw new SweepError('UNAUTHORIZED', BAD_SESSION);
  }
  attempt.succeeded();
  return account;
}

/**
 * A store that cannot be reached is said so plainly, as BUSY (which clients retry, A10), never
 * as a wrong password; the driver's own message stays in the server log.
 */
export function storeTrouble(err: unknown, log: Logger, ids: Record<string, string>): unknown {
  if (err instanceof SweepError) return err;
  log.error({ ...ids, err }, 'login not checked: the store is not reachable');
  return new SweepError('BUSY', 'login: the account store is not reachable; retry in a few seconds');
}
