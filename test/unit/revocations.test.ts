import t from 'tap';
import { Revocations } from '../../server/revocations.ts';
import { silentLogger } from '../../platform/log.ts';

/** A store whose revocations fail while `down`; `revoked` lists what it took. */
function store() {
  const s = {
    down: false,
    revoked: [] as string[],
    revokeLoginSession: (hash: string): Promise<void> => {
      if (s.down) return Promise.reject(new Error('connect ECONNREFUSED'));
      s.revoked.push(hash);
      return Promise.resolve();
    },
  };
  return s;
}

void t.test('Revocations.revoke while the store is out of reach keeps the token refused here and revokes it when a retry reaches the store (A9)', async (t) => {
  const s = store();
  const r = new Revocations(s, silentLogger());
  t.equal(await r.revoke('h1'), true, 'revoked at once while the store answers');
  t.notOk(r.has('h1'), 'nothing waits');
  s.down = true;
  t.equal(await r.revoke('h2'), false, 'kept: the store is out of reach');
  t.equal(await r.revoke('h3'), false);
  t.ok(r.has('h2') && r.has('h3'), 'refused here meanwhile');
  await r.retry();
  t.equal(r.count, 2, 'a retry while the store is still out of reach keeps them');
  s.down = false;
  await r.retry();
  t.same(s.revoked, ['h1', 'h2', 'h3'], 'revoked in the store once it answers');
  t.equal(r.count, 0);
  t.notOk(r.has('h2'), 'the store refuses it from now on');
});
