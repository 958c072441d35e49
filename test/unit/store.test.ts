import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountStore } from '../../server/store.ts';

function openStore(t: Test): { store: AccountStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-store-'));
  const store = AccountStore.open(dir);
  t.teardown(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

void t.test('createAccount then getAccount returns it', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'Alice A.', 'HASH', 1000);
  t.same(store.getAccount('alice'), { name: 'alice', displayName: 'Alice A.', passwordHash: 'HASH', createdAt: 1000 });
  t.equal(store.getAccount('bob'), undefined);
});

void t.test('createAccount with an existing name throws BAD_STATE naming it', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'Alice', 'H');
  t.throws(() => store.createAccount('alice', 'Other', 'H'), { code: 'BAD_STATE', message: 'account "alice" already exists' });
});

void t.test('createAccount with a bad name or display name throws INVALID_MESSAGE naming the value', async (t) => {
  const { store } = openStore(t);
  t.throws(() => store.createAccount('Alice!', 'A', 'H'), { code: 'INVALID_MESSAGE', message: /account: "Alice!" is not an account name/ });
  t.throws(() => store.createAccount('alice', 'x'.repeat(65), 'H'), { code: 'INVALID_MESSAGE', message: /display name/ });
});

void t.test('setPassword on a known account replaces the hash, on an unknown one throws NOT_FOUND', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'Alice', 'OLD');
  store.setPassword('alice', 'NEW');
  t.equal(store.getAccount('alice')?.passwordHash, 'NEW');
  t.throws(() => store.setPassword('zed', 'H'), { code: 'NOT_FOUND', message: 'unknown account "zed"' });
});

void t.test('listAccounts returns summaries sorted by name without hashes', async (t) => {
  const { store } = openStore(t);
  store.createAccount('bob', 'Bob', 'H', 2);
  store.createAccount('alice', 'Alice', 'H', 1);
  t.same(store.listAccounts(), [
    { name: 'alice', displayName: 'Alice', createdAt: 1 },
    { name: 'bob', displayName: 'Bob', createdAt: 2 },
  ]);
});

void t.test('addBuddies makes a symmetric pair and is idempotent', async (t) => {
  const { store } = openStore(t);
  for (const n of ['alice', 'bob', 'carol']) store.createAccount(n, n.toUpperCase(), 'H');
  store.addBuddies('bob', 'alice');
  store.addBuddies('alice', 'bob');
  store.addBuddies('alice', 'carol');
  t.same(store.buddiesOf('alice').map((b) => b.name), ['bob', 'carol']);
  t.same(store.buddiesOf('bob').map((b) => b.name), ['alice']);
  t.same(store.buddiesOf('carol').map((b) => b.displayName), ['ALICE']);
  t.ok(store.areBuddies('bob', 'alice'));
  t.notOk(store.areBuddies('bob', 'carol'));
});

void t.test('addBuddies with an unknown or the same account throws naming it', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'A', 'H');
  t.throws(() => store.addBuddies('alice', 'zed'), { code: 'NOT_FOUND', message: 'unknown account "zed"' });
  t.throws(() => store.addBuddies('alice', 'alice'), { code: 'INVALID_MESSAGE', message: /own buddy \("alice"\)/ });
});

void t.test('removeBuddies removes the pair both ways and reports whether it existed', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'A', 'H');
  store.createAccount('bob', 'B', 'H');
  store.addBuddies('alice', 'bob');
  t.equal(store.removeBuddies('bob', 'alice'), true);
  t.same(store.buddiesOf('alice'), []);
  t.equal(store.removeBuddies('alice', 'bob'), false);
});

void t.test('AccountStore.open on an existing dir keeps the data and uses WAL', async (t) => {
  const { store, dir } = openStore(t);
  store.createAccount('alice', 'A', 'H');
  store.close();
  const again = AccountStore.open(dir);
  t.teardown(() => again.close());
  t.equal(again.getAccount('alice')?.name, 'alice');
  store.close(); // idempotent
});

void t.test('claimEndpoint on a free id binds it; on a bound id returns the owner and changes nothing (A10)', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'A', 'H');
  store.createAccount('bob', 'B', 'H');
  t.equal(store.claimEndpoint('handset-1', 'alice', 5), 'alice');
  t.equal(store.claimEndpoint('handset-1', 'bob', 6), 'alice');
  t.equal(store.claimEndpoint('handset-1', 'alice', 7), 'alice');
  t.same(store.listEndpointBindings('alice'), [{ endpointId: 'handset-1', boundAt: 5 }]);
  t.same(store.listEndpointBindings('bob'), []);
});

void t.test('releaseEndpoint frees the id and revokes its sessions; returns the old owner or undefined (A10)', async (t) => {
  const { store } = openStore(t);
  store.createAccount('alice', 'A', 'H');
  store.claimEndpoint('handset-1', 'alice');
  store.addLoginSession('T', 'alice', 'handset-1', Date.now() + 60_000);
  t.equal(store.releaseEndpoint('handset-1'), 'alice');
  t.equal(store.endpointOwner('handset-1'), undefined);
  t.equal(store.takeLoginSession('T', Date.now()), undefined, 'the session token went with it');
  t.equal(store.releaseEndpoint('handset-1'), undefined);
});
