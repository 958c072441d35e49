import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable } from 'kysely';
import { compiledOnce } from './compiled-once.ts';
import { newerLoginTakesOver } from './online-upsert.ts';
import { SweepError } from '../../core/errors.ts';
import { checkAccountName, checkDisplayName, unknownAccount, type Account, type AccountStore, type AccountSummary, type CallRecordRow, type LoginWrites, type LoginWritten, type OnlineRow, type PushSubscriptionRow, type StoredSession } from '../store.ts';
import { writeLoginPostgres } from './postgres-login.ts';
import type { OnlineEndpointsTable, SqlDialect, Tables } from './schema.ts';

/** The advisory lock key of the reaper (any constant the cluster agrees on). */
const REAPER_LOCK = 0x5eed16;
/** Expired resume nonces are deleted at most this often (A14). */
const NONCE_PURGE_MS = 10_000;

/**
 * The store over Kysely: one set of queries for SQLite and PostgreSQL (only portable SQL:
 * ON CONFLICT, RETURNING, sub-selects). `db` may be a transaction; `onClose` ends the engine.
 */
export class SqlStore implements AccountStore {
  private closing: Promise<void> | undefined;
  private noncesPurgedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly db: Kysely<Tables>,
    readonly dialect: SqlDialect,
    private readonly onClose: () => Promise<void> = () => Promise.resolve(),
  ) {}

  async createAccount(name: string, displayName: string, passwordHash: string, createdAt = Date.now()): Promise<void> {
    checkAccountName(name);
    checkDisplayName(displayName);
    const row = await this.db
      .insertInto('accounts')
      .values({ name, display_name: displayName, password_hash: passwordHash, created_at: createdAt })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('name')
      .executeTakeFirst();
    if (!row) throw new SweepError('BAD_STATE', `account "${name}" already exists`);
  }

  async setPassword(name: string, passwordHash: string): Promise<void> {
    const row = await this.db.updateTable('accounts').set({ password_hash: passwordHash }).where('name', '=', name).returning('name').executeTakeFirst();
    if (!row) throw unknownAccount(name);
  }

  async getAccount(name: string): Promise<Account | undefined> {
    const row = await this.db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirst();
    return row && { name: row.name, displayName: row.display_name, passwordHash: row.password_hash, createdAt: row.created_at };
  }

  async listAccounts(): Promise<AccountSummary[]> {
    const rows = await this.db.selectFrom('accounts').select(['name', 'display_name', 'created_at']).orderBy('name').execute();
    return rows.map(summary);
  }

  async addBuddies(a: string, b: string): Promise<void> {
    const [x, y] = await this.pair(a, b);
    await this.db.insertInto('buddies').values({ a: x, b: y }).onConflict((oc) => oc.columns(['a', 'b']).doNothing()).execute();
  }

  async removeBuddies(a: string, b: string): Promise<boolean> {
    const [x, y] = await this.pair(a, b);
    const rows = await this.db.deleteFrom('buddies').where('a', '=', x).where('b', '=', y).returning('a').execute();
    return rows.length > 0;
  }

  async areBuddies(a: string, b: string): Promise<boolean> {
    if (a === b) return false;
    const [x, y] = a < b ? [a, b] : [b, a];
    return (await this.db.selectFrom('buddies').select('a').where('a', '=', x).where('b', '=', y).executeTakeFirst()) !== undefined;
  }

  /**
   * One IN over a UNION, not an OR of INs: PostgreSQL reads an OR of sub-selects by scanning the
   * whole table, so every login of a restart storm read every account (and every online row).
   */
  async buddiesOf(account: string): Promise<AccountSummary[]> {
    const rows = await this.db
      .selectFrom('accounts')
      .select(['name', 'display_name', 'created_at'])
      .where((eb) => eb('name', 'in', eb.selectFrom('buddies').select('b as name').where('a', '=', account).unionAll(eb.selectFrom('buddies').select('a as name').where('b', '=', account))))
      .orderBy('name')
      .execute();
    return rows.map(summary);
  }

  async claimEndpoint(endpointId: string, account: string, now = Date.now()): Promise<string> {
    // A10: on conflict the row is "updated" to itself, so RETURNING names the existing owner.
    const row = await this.db
      .insertInto('endpoint_bindings')
      .values({ endpoint_id: endpointId, account, bound_at: now })
      .onConflict((oc) => oc.column('endpoint_id').doUpdateSet({ endpoint_id: (eb) => eb.ref('excluded.endpoint_id') }))
      .returning('account')
      .executeTakeFirst();
    return row?.account ?? account;
  }

  async endpointOwner(endpointId: string): Promise<string | undefined> {
    return (await this.db.selectFrom('endpoint_bindings').select('account').where('endpoint_id', '=', endpointId).executeTakeFirst())?.account;
  }

  async listEndpointBindings(account: string): Promise<Array<{ endpointId: string; boundAt: number }>> {
    const rows = await this.db.selectFrom('endpoint_bindings').select(['endpoint_id', 'bound_at']).where('account', '=', account).orderBy('endpoint_id').execute();
    return rows.map((r) => ({ endpointId: r.endpoint_id, boundAt: r.bound_at }));
  }

  releaseEndpoint(endpointId: string): Promise<string | undefined> {
    return this.transaction(async (tx) => {
      const row = await tx.db.deleteFrom('endpoint_bindings').where('endpoint_id', '=', endpointId).returning('account').executeTakeFirst();
      if (row) await tx.revokeLoginSessions(row.account, endpointId);
      // A16: the pushes of the account that let go of the id must not reach whoever claims it next.
      await tx.deletePushSubscription(endpointId);
      return row?.account;
    });
  }

  async countLoginSessions(account: string, endpointId: string): Promise<number> {
    const row = await this.db
      .selectFrom('login_sessions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account', '=', account)
      .where('endpoint_id', '=', endpointId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async purgeExpiredLoginSessions(now: number): Promise<number> {
    const rows = await this.db.deleteFrom('login_sessions').where('expires_at', '<=', now).returning('token_hash').execute();
    return rows.length;
  }

  async revokeLoginSession(tokenHash: string): Promise<void> {
    await this.db.deleteFrom('login_sessions').where('token_hash', '=', tokenHash).execute();
  }

  /** On PostgreSQL one statement (a login's round trips are a restart storm's cost); SQLite has no DELETE in WITH. */
  async replaceLoginSession(tokenHash: string, account: string, endpointId: string, expiresAt: number): Promise<void> {
    if (this.dialect === 'postgres') {
      await this.db
        .with('revoked', (db) => db.deleteFrom('login_sessions').where('account', '=', account).where('endpoint_id', '=', endpointId))
        .insertInto('login_sessions')
        .values({ token_hash: tokenHash, account, endpoint_id: endpointId, expires_at: expiresAt })
        .execute();
      return;
    }
    return await this.transaction(async (tx) => {
      await tx.revokeLoginSessions(account, endpointId);
      await tx.addLoginSession(tokenHash, account, endpointId, expiresAt);
    });
  }

  async addLoginSession(tokenHash: string, account: string, endpointId: string, expiresAt: number): Promise<void> {
    await this.db.insertInto('login_sessions').values({ token_hash: tokenHash, account, endpoint_id: endpointId, expires_at: expiresAt }).execute();
  }

  async takeLoginSession(tokenHash: string, now: number): Promise<StoredSession | undefined> {
    const row = await this.db.deleteFrom('login_sessions').where('token_hash', '=', tokenHash).returning(['account', 'endpoint_id', 'expires_at']).executeTakeFirst();
    await this.db.deleteFrom('login_sessions').where('expires_at', '<=', now).execute();
    return row && row.expires_at > now ? { account: row.account, endpointId: row.endpoint_id, expiresAt: row.expires_at } : undefined;
  }

  async revokeLoginSessions(account: string, endpointId: string): Promise<void> {
    await this.db.deleteFrom('login_sessions').where('account', '=', account).where('endpoint_id', '=', endpointId).execute();
  }

  async addProvisionCode(codeHash: string, account: string, endpointId: string, expiresAt: number, createdAt = Date.now()): Promise<void> {
    if (!(await this.getAccount(account))) throw unknownAccount(account);
    await this.db.insertInto('provision_codes').values({ code_hash: codeHash, account, endpoint_id: endpointId, expires_at: expiresAt, created_at: createdAt }).execute();
  }

  async findProvisionCode(codeHash: string, now: number): Promise<StoredSession | undefined> {
    await this.db.deleteFrom('provision_codes').where('expires_at', '<=', now).execute();
    const row = await this.db.selectFrom('provision_codes').select(['account', 'endpoint_id', 'expires_at']).where('code_hash', '=', codeHash).executeTakeFirst();
    return row && { account: row.account, endpointId: row.endpoint_id, expiresAt: row.expires_at };
  }

  redeemProvisionCode(codeHash: string, account: string, endpointId: string, passwordHash: string, signingKey: string, now: number): Promise<boolean> {
    return this.transaction(async (tx) => {
      const used = await tx.db
        .deleteFrom('provision_codes')
        .where('code_hash', '=', codeHash)
        .where('account', '=', account)
        .where('endpoint_id', '=', endpointId)
        .where('expires_at', '>', now)
        .returning('code_hash')
        .executeTakeFirst();
      if (!used) return false;
      await tx.db
        .insertInto('endpoint_credentials')
        .values({ account, endpoint_id: endpointId, password_hash: passwordHash, signing_key: signingKey, created_at: now })
        .onConflict((oc) =>
          oc.columns(['account', 'endpoint_id']).doUpdateSet((eb) => ({
            password_hash: eb.ref('excluded.password_hash'),
            signing_key: eb.ref('excluded.signing_key'),
            created_at: eb.ref('excluded.created_at'),
          })),
        )
        .execute();
      await tx.revokeLoginSessions(account, endpointId);
      return true;
    });
  }

  async getEndpointCredential(account: string, endpointId: string): Promise<{ passwordHash: string; signingKey: string; createdAt: number } | undefined> {
    const row = await this.db
      .selectFrom('endpoint_credentials')
      .select(['password_hash', 'signing_key', 'created_at'])
      .where('account', '=', account)
      .where('endpoint_id', '=', endpointId)
      .executeTakeFirst();
    return row && { passwordHash: row.password_hash, signingKey: row.signing_key, createdAt: row.created_at };
  }

  async listEndpointCredentials(account: string): Promise<Array<{ endpointId: string; signingKey: string; createdAt: number }>> {
    const rows = await this.db.selectFrom('endpoint_credentials').select(['endpoint_id', 'signing_key', 'created_at']).where('account', '=', account).orderBy('endpoint_id').execute();
    return rows.map((r) => ({ endpointId: r.endpoint_id, signingKey: r.signing_key, createdAt: r.created_at }));
  }

  removeEndpointCredential(account: string, endpointId: string): Promise<boolean> {
    return this.transaction(async (tx) => {
      const row = await tx.db.deleteFrom('endpoint_credentials').where('account', '=', account).where('endpoint_id', '=', endpointId).returning('account').executeTakeFirst();
      await tx.revokeLoginSessions(account, endpointId);
      return row !== undefined;
    });
  }

  async putOnline(row: OnlineRow): Promise<void> {
    const values = { endpoint_id: row.endpointId, account: row.account, kind: row.kind, label: row.label, node_id: row.nodeId, session_id: row.sessionId, since: row.since };
    await this.db
      .insertInto('online_endpoints')
      .values(values)
      .onConflict(newerLoginTakesOver)
      .execute();
  }

  async dropOnline(endpointId: string, sessionId: string): Promise<boolean> {
    const row = await this.db.deleteFrom('online_endpoints').where('endpoint_id', '=', endpointId).where('session_id', '=', sessionId).returning('endpoint_id').executeTakeFirst();
    return row !== undefined;
  }

  async onlineForAccount(account: string): Promise<OnlineRow[]> {
    // Every login reads it: compiled once per engine (server/store/compiled-once.ts).
    const rows = await onlineForAccountIn[this.dialect](this.db, { account });
    return rows.map(onlineRow);
  }

  async onlineOf(accounts: readonly string[]): Promise<OnlineRow[]> {
    const out: OnlineRow[] = [];
    // Bounded IN lists: both engines cap the number of parameters.
    for (let i = 0; i < accounts.length; i += 500) {
      const rows = await this.db.selectFrom('online_endpoints').selectAll().where('account', 'in', accounts.slice(i, i + 500)).orderBy('endpoint_id').execute();
      out.push(...rows.map(onlineRow));
    }
    return out;
  }

  async putLease(nodeId: string, now: number, ttlMs: number): Promise<void> {
    await this.db
      .insertInto('node_leases')
      .values({ node_id: nodeId, started_at: now, renewed_at: now, expires_at: now + ttlMs })
      .onConflict((oc) => oc.column('node_id').doUpdateSet((eb) => ({ started_at: leaseStart(eb, now), renewed_at: now, expires_at: now + ttlMs })))
      .execute();
  }

  async renewLease(nodeId: string, now: number, ttlMs: number): Promise<boolean> {
    const row = await this.db
      .updateTable('node_leases')
      .set((eb) => ({ started_at: leaseStart(eb, now), renewed_at: now, expires_at: now + ttlMs }))
      .where('node_id', '=', nodeId)
      .returning('node_id')
      .executeTakeFirst();
    return row !== undefined;
  }

  async countFreshLeases(now: number, exceptNodeId: string, unbrokenSince?: number): Promise<number> {
    let q = this.db.selectFrom('node_leases').where('expires_at', '>', now).where('node_id', '!=', exceptNodeId);
    if (unbrokenSince !== undefined) q = q.where('started_at', '<=', unbrokenSince);
    const row = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async dropLease(nodeId: string): Promise<void> {
    await this.db.deleteFrom('node_leases').where('node_id', '=', nodeId).execute();
  }

  reapExpiredNodes(now: number): Promise<{ nodes: string[]; rows: OnlineRow[] } | undefined> {
    return this.transaction(async (tx) => {
      if (this.dialect === 'postgres') {
        // One reaper at a time across the cluster; released with the transaction.
        const lock = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${REAPER_LOCK}) AS ok`.execute(tx.db);
        if (lock.rows[0]?.ok !== true) return undefined;
      }
      const dead = await tx.db.deleteFrom('node_leases').where('expires_at', '<=', now).returning('node_id').execute();
      const nodes = dead.map((d) => d.node_id);
      // The rows of every node without a lease: those just expired, and any left by a crash before.
      const rows = await tx.db
        .deleteFrom('online_endpoints')
        .where((eb) => eb('node_id', 'not in', eb.selectFrom('node_leases').select('node_id')))
        .returningAll()
        .execute();
      return { nodes, rows: rows.map(onlineRow) };
    });
  }

  /** A14, SQLite's part of writeLogin: false when the nonce was used before; a record that expired counts as none (it is taken over). */
  private async useResumeNonce(nonce: string, expiresAt: number, now: number): Promise<boolean> {
    // The primary key decides between two nodes taking the same nonce at once.
    const row = await this.db
      .insertInto('resume_nonces')
      .values({ nonce, expires_at: expiresAt })
      .onConflict((oc) => oc.column('nonce').doUpdateSet({ expires_at: (eb) => eb.ref('excluded.expires_at') }).where('resume_nonces.expires_at', '<=', now))
      .returning('nonce')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Expired nonces are deleted at most every NONCE_PURGE_MS, by one of the logins: a delete on
   * every login cost a restart storm a round trip each, and concurrent logins waited on one
   * another's row locks deleting the same rows.
   */
  async writeLogin(login: LoginWrites): Promise<LoginWritten> {
    if (login.resumeNonce) await this.purgeNonces(login.resumeNonce.now);
    if (this.dialect === 'postgres') return await writeLoginPostgres(this.db, login);
    const { online, resumeNonce } = login;
    return await this.transaction(async (tx) => {
      const replayed = resumeNonce ? !(await tx.useResumeNonce(resumeNonce.nonce, resumeNonce.expiresAt, resumeNonce.now)) : false;
      const account = await tx.getAccount(online.account);
      if (replayed || !account) return { owner: undefined, buddies: [], account, replayed };
      const owner = await tx.claimEndpoint(online.endpointId, online.account, login.boundAt);
      if (owner === online.account) {
        await tx.replaceLoginSession(login.tokenHash, online.account, online.endpointId, login.expiresAt);
        await tx.putOnline(online);
      }
      return { owner, buddies: await tx.buddiesOf(online.account), account, replayed };
    });
  }

  async addCallRecord(row: CallRecordRow): Promise<boolean> {
    const values = { door_endpoint: row.doorEndpoint, session_id: row.sessionId, account: row.account, caller_account: row.callerAccount, started_at: row.startedAt, record: row.record };
    const added = await this.db.insertInto('call_history').values(values).onConflict((oc) => oc.columns(['door_endpoint', 'session_id']).doNothing()).returning('session_id').executeTakeFirst();
    return added !== undefined;
  }

  async callRecordsFor(account: string, limit: number): Promise<CallRecordRow[]> {
    const rows = await this.db
      .selectFrom('call_history')
      .selectAll()
      .where((eb) => eb.or([eb('account', '=', account), eb('caller_account', '=', account)]))
      .orderBy('started_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ doorEndpoint: r.door_endpoint, sessionId: r.session_id, account: r.account, callerAccount: r.caller_account, startedAt: r.started_at, record: r.record }));
  }

  async pruneCallRecords(account: string, before: number): Promise<number> {
    const result = await this.db.deleteFrom('call_history').where('account', '=', account).where('started_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async putPushSubscription(row: PushSubscriptionRow): Promise<void> {
    const values = { endpoint_id: row.endpointId, account: row.account, url: row.url, p256dh: row.p256dh, auth: row.auth, created_at: row.createdAt };
    await this.db
      .insertInto('push_subscriptions')
      .values(values)
      .onConflict((oc) => oc.column('endpoint_id').doUpdateSet((eb) => ({ account: eb.ref('excluded.account'), url: eb.ref('excluded.url'), p256dh: eb.ref('excluded.p256dh'), auth: eb.ref('excluded.auth'), created_at: eb.ref('excluded.created_at') })))
      .execute();
  }

  async pushSubscriptionsOf(account: string): Promise<PushSubscriptionRow[]> {
    const rows = await this.db.selectFrom('push_subscriptions').selectAll().where('account', '=', account).orderBy('endpoint_id').execute();
    return rows.map((r) => ({ endpointId: r.endpoint_id, account: r.account, url: r.url, p256dh: r.p256dh, auth: r.auth, createdAt: r.created_at }));
  }

  async deletePushSubscription(endpointId: string, url?: string): Promise<boolean> {
    let q = this.db.deleteFrom('push_subscriptions').where('endpoint_id', '=', endpointId);
    if (url !== undefined) q = q.where('url', '=', url);
    return (await q.returning('endpoint_id').executeTakeFirst()) !== undefined;
  }

  private async purgeNonces(now: number): Promise<void> {
    if (now - this.noncesPurgedAt < NONCE_PURGE_MS && now >= this.noncesPurgedAt) return;
    this.noncesPurgedAt = now;
    await this.db.deleteFrom('resume_nonces').where('expires_at', '<=', now).execute();
  }

  transaction<T>(fn: (store: SqlStore) => Promise<T>): Promise<T> {
    // A transaction inside a transaction joins it (Kysely has no nested transactions).
    if (this.db.isTransaction) return fn(this);
    return this.db.transaction().execute((trx) => fn(new SqlStore(trx, this.dialect)));
  }

  close(): Promise<void> {
    this.closing ??= this.onClose();
    return this.closing;
  }

  private async pair(a: string, b: string): Promise<[string, string]> {
    checkAccountName(a, 'first account');
    checkAccountName(b, 'second account');
    if (a === b) throw new SweepError('INVALID_MESSAGE', `buddies: an account cannot be its own buddy ("${a}")`);
    for (const n of [a, b]) if (!(await this.getAccount(n))) throw unknownAccount(n);
    return a < b ? [a, b] : [b, a];
  }
}

/** The online rows of an account and its buddies: one IN over a UNION, for the index (buddiesOf); the account itself by its primary key. */
function onlineForAccountQuery(db: Kysely<Tables>, { account }: { account: string }) {
  return db
    .selectFrom('online_endpoints')
    .selectAll()
    .where((eb) =>
      eb(
        'account',
        'in',
        eb
          .selectFrom('accounts')
          .select('name as account')
          .where('name', '=', account)
          .unionAll(eb.selectFrom('buddies').select('b as account').where('a', '=', account))
          .unionAll(eb.selectFrom('buddies').select('a as account').where('b', '=', account)),
      ),
    )
    .orderBy('endpoint_id');
}

const onlineForAccountIn: Record<SqlDialect, ReturnType<typeof compiledOnce<Tables, { account: string }, Selectable<OnlineEndpointsTable>>>> = {
  sqlite: compiledOnce(onlineForAccountQuery),
  postgres: compiledOnce(onlineForAccountQuery),
};

/** A lease that lapsed before `now` and is renewed starts again; an unbroken one keeps its start. */
function leaseStart(eb: ExpressionBuilder<Tables, 'node_leases'>, now: number): Expression<number> {
  return eb.case().when('node_leases.expires_at', '<=', now).then(now).else(eb.ref('node_leases.started_at')).end();
}

function summary(r: { name: string; display_name: string; created_at: number }): AccountSummary {
  return { name: r.name, displayName: r.display_name, createdAt: r.created_at };
}

function onlineRow(r: { endpoint_id: string; account: string; kind: string; label: string; node_id: string; session_id: string; since: number }): OnlineRow {
  return { endpointId: r.endpoint_id, account: r.account, kind: r.kind, label: r.label, nodeId: r.node_id, sessionId: r.session_id, since: r.since };
}
