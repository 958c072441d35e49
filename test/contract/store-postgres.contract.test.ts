import t from 'tap';
import pgClient from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { compiledOnce } from '../../server/store/compiled-once.ts';
import { migrateStore, nameCompiledStatements, openStore } from '../../server/store/open.ts';
import type { AccountStore } from '../../server/store.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { storeContract } from './store.contract.ts';

const pg = await startPostgres(t);

storeContract(t, {
  async open(t) {
    const url = await pg.createDatabase('store');
    await migrateStore({ kind: 'postgres', url });
    const opened: AccountStore[] = [];
    t.teardown(async () => {
      for (const s of opened) await s.close();
    });
    const reopen = async () => {
      const s = await openStore({ kind: 'postgres', url });
      opened.push(s);
      return s;
    };
    return { store: await reopen(), reopen };
  },
});

void t.test('openStore on a PostgreSQL database without the schema refuses, naming the migrate command', async (t) => {
  const url = await pg.createDatabase('bare');
  await t.rejects(openStore({ kind: 'postgres', url }), { code: 'BAD_STATE', message: /pending: 001_accounts, 002_cluster, 003_login_limits, 004_call_history, 005_push_subscriptions, 006_resume_nonces, 007_login_sessions_expiry.*sweep server migrate/ });
  t.same(await migrateStore({ kind: 'postgres', url }), ['001_accounts', '002_cluster', '003_login_limits', '004_call_history', '005_push_subscriptions', '006_resume_nonces', '007_login_sessions_expiry']);
  t.same(await migrateStore({ kind: 'postgres', url }), [], 'a second migrate applies nothing');
  const store = await openStore({ kind: 'postgres', url });
  await store.close();
});

void t.test('a resume-proof login on PostgreSQL writes its nonce, claim, token and online row in one statement (issue 16)', async (t) => {
  const url = await pg.createDatabase('roundtrips');
  await migrateStore({ kind: 'postgres', url });
  const sent: string[] = [];
  const store = await openStore({ kind: 'postgres', url }, { onQuery: (q) => sent.push(q) });
  t.teardown(() => store.close());
  await store.createAccount('alice', 'Alice', 'hash');
  const online = { endpointId: 'a1', account: 'alice', kind: 'phone', label: '', nodeId: 'n1', sessionId: 's0', since: 1 };
  await store.writeLogin({ boundAt: 1, tokenHash: 't0', expiresAt: 90_000, online, resumeNonce: { nonce: 'n0', expiresAt: 70_000, now: 10_000 } });
  sent.length = 0;
  const first = await store.writeLogin({ boundAt: 1, tokenHash: 't1', expiresAt: 90_000, online: { ...online, sessionId: 's1' }, resumeNonce: { nonce: 'n1', expiresAt: 71_000, now: 11_000 } });
  t.match(first, { owner: 'alice', account: { name: 'alice', displayName: 'Alice' }, replayed: false });
  t.equal((await store.writeLogin({ boundAt: 2, tokenHash: 't2', expiresAt: 90_000, online: { ...online, sessionId: 's2' }, resumeNonce: { nonce: 'n1', expiresAt: 71_000, now: 11_500 } })).replayed, true, 'used once');
  t.equal(sent.length, 2, `one statement a proof login, the expired nonces deleted a while ago (${sent.join(' | ')})`);
  sent.length = 0;
  await store.writeLogin({ boundAt: 3, tokenHash: 't3', expiresAt: 90_000, online: { ...online, sessionId: 's3' } });
  t.equal(sent.length, 1, `one statement a password login's writes (${sent.join(' | ')})`);
  t.equal(await store.countLoginSessions('alice', 'a1'), 1, 'the older token is gone');
  t.same((await store.onlineForAccount('alice')).map((r) => r.sessionId), ['s3']);
  t.equal((await store.writeLogin({ boundAt: 4, tokenHash: 't4', expiresAt: 90_000, online, resumeNonce: { nonce: 'n1', expiresAt: 200_000, now: 100_000 } })).replayed, false, 'an expired record counts as none');
});

void t.test('a login reads its buddies and their online rows by index on PostgreSQL, not by scanning 10,000 rows (issue 16)', async (t) => {
  const url = await pg.createDatabase('plans');
  await migrateStore({ kind: 'postgres', url });
  const sent: string[] = [];
  const store = await openStore({ kind: 'postgres', url }, { onQuery: (q) => sent.push(q) });
  const raw = new pgClient.Pool({ connectionString: url, max: 1 });
  t.teardown(async () => {
    await raw.end();
    await store.close();
  });
  await raw.query(`INSERT INTO accounts (name, display_name, password_hash, created_at) SELECT 'h' || g, 'H', 'x', 0 FROM generate_series(0, 2499) g`);
  await raw.query(`INSERT INTO buddies (a, b) SELECT 'h' || g, 'h' || (g + 1) FROM generate_series(0, 2498, 2) g`);
  await raw.query(`INSERT INTO online_endpoints (endpoint_id, account, kind, label, node_id, session_id, since) SELECT 'h' || (g / 4) || '-e' || (g % 4), 'h' || (g / 4), 'phone', '', 'n1', 's' || g, 0 FROM generate_series(0, 9999) g`);
  await raw.query('ANALYZE');
  sent.length = 0;
  t.same((await store.buddiesOf('h10')).map((b) => b.name), ['h11']);
  t.same((await store.onlineForAccount('h10')).map((r) => r.endpointId), ['h10-e0', 'h10-e1', 'h10-e2', 'h10-e3', 'h11-e0', 'h11-e1', 'h11-e2', 'h11-e3']);
  for (const query of sent) {
    const params = Array.from(query.matchAll(/\$\d+/g), () => 'h10');
    const plan = (await raw.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${query}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
    t.notMatch(plan, /Seq Scan on (accounts|online_endpoints)/, `${query.slice(0, 60)}…\n${plan}`);
  }
});

void t.test('a statement compiled once goes to PostgreSQL named: prepared once per connection, then only its values are sent (issue 16)', async (t) => {
  const url = await pg.createDatabase('prepared');
  const pool = new pgClient.Pool({ connectionString: url, max: 1 });
  pool.on('connect', nameCompiledStatements);
  const db = new Kysely<{ t: { n: number } }>({ dialect: new PostgresDialect({ pool }) });
  t.teardown(() => db.destroy());
  const plusOne = compiledOnce((db: Kysely<{ t: { n: number } }>, p: { n: number }) => db.selectNoFrom(sql<number>`cast(${p.n} as int) + 1`.as('m')));
  t.same(await plusOne(db, { n: 1 }), [{ m: 2 }]);
  t.same(await plusOne(db, { n: 41 }), [{ m: 42 }], 'the prepared statement runs with new values');
  const prepared = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(db);
  t.equal(prepared.rows.length, 1, 'one statement prepared on the connection');
  t.match(prepared.rows[0]?.name, /^sweep_\d+$/);
  t.match(prepared.rows[0]?.statement, /cast\(\$1 as int\) \+ 1/);
});
