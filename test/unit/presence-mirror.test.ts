import t from 'tap';
import { PresenceMirror } from '../../server/presence-mirror.ts';

const row = (endpointId: string, account: string, label = '') => ({ endpointId, account, kind: 'phone', label, nodeId: 'n', sessionId: 's', since: 1 });

void t.test('reconcile after a bus outage tells followers only what changed (A4)', async (t) => {
  const mirror = new PresenceMirror();
  mirror.seed([row('a1', 'alice'), row('a2', 'alice'), row('b1', 'bob')]);
  mirror.note({ endpointId: 'b2', account: 'bob', kind: 'phone', label: '', online: true });
  const changes = mirror.reconcile(['alice', 'bob'], [row('a1', 'alice'), row('a3', 'alice'), row('b1', 'bob', 'renamed'), row('b2', 'bob')]);
  t.same(
    changes.map((c) => `${c.endpointId}:${c.online}`).sort(),
    ['a2:false', 'a3:true', 'b1:true'],
    'a2 left, a3 came, b1 changed its label; a1 and b2 unchanged',
  );
  t.same(mirror.reconcile(['alice', 'bob'], [row('a1', 'alice'), row('a3', 'alice'), row('b1', 'bob', 'renamed'), row('b2', 'bob')]), [], 'a second reconcile finds nothing new');
  mirror.forget('bob');
  t.same(mirror.reconcile(['alice'], []).map((c) => c.endpointId).sort(), ['a1', 'a3']);
});
