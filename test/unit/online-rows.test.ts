// Issue 16: a logout while the store is out of reach must not leave the endpoint online for ever.
import t from 'tap';
import { OnlineRows } from '../../server/online-rows.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import { silentLogger } from '../../platform/log.ts';

/** The online rows of a store that is out of reach while `down`: endpoint id → session id. */
function fakeStore(rows: Map<string, string>, state: { down: boolean }) {
  return {
    dropOnline(endpointId: string, sessionId: string): Promise<boolean> {
      if (state.down) return Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      if (rows.get(endpointId) !== sessionId) return Promise.resolve(false);
      rows.delete(endpointId);
      return Promise.resolve(true);
    },
  };
}

const info = (endpointId: string): EndpointInfo => ({ endpointId, account: 'alice', kind: 'phone', label: endpointId, online: true });

void t.test('drop while the store is down keeps the removal; retry once it answers removes the row and announces offline (A4)', async (t) => {
  const rows = new Map([['a1', 's1'], ['a2', 's2']]);
  const state = { down: false };
  const offline: string[] = [];
  const online = new OnlineRows(fakeStore(rows, state), (e) => offline.push(`${e.endpointId}:${e.online}`), silentLogger());
  state.down = true;
  await online.drop(info('a1'), 's1');
  await online.drop(info('a2'), 's2');
  t.equal(online.waiting, 2, 'both removals wait');
  await online.retry();
  t.equal(online.waiting, 2, 'still down: still waiting');
  t.same(offline, []);
  state.down = false;
  await online.retry();
  t.equal(online.waiting, 0);
  t.same(offline, ['a1:false', 'a2:false'], 'followers hear it once the rows are gone');
  t.same([...rows.keys()], []);
});

void t.test('retry of a removal whose row a newer login took over removes nothing and announces nothing (A4, A6)', async (t) => {
  const rows = new Map([['a1', 's1']]);
  const state = { down: true };
  const offline: string[] = [];
  const online = new OnlineRows(fakeStore(rows, state), (e) => offline.push(e.endpointId), silentLogger());
  await online.drop(info('a1'), 's1');
  rows.set('a1', 's9'); // a newer login of a1 on another node
  state.down = false;
  await online.retry();
  t.equal(online.waiting, 0, 'nothing left to do');
  t.same(offline, [], 'a1 is online elsewhere');
  t.same(rows.get('a1'), 's9');
});

void t.test('drop with the store up removes the row and announces offline at once (A4)', async (t) => {
  const rows = new Map([['a1', 's1']]);
  const offline: string[] = [];
  const online = new OnlineRows(fakeStore(rows, { down: false }), (e) => offline.push(e.endpointId), silentLogger());
  await online.drop(info('a1'), 's1');
  t.same(offline, ['a1']);
  t.equal(online.waiting, 0);
});
