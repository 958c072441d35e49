import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AccountName } from '../core/protocol/common.ts';
import { SweepError } from '../core/errors.ts';

export interface Account {
  name: string;
  displayName: string;
  passwordHash: string;
  createdAt: number;
}

/** What may be shown about an account (no hash). */
export interface AccountSummary {
  name: string;
  displayName: string;
  createdAt: number;
}

const MAX_DISPLAY_NAME = 64;

/**
 * Schema version 2 (version 1 plus endpoint_bindings, created on open). Buddy pairs are stored once, with a < b, so the relation is symmetric by construction. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS accounts (
  name          TEXT PRIMARY KEY,
  display_name  TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at    INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS buddies (
  a TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
  b TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
  PRIMARY KEY (a, b),
  CHECK (a < b)
) STRICT;
CREATE INDEX IF NOT EXISTS buddies_b ON buddies(b);
CREATE TABLE IF NOT EXISTS login_sessions (
  token_hash  TEXT PRIMARY KEY,
  account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
  endpoint_id TEXT NOT NULL,
  expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS login_sessions_endpoint ON login_sessions(account, endpoint_id);
CREATE TABLE IF NOT EXISTS provision_codes (
  code_hash   TEXT PRIMARY KEY,
  account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
  endpoint_id TEXT NOT NULL,
  expires_at  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS endpoint_credentials (
  account       TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
  endpoint_id   TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  signing_key   TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (account, endpoint_id)
) STRICT;
CREATE TABLE IF NOT EXISTS endpoint_bindings (
  endpoint_id TEXT PRIMARY KEY,
  account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
  bound_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS endpoint_bindings_account ON endpoint_bindings(account);
`;

export function checkAccountName(name: string, field = 'account'): string {
  const r = AccountName.safeParse(name);
  if (!r.success) {
    throw new SweepError('INVALID_MESSAGE', `${field}: "${name.slice(0, 80)}" is not ${r.error.issues[0]?.message ?? 'a valid account name'}`);
  }
  return r.data;
}

function checkDisplayName(displayName: string): string {
  if (displayName.length > MAX_DISPLAY_NAME || /[\p{Cc}]/u.test(displayName)) {
    throw new SweepError('INVALID_MESSAGE', `display name: at most ${MAX_DISPLAY_NAME} characters without control characters`);
  }
  return displayName;
}

interface AccountRow {
  name: string;
  display_name: string;
  password_hash: string;
  created_at: number;
}

/** Accounts and buddy pairs in one SQLite file (`accounts.db` in the data dir), WAL mode. */
export class AccountStore {
  private readonly db: Database.Database;
  private closed = false;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  static open(dataDir: string): AccountStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const db = new Database(join(dataDir, 'accounts.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    db.pragma('user_version = 2');
    return new AccountStore(db);
  }

  createAccount(name: string, displayName: string, passwordHash: string, createdAt = Date.now()): void {
    checkAccountName(name);
    checkDisplayName(displayName);
    const r = this.db
      .prepare('INSERT INTO accounts (name, display_name, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING')
      .run(name, displayName, passwordHash, createdAt);
    if (r.changes === 0) throw new SweepError('BAD_STATE', `account "${name}" already exists`);
  }

  setPassword(name: string, passwordHash: string): void {
    const r = this.db.prepare('UPDATE accounts SET password_hash = ? WHERE name = ?').run(passwordHash, name);
    if (r.changes === 0) throw unknownAccount(name);
  }

  getAccount(name: string): Account | undefined {
    const row = this.db.prepare('SELECT * FROM accounts WHERE name = ?').get(name) as AccountRow | undefined;
    return row && { name: row.name, displayName: row.display_name, passwordHash: row.password_hash, createdAt: row.created_at };
  }

  listAccounts(): AccountSummary[] {
    const rows = this.db.prepare('SELECT name, display_name, created_at FROM accounts ORDER BY name').all() as AccountRow[];
    return rows.map((r) => ({ name: r.name, displayName: r.display_name, createdAt: r.created_at }));
  }

  /** Makes a and b buddies (both ways). Adding an existing pair is not an error. */
  addBuddies(a: string, b: string): void {
    const [x, y] = this.pair(a, b);
    this.db.prepare('INSERT OR IGNORE INTO buddies (a, b) VALUES (?, ?)').run(x, y);
  }

  /** Removes the pair; false if they were not buddies. */
  removeBuddies(a: string, b: string): boolean {
    const [x, y] = this.pair(a, b);
    return this.db.prepare('DELETE FROM buddies WHERE a = ? AND b = ?').run(x, y).changes > 0;
  }

  areBuddies(a: string, b: string): boolean {
    if (a === b) return false;
    const [x, y] = a < b ? [a, b] : [b, a];
    return this.db.prepare('SELECT 1 FROM buddies WHERE a = ? AND b = ?').get(x, y) !== undefined;
  }

  /** The buddies of `account`, by name. */
  buddiesOf(account: string): AccountSummary[] {
    const rows = this.db
      .prepare(
        `SELECT acc.name, acc.display_name, acc.created_at FROM buddies bd
         JOIN accounts acc ON acc.name = CASE WHEN bd.a = ? THEN bd.b ELSE bd.a END
         WHERE bd.a = ? OR bd.b = ? ORDER BY acc.name`,
      )
      .all(account, account, account) as AccountRow[];
    return rows.map((r) => ({ name: r.name, displayName: r.display_name, createdAt: r.created_at }));
  }

  /**
   * A10: binds `endpointId` to `account` if it is free (the first login claims it) and returns
   * the account it is bound to afterwards: `account` itself, or the one that had it before.
   * One statement, so two logins racing for a new id (even from two processes) get one owner.
   */
  claimEndpoint(endpointId: string, account: string, now = Date.now()): string {
    const row = this.db
      .prepare(
        `INSERT INTO endpoint_bindings (endpoint_id, account, bound_at) VALUES (?, ?, ?)
         ON CONFLICT(endpoint_id) DO UPDATE SET endpoint_id = endpoint_id RETURNING account`,
      )
      .get(endpointId, account, now) as { account: string } | undefined;
    return row?.account ?? account;
  }

  /** A10: the account an endpoint id is bound to, if any. */
  endpointOwner(endpointId: string): string | undefined {
    const row = this.db.prepare('SELECT account FROM endpoint_bindings WHERE endpoint_id = ?').get(endpointId) as { account: string } | undefined;
    return row?.account;
  }

  /** A10: the endpoint ids bound to `account`. */
  listEndpointBindings(account: string): Array<{ endpointId: string; boundAt: number }> {
    const rows = this.db.prepare('SELECT endpoint_id, bound_at FROM endpoint_bindings WHERE account = ? ORDER BY endpoint_id').all(account) as Array<{ endpoint_id: string; bound_at: number }>;
    return rows.map((r) => ({ endpointId: r.endpoint_id, boundAt: r.bound_at }));
  }

  /**
   * A10: frees an endpoint id (an operator's decision, or a browser's logout) and revokes the
   * session tokens issued to it; returns the account it was bound to, if any.
   */
  releaseEndpoint(endpointId: string): string | undefined {
    return this.db.transaction(() => {
      const row = this.db.prepare('DELETE FROM endpoint_bindings WHERE endpoint_id = ? RETURNING account').get(endpointId) as { account: string } | undefined;
      if (row) this.revokeLoginSessions(row.account, endpointId);
      return row?.account;
    })();
  }

  /** Runs `fn` in one transaction (many writes, one commit). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** A7: how many session tokens one endpoint of `account` holds (0 or 1 in a healthy store). */
  countLoginSessions(account: string, endpointId: string): number {
    const row = this.db.prepare('SELECT count(*) AS n FROM login_sessions WHERE account = ? AND endpoint_id = ?').get(account, endpointId) as { n: number };
    return row.n;
  }

  /** A12: drops expired session tokens (at start-up: nobody may have asked for them since). */
  purgeExpiredLoginSessions(now: number): number {
    return this.db.prepare('DELETE FROM login_sessions WHERE expires_at <= ?').run(now).changes;
  }

  /** A12: revokes one session token by its hash (a login whose answer never reached its client). */
  revokeLoginSession(tokenHash: string): void {
    this.db.prepare('DELETE FROM login_sessions WHERE token_hash = ?').run(tokenHash);
  }

  /** A7: stores a session token's hash (never the token) for one endpoint of `account`. */
  addLoginSession(tokenHash: string, account: string, endpointId: string, expiresAt: number): void {
    this.db.prepare('INSERT INTO login_sessions (token_hash, account, endpoint_id, expires_at) VALUES (?, ?, ?, ?)').run(tokenHash, account, endpointId, expiresAt);
  }

  /** A8: removes the session with this hash and returns it (single use); expired ones are purged on the way. */
  takeLoginSession(tokenHash: string, now: number): { account: string; endpointId: string; expiresAt: number } | undefined {
    const row = this.db.prepare('DELETE FROM login_sessions WHERE token_hash = ? RETURNING account, endpoint_id, expires_at').get(tokenHash) as
      | { account: string; endpoint_id: string; expires_at: number }
      | undefined;
    this.db.prepare('DELETE FROM login_sessions WHERE expires_at <= ?').run(now);
    return row && row.expires_at > now ? { account: row.account, endpointId: row.endpoint_id, expiresAt: row.expires_at } : undefined;
  }

  /** A9: revokes every session of one endpoint of `account` (logout, refresh). */
  revokeLoginSessions(account: string, endpointId: string): void {
    this.db.prepare('DELETE FROM login_sessions WHERE account = ? AND endpoint_id = ?').run(account, endpointId);
  }

  /** Provisioning: stores a one-time code's hash (never the code) for one endpoint of `account`. */
  addProvisionCode(codeHash: string, account: string, endpointId: string, expiresAt: number, createdAt = Date.now()): void {
    if (!this.getAccount(account)) throw unknownAccount(account);
    this.db.prepare('INSERT INTO provision_codes (code_hash, account, endpoint_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?)').run(codeHash, account, endpointId, expiresAt, createdAt);
  }

  /** Provisioning: the unexpired code with this hash, without using it up. Expired codes are purged on the way. */
  findProvisionCode(codeHash: string, now: number): { account: string; endpointId: string; expiresAt: number } | undefined {
    this.db.prepare('DELETE FROM provision_codes WHERE expires_at <= ?').run(now);
    const row = this.db.prepare('SELECT account, endpoint_id, expires_at FROM provision_codes WHERE code_hash = ?').get(codeHash) as
      | { account: string; endpoint_id: string; expires_at: number }
      | undefined;
    return row && { account: row.account, endpointId: row.endpoint_id, expiresAt: row.expires_at };
  }

  /**
   * Provisioning: uses the code up and stores the endpoint's credential in one transaction, so a
   * code is exchanged at most once even by two requests at the same time. False if it was gone.
   */
  redeemProvisionCode(codeHash: string, account: string, endpointId: string, passwordHash: string, signingKey: string, now: number): boolean {
    return this.db.transaction(() => {
      const used = this.db.prepare('DELETE FROM provision_codes WHERE code_hash = ? AND account = ? AND endpoint_id = ? AND expires_at > ?').run(codeHash, account, endpointId, now);
      if (used.changes === 0) return false;
      this.db
        .prepare(
          `INSERT INTO endpoint_credentials (account, endpoint_id, password_hash, signing_key, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(account, endpoint_id) DO UPDATE SET password_hash = excluded.password_hash, signing_key = excluded.signing_key, created_at = excluded.created_at`,
        )
        .run(account, endpointId, passwordHash, signingKey, now);
      this.revokeLoginSessions(account, endpointId);
      return true;
    })();
  }

  /** A provisioned endpoint's own credential: its password hash and the signing key it was issued to. */
  getEndpointCredential(account: string, endpointId: string): { passwordHash: string; signingKey: string; createdAt: number } | undefined {
    const row = this.db.prepare('SELECT password_hash, signing_key, created_at FROM endpoint_credentials WHERE account = ? AND endpoint_id = ?').get(account, endpointId) as
      | { password_hash: string; signing_key: string; created_at: number }
      | undefined;
    return row && { passwordHash: row.password_hash, signingKey: row.signing_key, createdAt: row.created_at };
  }

  listEndpointCredentials(account: string): Array<{ endpointId: string; signingKey: string; createdAt: number }> {
    const rows = this.db.prepare('SELECT endpoint_id, signing_key, created_at FROM endpoint_credentials WHERE account = ? ORDER BY endpoint_id').all(account) as Array<{ endpoint_id: string; signing_key: string; created_at: number }>;
    return rows.map((r) => ({ endpointId: r.endpoint_id, signingKey: r.signing_key, createdAt: r.created_at }));
  }

  /** Revokes a provisioned endpoint's credential and its sessions; false if it had none. */
  removeEndpointCredential(account: string, endpointId: string): boolean {
    const r = this.db.prepare('DELETE FROM endpoint_credentials WHERE account = ? AND endpoint_id = ?').run(account, endpointId);
    this.revokeLoginSessions(account, endpointId);
    return r.changes > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private pair(a: string, b: string): [string, string] {
    checkAccountName(a, 'first account');
    checkAccountName(b, 'second account');
    if (a === b) throw new SweepError('INVALID_MESSAGE', `buddies: an account cannot be its own buddy ("${a}")`);
    for (const n of [a, b]) if (!this.getAccount(n)) throw unknownAccount(n);
    return a < b ? [a, b] : [b, a];
  }
}

function unknownAccount(name: string): SweepError {
  return new SweepError('NOT_FOUND', `unknown account "${name.slice(0, 80)}"`);
}
