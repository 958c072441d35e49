import { sql, type ExpressionBuilder, type Kysely, type RawBuilder } from 'kysely';
import { compiledOnce } from './compiled-once.ts';
import { newerLoginTakesOver } from './online-upsert.ts';
import { SweepError } from '../../core/errors.ts';
import type { Account, AccountSummary, LoginWrites } from '../store.ts';
import type { Tables } from './schema.ts';

/**
 * The statements of a login on PostgreSQL, each one round trip: in a restart storm every login
 * runs them, and the round trips (parse, plan, commit each) were the node's and the engine's
 * cost. Data-modifying WITH clauses run once each, against one snapshot, and pass what they did
 * on through RETURNING; SQLite has no such clauses (SqlStore runs the parts in a transaction).
 */

/** Parameters in a SELECT list have no type of their own: they are cast to the column's. INSERT … SELECT matches columns by position. */
const text = (value: string): RawBuilder<string> => sql<string>`cast(${value} as text)`;
const bigint = (value: number): RawBuilder<number> => sql<number>`cast(${value} as bigint)`;

/** The names of `account`'s buddies, one IN over a UNION for the index (SqlStore.buddiesOf). */
function buddyNames(eb: ExpressionBuilder<Tables, 'accounts'>, account: string) {
  return eb.selectFrom('buddies').select('b as name').where('a', '=', account).unionAll(eb.selectFrom('buddies').select('a as name').where('b', '=', account));
}

/** AccountStore.writeLogin: claim, session token and online row, written only for the id's owner. */
const writeLogin = compiledOnce((db: Kysely<Tables>, w: Omit<LoginWrites, 'online'> & LoginWrites['online']) =>
  db
    // A10: on conflict the binding is "updated" to itself, so RETURNING names the existing owner.
    .with('claim', (db) =>
      db
        .insertInto('endpoint_bindings')
        .values({ endpoint_id: w.endpointId, account: w.account, bound_at: w.boundAt })
        .onConflict((oc) => oc.column('endpoint_id').doUpdateSet({ endpoint_id: (eb) => eb.ref('excluded.endpoint_id') }))
        .returning('account'),
    )
    // One row when the login's account owns the id, none otherwise: the writes below select from it.
    .with('mine', (db) => db.selectFrom('claim').select('account').where('account', '=', w.account))
    // A7: one live token per endpoint.
    .with('revoked', (db) =>
      db
        .deleteFrom('login_sessions')
        .where('account', '=', w.account)
        .where('endpoint_id', '=', w.endpointId)
        .where((eb) => eb.exists(eb.selectFrom('mine').select('account')))
        .returning('token_hash'),
    )
    .with('session', (db) =>
      db
        .insertInto('login_sessions')
        .columns(['account', 'token_hash', 'endpoint_id', 'expires_at'])
        .expression((eb) => eb.selectFrom('mine').select(['account', text(w.tokenHash).as('token_hash'), text(w.endpointId).as('endpoint_id'), bigint(w.expiresAt).as('expires_at')]))
        .returning('token_hash'),
    )
    // A4: a newer login of this endpoint, on any node, replaces the row of the older one.
    .with('online', (db) =>
      db
        .insertInto('online_endpoints')
        .columns(['account', 'endpoint_id', 'kind', 'label', 'node_id', 'session_id', 'since'])
        .expression((eb) =>
          eb
            .selectFrom('mine')
            .select(['account', text(w.endpointId).as('endpoint_id'), text(w.kind).as('kind'), text(w.label).as('label'), text(w.nodeId).as('node_id'), text(w.sessionId).as('session_id'), bigint(w.since).as('since')]),
        )
        .onConflict(newerLoginTakesOver)
        .returning('endpoint_id'),
    )
    .selectFrom('claim')
    .leftJoin(
      (eb) => eb.selectFrom('accounts').select(['name', 'display_name', 'created_at']).where((eb) => eb('name', 'in', buddyNames(eb, w.account))).as('buddy'),
      (join) => join.onTrue(),
    )
    .select(['claim.account as owner', 'buddy.name', 'buddy.display_name', 'buddy.created_at'])
    .orderBy('buddy.name'),
);

export async function writeLoginPostgres(db: Kysely<Tables>, login: LoginWrites): Promise<{ owner: string; buddies: AccountSummary[] }> {
  const rows = await writeLogin(db, { boundAt: login.boundAt, tokenHash: login.tokenHash, expiresAt: login.expiresAt, ...login.online });
  const buddies: AccountSummary[] = [];
  for (const r of rows) if (r.name !== null && r.display_name !== null && r.created_at !== null) buddies.push({ name: r.name, displayName: r.display_name, createdAt: r.created_at });
  return { owner: rows[0]?.owner ?? login.online.account, buddies };
}

/** AccountStore.useResumeNonceOf: the nonce recorded (SqlStore.useResumeNonce's rule) and the account read, in one statement. */
const useResumeNonceOf = compiledOnce((db: Kysely<Tables>, { account, nonce, expiresAt, now }: { account: string; nonce: string; expiresAt: number; now: number }) =>
  db
    // The primary key decides between two nodes taking the same nonce at once; an expired record counts as none.
    .with('used', (db) =>
      db
        .insertInto('resume_nonces')
        .values({ nonce, expires_at: expiresAt })
        .onConflict((oc) => oc.column('nonce').doUpdateSet({ expires_at: (eb) => eb.ref('excluded.expires_at') }).where('resume_nonces.expires_at', '<=', now))
        .returning('nonce'),
    )
    // One row whether or not the account exists: the left join keeps it.
    .selectFrom(sql<{ one: number }>`(select 1 as one)`.as('one'))
    .leftJoin('accounts', (join) => join.on('accounts.name', '=', account))
    .select((eb) => [eb.selectFrom('used').select((eb) => eb.fn.countAll<string>().as('n')).as('fresh'), 'accounts.name', 'accounts.display_name', 'accounts.password_hash', 'accounts.created_at']),
);

export async function useResumeNonceOfPostgres(db: Kysely<Tables>, account: string, nonce: string, expiresAt: number, now: number): Promise<{ fresh: boolean; account: Account | undefined }> {
  const [row] = await useResumeNonceOf(db, { account, nonce, expiresAt, now });
  if (!row) throw new SweepError('INTERNAL', 'resume nonce: the statement returned no row');
  const { name, display_name, password_hash, created_at } = row;
  const found = name !== null && display_name !== null && password_hash !== null && created_at !== null;
  return { fresh: Number(row.fresh) > 0, account: found ? { name, displayName: display_name, passwordHash: password_hash, createdAt: created_at } : undefined };
}
