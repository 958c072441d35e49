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
