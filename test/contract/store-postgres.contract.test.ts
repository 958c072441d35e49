import t from 'tap';
import { migrateStore, openStore } from '../../server/store/open.ts';
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

void t.test('a resume-proof login on PostgreSQL takes one statement for its nonce and one for its session token (issue 16)', async (t) => {
  const url = await pg.createDatabase('roundtrips');
  await migrateStore({ kind: 'postgres', url });
  const sent: string[] = [];
  const store = await openStore({ kind: 'postgres', url }, { onQuery: (q) => sent.push(q) });
  t.teardown(() => store.close());
  await store.createAccount('alice', 'Alice', 'hash');
  await store.useResumeNonce('n0', 70_000, 10_000);
  sent.length = 0;
  t.equal(await store.useResumeNonce('n1', 71_000, 11_000), true);
  t.equal(await store.useResumeNonce('n1', 71_000, 11_500), false, 'used once');
  t.equal(sent.length, 2, `one statement a proof, the expired deleted a while ago (${sent.join(' | ')})`);
  sent.length = 0;
  await store.replaceLoginSession('t1', 'alice', 'a1', 90_000);
  await store.replaceLoginSession('t2', 'alice', 'a1', 90_000);
  t.equal(sent.length, 2, `one statement a token (${sent.join(' | ')})`);
  t.equal(await store.countLoginSessions('alice', 'a1'), 1, 'the older token is gone');
  t.equal(await store.useResumeNonce('n1', 200_000, 100_000), true, 'an expired record counts as none');
});
