import * as argon2 from 'argon2';
import { SweepError } from '../core/errors.ts';

/** OWASP Password Storage Cheat Sheet, Argon2id: 19 MiB memory, 2 iterations, 1 lane. */
export const ARGON2_PARAMS = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/** Longest password accepted anywhere (matches the login message's limit). */
export const MAX_PASSWORD_LENGTH = 256;

function checkShape(password: string): void {
  if (password.length === 0) throw new SweepError('INVALID_MESSAGE', 'password: must not be empty');
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new SweepError('INVALID_MESSAGE', `password: ${password.length} characters, at most ${MAX_PASSWORD_LENGTH} allowed`);
  }
}

/** Returns a PHC string ("$argon2id$v=19$m=19456,p=1,t=2$salt$hash"); the salt is random. */
export async function hashPassword(password: string): Promise<string> {
  checkShape(password);
  return argon2.hash(password, ARGON2_PARAMS);
}

/** True only if `password` matches `hash`; a malformed hash counts as a mismatch, never a throw. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/**
 * A hash of a random string, checked when the account does not exist so that a login for an
 * unknown name costs as long as one for a known name (no user enumeration by timing).
 */
export function dummyHash(): Promise<string> {
  dummy ??= argon2.hash(`no-such-account-${Math.random()}`, ARGON2_PARAMS);
  return dummy;
}
