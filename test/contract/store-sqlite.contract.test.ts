import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../server/store/open.ts';
import { storeContract } from './store.contract.ts';

storeContract(t, {
  async open(t) {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-store-'));
    const opened: Array<{ close(): Promise<void> }> = [];
    t.teardown(async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const reopen = async () => {
      const s = await openStore({ kind: 'sqlite', dataDir: dir });
      opened.push(s);
      return s;
    };
    return { store: await reopen(), reopen };
  },
});

void t.test('openStore on an accounts.db made by the old single-file schema adopts it and keeps its data', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const old = new Database(join(dir, 'accounts.db'));
  old.exec(`CREATE TABLE accounts (name TEXT PRIMARY KEY, display_name TEXT NOT NULL, password_hash TEXT NOT NULL, created_at INTEGER NOT NULL) STRICT;
    INSERT INTO accounts VALUES ('alice', 'Alice', 'H', 7);`);
  old.pragma('user_version = 2');
  old.close();
  const store = await openStore({ kind: 'sqlite', dataDir: dir });
  t.teardown(() => store.close());
  t.strictSame(await store.getAccount('alice'), { name: 'alice', displayName: 'Alice', passwordHash: 'H', createdAt: 7 });
  await store.createAccount('bob', 'Bob', 'H');
  await store.addBuddies('alice', 'bob');
  t.same((await store.buddiesOf('bob')).map((b) => b.name), ['alice']);
});
