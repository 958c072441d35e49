import { sql, type ExpressionBuilder, type Kysely, type RawBuilder } from 'kysely';
import { compiledOnce } from './compiled-once.ts';
import { newerLoginTakesOver } from './online-upsert.ts';
import { SweepError } from '../../core/errors.ts';
import type { AccountSummary, LoginWrites, LoginWritten } from '../store.ts';
import type { Tables } from './schema.ts';

/**
 * The statements of a login on PostgreSQL, each one round trip: in a restart storm every login
 * runs them, and the round trips (parse, plan, commit each) were the node's and the engine's
 * cost. Data-modifying WITH clauses run once each, against one snapshot, and pass what they did
 * on through RETURNING; SQLite has no such clauses (SqlStore runs the parts in a transaction).
 */

/** Parameters in a SELECT list have no type of their own: they are cast to the column's. INSERT … SELECT matches columns by position. */
const text = <T extends string | null>(value: T): RawBuilder<T> => sql<T>`cast(${value} as text)`;
const bigint = (value: number): RawBuilder<number> => sql<number>`cast(${value} as bigint)`;

/** The names of `account`'s buddies, one IN over a UNION for the index (SqlStore.buddiesOf). */
function buddyNames(eb: ExpressionBuilder<Tables, 'accounts'>, account: string) {
  return eb.selectFrom('buddies').select('b as name').where('a', '=', account).unionAll(eb.selectFrom('buddies').select('a as name').where('b', '=', account));
}

type LoginParams = Omit<LoginWrites, 'online' | 'resumeNonce'> & LoginWrites['online'] & { nonce: string | null; nonceExpiresAt: number; now: number };

/** AccountStore.writeLogin: nonce, claim, session token and online row, written only for the id's owner. */
const writeLogin = compiledOnce((db: Kysely<Tables>, w: LoginParams) =>
  db
    // A14: a resume proof's nonce (none for other logins). The primary key decides between two
    // nodes taking the same nonce at once; an expired record counts as none.
    .with('used', (db) =>
      db
        .insertInto('resume_nonces')
        .columns(['nonce', 'expires_at'])
        .expression(db.selectNoFrom([text(w.nonce).as('nonce'), bigint(w.nonceExpiresAt).as('expires_at')]).where(sql<boolean>`${text(w.nonce)} is not null`))
        .onConflict((oc) => oc.column('nonce').doUpdateSet({ expires_at: (eb) => eb.ref('excluded.expires_at') }).where('resume_nonces.expires_at', '<=', w.now))
        .returning('nonce'),
    )
    .with('login', (db) => db.selectFrom('accounts').select(['name', 'display_name', 'password_hash', 'created_at']).where('name', '=', w.account))
    // One row when the account exists and a nonce, if any, was fresh: everything below selects from it.
    .with('allowed', (db) =>
      db
        .selectFrom('login')
        .select('name')
        .where((eb) => eb.or([sql<boolean>`${text(w.nonce)} is null`, eb.exists(eb.selectFrom('used').select('nonce'))])),
    )
    // A10: on conflict the binding is "updated" to itself, so RETURNING names the existing owner.
    .with('claim', (db) =>
      db
        .insertInto('endpoint_bindings')
        .columns(['endpoint_id', 'account', 'bound_at'])
        .expression((eb) => eb.selectFrom('allowed').select([text(w.endpointId).as('endpoint_id'), 'name', bigint(w.boundAt).as('bound_at')]))
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
    // One row at least, whatever was written: the left joins keep it.
    .selectFrom(sql<{ one: number }>`(select 1 as one)`.as('one'))
    .leftJoin('login', (join) => join.onTrue())
    .leftJoin('claim', (join) => join.onTrue())
    .leftJoin(
      (eb) => eb.selectFrom('accounts').select(['name', 'display_name', 'created_at']).where((eb) => eb('name', 'in', buddyNames(eb, w.account))).as('buddy'),
      (join) => join.onTrue(),
    )
    .select((eb) => [
      eb.selectFrom('used').select((eb) => eb.fn.countAll<string>().as('n')).as('fresh'),
      'login.name as login_name',
      'login.display_name as login_display_name',
      'login.password_hash as login_password_hash',
      'login.created_at as login_created_at',
      'claim.account as owner',
      'buddy.name',
      'buddy.display_name',
      'buddy.created_at',
    ])
    .orderBy('buddy.name'),
);

export async function writeLoginPostgres(db: Kysely<Tables>, login: LoginWrites): Promise<LoginWritten> {
  const { resumeNonce: nonce } = login;
  const rows = await writeLogin(db, { boundAt: login.boundAt, tokenHash: login.tokenHash, expiresAt: login.expiresAt, ...login.online, nonce: nonce?.nonce ?? null, nonceExpiresAt: nonce?.expiresAt ?? 0, now: nonce?.now ?? 0 });
  const [first] = rows;
  if (!first) throw new SweepError('INTERNAL', 'login: the statement returned no row');
  const { login_name: name, login_display_name: displayName, login_password_hash: passwordHash, login_created_at: createdAt } = first;
  const account = name !== null && displayName !== null && passwordHash !== null && createdAt !== null ? { name, displayName, passwordHash, createdAt } : undefined;
  const replayed = nonce !== undefined && Number(first.fresh) === 0;
  if (first.owner === null) return { owner: undefined, buddies: [], account, replayed };
  const buddies: AccountSummary[] = [];
  for (const r of rows) if (r.name !== null && r.display_name !== null && r.created_at !== null) buddies.push({ name: r.name, displayName: r.display_name, createdAt: r.created_at });
  return { owner: first.owner, buddies, account, replayed };
}
