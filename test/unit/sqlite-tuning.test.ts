import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tuneSqlite, withStatementCache } from '../../server/store/sqlite-tuning.ts';
import { openStore } from '../../server/store/open.ts';

void t.test('tuneSqlite sets WAL, NORMAL sync (no fsync per commit), foreign keys and a busy timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-sqlite-'));
  const db = new Database(join(dir, 'a.db'));
  t.teardown(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  tuneSqlite(db);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
  t.equal(db.pragma('foreign_keys', { simple: true }), 1);
  t.equal(db.pragma('busy_timeout', { simple: true }), 5000);
});

void t.test('withStatementCache prepares a text once and keeps the most recently used within its bound', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  const prepared: string[] = [];
  const cached = withStatementCache({ prepare: (sql: string) => (prepared.push(sql), db.prepare(sql)), close: () => db.close() }, 2);
  const a = cached.prepare('select 1 as a');
  t.equal(cached.prepare('select 1 as a'), a, 'the same statement for the same text');
  t.same(a.all([]), [{ a: 1 }]);
  t.same(a.all([]), [{ a: 1 }], 'and it runs again');
  cached.prepare('select 2 as b');
  cached.prepare('select 1 as a');
  cached.prepare('select 3 as c');
  t.same(prepared, ['select 1 as a', 'select 2 as b', 'select 3 as c']);
  cached.prepare('select 2 as b');
  t.same(prepared.slice(3), ['select 2 as b'], 'select 2 had been let go (least recently used when select 3 came)');
  cached.prepare('select 3 as c');
  t.equal(prepared.length, 4, 'select 3 is still held');
  cached.prepare('select 1 as a');
  t.same(prepared.slice(4), ['select 1 as a'], 'select 1 went when select 2 came back');
});

void t.test('openStore on SQLite: purging expired session tokens (each A8 resume does) uses an index, not a table scan', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-sqlite-'));
  const store = await openStore({ kind: 'sqlite', dataDir: dir });
  await store.close();
  const db = new Database(join(dir, 'accounts.db'), { readonly: true });
  t.teardown(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const plan = db.prepare('explain query plan delete from login_sessions where expires_at <= ?').all(0) as Array<{ detail: string }>;
  t.match(plan.map((p) => p.detail).join('; '), /USING (COVERING )?INDEX login_sessions_expires/);
});
