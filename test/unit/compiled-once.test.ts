import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { compiledOnce } from '../../server/store/compiled-once.ts';

interface Db {
  items: { id: string; n: number };
}

function memoryDb(t: Test): Kysely<Db> {
  const db = new Kysely<Db>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  t.teardown(() => db.destroy());
  return db;
}

void t.test('compiledOnce builds its statement at the first call only, and each call runs with its own values', async (t) => {
  const db = memoryDb(t);
  await db.schema.createTable('items').addColumn('id', 'text', (c) => c.primaryKey()).addColumn('n', 'integer').execute();
  let built = 0;
  const insert = compiledOnce((db: Kysely<Db>, p: { id: string; n: number }) => {
    built += 1;
    return db.insertInto('items').values({ id: p.id, n: p.n }).returning(['id', 'n']);
  });
  t.same(await insert(db, { id: 'a', n: 1 }), [{ id: 'a', n: 1 }]);
  t.same(await insert(db, { n: 2, id: 'b' }), [{ id: 'b', n: 2 }], 'values are matched by name, not by order');
  t.equal(built, 1);
  t.same(await db.selectFrom('items').selectAll().orderBy('id').execute(), [{ id: 'a', n: 1 }, { id: 'b', n: 2 }]);
});

void t.test('compiledOnce with a statement that makes up a value of its own throws INTERNAL naming the placeholder', async (t) => {
  const db = memoryDb(t);
  const bad = compiledOnce((db: Kysely<Db>, p: { id: string }) => db.selectFrom('items').selectAll().where('id', '=', p.id).where('n', '>', 5));
  await t.rejects(bad(db, { id: 'a' }), { code: 'INTERNAL', message: /compiledOnce: parameter \$2 \(5\) is not taken from the statement's argument/ });
});
