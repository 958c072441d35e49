import type { Test } from 'tap';
import type { AccountStore } from '../../server/store.ts';

/**
 * The store's contract, run against every back end (SQLite and PostgreSQL). `open` gives a
 * fresh, empty store; `reopen` a second store on the same data (another node, or a restart).
 */
export interface StoreSubject {
  open(t: Test): Promise<{ store: AccountStore; reopen: () => Promise<AccountStore> }>;
}

export function storeContract(t: Test, subject: StoreSubject): void {
  const open = async (t: Test): Promise<AccountStore> => (await subject.open(t)).store;

  void t.test('createAccount then getAccount returns it', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'Alice A.', 'HASH', 1000);
    t.same(await store.getAccount('alice'), { name: 'alice', displayName: 'Alice A.', passwordHash: 'HASH', createdAt: 1000 });
    t.equal(await store.getAccount('bob'), undefined);
  });

  void t.test('createAccount with an existing name rejects BAD_STATE naming it', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'Alice', 'H');
    await t.rejects(store.createAccount('alice', 'Other', 'H'), { code: 'BAD_STATE', message: 'account "alice" already exists' });
  });

  void t.test('createAccount with a bad name or display name rejects INVALID_MESSAGE naming the value', async (t) => {
    const store = await open(t);
    await t.rejects(store.createAccount('Alice!', 'A', 'H'), { code: 'INVALID_MESSAGE', message: /account: "Alice!" is not an account name/ });
    await t.rejects(store.createAccount('alice', 'x'.repeat(65), 'H'), { code: 'INVALID_MESSAGE', message: /display name/ });
  });

  void t.test('setPassword on a known account replaces the hash, on an unknown one rejects NOT_FOUND', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'Alice', 'OLD');
    await store.setPassword('alice', 'NEW');
    t.equal((await store.getAccount('alice'))?.passwordHash, 'NEW');
    await t.rejects(store.setPassword('zed', 'H'), { code: 'NOT_FOUND', message: 'unknown account "zed"' });
  });

  void t.test('listAccounts returns summaries sorted by name without hashes, times as numbers', async (t) => {
    const store = await open(t);
    await store.createAccount('bob', 'Bob', 'H', 1_700_000_000_002);
    await store.createAccount('alice', 'Alice', 'H', 1);
    t.strictSame(await store.listAccounts(), [
      { name: 'alice', displayName: 'Alice', createdAt: 1 },
      { name: 'bob', displayName: 'Bob', createdAt: 1_700_000_000_002 },
    ]);
  });

  void t.test('addBuddies makes a symmetric pair and is idempotent', async (t) => {
    const store = await open(t);
    for (const n of ['alice', 'bob', 'carol']) await store.createAccount(n, n.toUpperCase(), 'H');
    await store.addBuddies('bob', 'alice');
    await store.addBuddies('alice', 'bob');
    await store.addBuddies('alice', 'carol');
    t.same((await store.buddiesOf('alice')).map((b) => b.name), ['bob', 'carol']);
    t.same((await store.buddiesOf('bob')).map((b) => b.name), ['alice']);
    t.same((await store.buddiesOf('carol')).map((b) => b.displayName), ['ALICE']);
    t.ok(await store.areBuddies('bob', 'alice'));
    t.notOk(await store.areBuddies('bob', 'carol'));
  });

  void t.test('addBuddies with an unknown or the same account rejects naming it', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'A', 'H');
    await t.rejects(store.addBuddies('alice', 'zed'), { code: 'NOT_FOUND', message: 'unknown account "zed"' });
    await t.rejects(store.addBuddies('alice', 'alice'), { code: 'INVALID_MESSAGE', message: /own buddy \("alice"\)/ });
  });

  void t.test('removeBuddies removes the pair both ways and reports whether it existed', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'A', 'H');
    await store.createAccount('bob', 'B', 'H');
    await store.addBuddies('alice', 'bob');
    t.equal(await store.removeBuddies('bob', 'alice'), true);
    t.same(await store.buddiesOf('alice'), []);
    t.equal(await store.removeBuddies('alice', 'bob'), false);
  });

  void t.test('a second store on the same data sees what the first wrote; close is idempotent', async (t) => {
    const { store, reopen } = await subject.open(t);
    await store.createAccount('alice', 'A', 'H');
    const other = await reopen();
    t.equal((await other.getAccount('alice'))?.name, 'alice');
    await other.close();
    await other.close();
  });

  void t.test('claimEndpoint on a free id binds it; on a bound id returns the owner and changes nothing (A10)', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'A', 'H');
    await store.createAccount('bob', 'B', 'H');
    t.equal(await store.claimEndpoint('handset-1', 'alice', 5), 'alice');
    t.equal(await store.claimEndpoint('handset-1', 'bob', 6), 'alice');
    t.equal(await store.claimEndpoint('handset-1', 'alice', 7), 'alice');
    t.strictSame(await store.listEndpointBindings('alice'), [{ endpointId: 'handset-1', boundAt: 5 }]);
    t.same(await store.listEndpointBindings('bob'), []);
  });

  void t.test('claimEndpoint raced by two accounts on two stores gives one owner (A10)', async (t) => {
    const { store, reopen } = await subject.open(t);
    const other = await reopen();
    t.teardown(() => other.close());
    await store.createAccount('alice', 'A', 'H');
    await store.createAccount('bob', 'B', 'H');
    for (let i = 0; i < 20; i++) {
      const id = `door-${i}`;
      const [a, b] = await Promise.all([store.claimEndpoint(id, 'alice'), other.claimEndpoint(id, 'bob')]);
      t.equal(a, b, `${id}: both see the same owner`);
      t.equal(await store.endpointOwner(id), a);
    }
  });

  void t.test('releaseEndpoint frees the id and revokes its sessions; returns the old owner or undefined (A10)', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'A', 'H');
    await store.claimEndpoint('handset-1', 'alice');
    await store.addLoginSession('T', 'alice', 'handset-1', Date.now() + 60_000);
    t.equal(await store.releaseEndpoint('handset-1'), 'alice');
    t.equal(await store.endpointOwner('handset-1'), undefined);
    t.equal(await store.takeLoginSession('T', Date.now()), undefined, 'the session token went with it');
    t.equal(await store.releaseEndpoint('handset-1'), undefined);
  });

  void t.test('takeLoginSession is single use and refuses an expired token (A8); replaceLoginSession keeps one per endpoint (A7)', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'A', 'H');
    const now = Date.now();
    await store.replaceLoginSession('T1', 'alice', 'h-1', now + 60_000);
    await store.replaceLoginSession('T2', 'alice', 'h-1', now + 60_000);
    t.equal(await store.countLoginSessions('alice', 'h-1'), 1, 'the new token revoked the old one');
    t.equal(await store.takeLoginSession('T1', now), undefined);
    t.strictSame(await store.takeLoginSession('T2', now), { account: 'alice', endpointId: 'h-1', expiresAt: now + 60_000 });
    t.equal(await store.takeLoginSession('T2', now), undefined, 'used once');
    await store.addLoginSession('OLD', 'alice', 'h-2', now - 1);
    t.equal(await store.takeLoginSession('OLD', now), undefined, 'expired');
    await store.addLoginSession('STALE', 'alice', 'h-3', now - 1);
    t.equal(await store.purgeExpiredLoginSessions(now), 1);
  });

  void t.test('redeemProvisionCode uses a code once, even when two redeem it at once', async (t) => {
    const { store, reopen } = await subject.open(t);
    const other = await reopen();
    t.teardown(() => other.close());
    await store.createAccount('door', 'D', 'H');
    const now = Date.now();
    await store.addProvisionCode('C', 'door', 'door-1', now + 60_000, now);
    t.strictSame(await store.findProvisionCode('C', now), { account: 'door', endpointId: 'door-1', expiresAt: now + 60_000 });
    const results = await Promise.all([store.redeemProvisionCode('C', 'door', 'door-1', 'PH', 'KEY1', now), other.redeemProvisionCode('C', 'door', 'door-1', 'PH', 'KEY2', now)]);
    t.same(results.filter(Boolean).length, 1, 'exactly one redeemed it');
    t.equal((await store.listEndpointCredentials('door')).length, 1);
    t.equal(await store.findProvisionCode('C', now), undefined);
    t.equal(await store.removeEndpointCredential('door', 'door-1'), true);
    t.equal(await store.getEndpointCredential('door', 'door-1'), undefined);
    await t.rejects(store.addProvisionCode('X', 'nobody', 'e', now + 1), { code: 'NOT_FOUND' });
  });

  void t.test('transaction commits all writes together, and none when it rejects', async (t) => {
    const store = await open(t);
    await store.transaction(async (tx) => {
      for (let i = 0; i < 50; i++) await tx.createAccount(`flat-${i}`, `Flat ${i}`, 'H');
    });
    t.equal((await store.listAccounts()).length, 50);
    await t.rejects(
      store.transaction(async (tx) => {
        await tx.createAccount('lost', 'Lost', 'H');
        throw new Error('boom');
      }),
      { message: 'boom' },
    );
    t.equal(await store.getAccount('lost'), undefined, 'rolled back');
  });

  void t.test('putOnline / dropOnline: a newer login of the same endpoint wins, an older one cannot remove it (A4)', async (t) => {
    const store = await open(t);
    for (const n of ['alice', 'bob', 'carol']) await store.createAccount(n, n, 'H');
    await store.addBuddies('alice', 'bob');
    const row = { endpointId: 'h-1', account: 'alice', kind: 'deskphone', label: 'Hall', nodeId: 'n1', sessionId: 's1', since: 1 };
    await store.putOnline(row);
    await store.putOnline({ ...row, nodeId: 'n2', sessionId: 's2', since: 2 });
    t.equal(await store.dropOnline('h-1', 's1'), false, 'the older login does not remove the newer one');
    await store.putOnline({ endpointId: 'b-1', account: 'bob', kind: 'phone', label: '', nodeId: 'n1', sessionId: 's3', since: 3 });
    await store.putOnline({ endpointId: 'c-1', account: 'carol', kind: 'phone', label: '', nodeId: 'n1', sessionId: 's4', since: 4 });
    t.strictSame(await store.onlineForAccount('alice'), [
      { endpointId: 'b-1', account: 'bob', kind: 'phone', label: '', nodeId: 'n1', sessionId: 's3', since: 3 },
      { ...row, nodeId: 'n2', sessionId: 's2', since: 2 },
    ], 'own and buddies, not strangers');
    t.same((await store.onlineOf(['carol', 'bob'])).map((r) => r.endpointId), ['b-1', 'c-1']);
    t.equal(await store.dropOnline('h-1', 's2'), true);
    t.same((await store.onlineForAccount('alice')).map((r) => r.endpointId), ['b-1']);
  });

  void t.test('reapExpiredNodes removes expired leases and their online rows, never a row a newer login took over', async (t) => {
    const store = await open(t);
    await store.createAccount('alice', 'A', 'H');
    const now = 1_000_000;
    await store.putLease('dead', now - 20_000, 10_000);
    await store.putLease('live', now, 10_000);
    const row = (endpointId: string, nodeId: string, sessionId: string) => ({ endpointId, account: 'alice', kind: 'phone', label: '', nodeId, sessionId, since: 1 });
    await store.putOnline(row('e1', 'dead', 's1'));
    await store.putOnline(row('e2', 'dead', 's2'));
    await store.putOnline(row('e2', 'live', 's3'));
    await store.putOnline(row('e3', 'live', 's4'));
    t.equal(await store.countFreshLeases(now, 'live'), 0);
    t.equal(await store.countFreshLeases(now, 'other'), 1);
    const reaped = await store.reapExpiredNodes(now);
    t.same(reaped?.nodes, ['dead']);
    t.same(reaped?.rows.map((r) => `${r.endpointId}/${r.sessionId}`), ['e1/s1'], 'e2 logged in again on a live node: kept');
    t.same((await store.onlineForAccount('alice')).map((r) => r.endpointId), ['e2', 'e3']);
    t.equal(await store.renewLease('dead', now, 10_000), false, 'a reaped node learns it when it renews');
    t.equal(await store.renewLease('live', now + 1, 10_000), true);
    t.same(await store.reapExpiredNodes(now), { nodes: [], rows: [] });
    await store.dropLease('live');
    t.same((await store.reapExpiredNodes(now))?.rows.map((r) => r.endpointId).sort(), ['e2', 'e3'], 'rows of a node without a lease go too');
  });
  void t.test('countFreshLeases with unbrokenSince counts only leases that have not lapsed since then; a lapsed lease renewed starts again', async (t) => {
    const store = await open(t);
    const now = 1_000_000;
    await store.putLease('steady', now - 30_000, 10_000);
    await store.putLease('back', now - 30_000, 10_000);
    for (let at = now - 25_000; at <= now; at += 5_000) await store.renewLease('steady', at, 10_000);
    t.equal(await store.renewLease('back', now - 1_000, 10_000), true, 'renewed 19 s after it lapsed');
    await store.putLease('restarted', now - 2_000, 10_000);
    t.equal(await store.countFreshLeases(now, 'me'), 3);
    t.equal(await store.countFreshLeases(now, 'me', now - 14_000), 1, 'only the lease held without a break');
    t.equal(await store.countFreshLeases(now, 'steady', now - 14_000), 0);
    await store.putLease('steady', now + 1_000, 10_000);
    t.equal(await store.countFreshLeases(now + 1_000, 'me', now - 14_000), 1, 'putLease on an unbroken lease keeps its start');
  });

  const online = (account: string, sessionId: string) => ({ endpointId: 'h-1', account, kind: 'deskphone', label: 'Hall', nodeId: 'n1', sessionId, since: 7 });

  void t.test('writeLogin claims a free id, keeps one token per endpoint and puts the online row; for an id of another account it writes nothing (A4, A7, A10)', async (t) => {
    const store = await open(t);
    for (const n of ['alice', 'bob', 'carol']) await store.createAccount(n, n.toUpperCase(), 'H', 1);
    await store.addBuddies('alice', 'carol');
    await store.addBuddies('bob', 'alice');
    const now = 1_000;
    t.same(await store.writeLogin({ boundAt: 5, tokenHash: 'T1', expiresAt: now + 60_000, online: online('alice', 's1') }), {
      owner: 'alice',
      buddies: [{ name: 'bob', displayName: 'BOB', createdAt: 1 }, { name: 'carol', displayName: 'CAROL', createdAt: 1 }],
      account: { name: 'alice', displayName: 'ALICE', passwordHash: 'H', createdAt: 1 },
      replayed: false,
    });
    t.same(await store.listEndpointBindings('alice'), [{ endpointId: 'h-1', boundAt: 5 }]);
    t.strictSame(await store.onlineForAccount('alice'), [online('alice', 's1')]);
    await store.writeLogin({ boundAt: 6, tokenHash: 'T2', expiresAt: now + 60_000, online: { ...online('alice', 's2'), nodeId: 'n2' } });
    t.equal(await store.countLoginSessions('alice', 'h-1'), 1, 'one token per endpoint');
    t.equal(await store.takeLoginSession('T1', now), undefined, 'the older token is gone');
    t.same((await store.onlineForAccount('alice')).map((r) => `${r.nodeId}/${r.sessionId}`), ['n2/s2'], 'the newer login\'s row');
    t.match(await store.writeLogin({ boundAt: 9, tokenHash: 'T3', expiresAt: now + 60_000, online: online('bob', 's3') }), { owner: 'alice', buddies: [{ name: 'alice', displayName: 'ALICE', createdAt: 1 }], account: { name: 'bob' } });
    t.equal(await store.countLoginSessions('bob', 'h-1'), 0, 'no token for the other account');
    t.equal(await store.takeLoginSession('T3', now), undefined);
    t.same((await store.onlineForAccount('alice')).map((r) => `${r.account}/${r.sessionId}`), ['alice/s2'], 'the owner\'s row stands');
    t.same(await store.listEndpointBindings('alice'), [{ endpointId: 'h-1', boundAt: 5 }], 'the binding keeps its time');
  });

  void t.test('writeLogin with a resume nonce records it once: a second use, on any node, writes nothing until it expires; an account that does not exist gets nothing (A14)', async (t) => {
    const { store, reopen } = await subject.open(t);
    const other = await reopen(); // another node
    await store.createAccount('alice', 'Alice', 'H', 5);
    const alice = { name: 'alice', displayName: 'Alice', passwordHash: 'H', createdAt: 5 };
    const proof = (tokenHash: string, sessionId: string, nonce: string, expiresAt: number, now: number) => ({ boundAt: now, tokenHash, expiresAt: 9e12, online: online('alice', sessionId), resumeNonce: { nonce, expiresAt, now } });
    t.same(await store.writeLogin(proof('T1', 's1', 'n1', 2_000, 1_000)), { owner: 'alice', buddies: [], account: alice, replayed: false }, 'first use');
    t.same(await store.writeLogin(proof('T2', 's2', 'n1', 2_000, 1_500)), { owner: undefined, buddies: [], account: alice, replayed: true }, 'the same nonce again');
    t.same((await other.writeLogin(proof('T3', 's3', 'n1', 2_000, 1_500))).replayed, true, 'the same nonce on another node');
    t.equal(await store.countLoginSessions('alice', 'h-1'), 1, 'the replays wrote no token');
    t.equal(await store.takeLoginSession('T2', 1_500), undefined);
    t.same((await store.onlineForAccount('alice')).map((r) => r.sessionId), ['s1'], 'nor an online row');
    const gone = { ...proof('T4', 's4', 'n2', 9_000, 2_000), online: { ...online('gone', 's4'), endpointId: 'g-1' } };
    t.same(await other.writeLogin(gone), { owner: undefined, buddies: [], account: undefined, replayed: false }, 'another nonce (n1 has expired); an account that does not exist');
    t.same(await store.listEndpointBindings('gone'), [], 'claims no id');
    t.equal((await store.writeLogin(proof('T5', 's5', 'n1', 9_000, 2_000))).replayed, false, 'an expired record counts as none');
    t.same((await store.onlineForAccount('alice')).map((r) => r.sessionId), ['s5']);
  });

  void t.test('writeLogin raced by two accounts on two stores gives one owner, and only its token and row (A10)', async (t) => {
    const { store, reopen } = await subject.open(t);
    const other = await reopen(); // another node
    for (const n of ['alice', 'bob']) await store.createAccount(n, n, 'H');
    for (let i = 0; i < 20; i++) {
      const endpointId = `race-${i}`;
      const [a, b] = await Promise.all([
        store.writeLogin({ boundAt: 1, tokenHash: `A${i}`, expiresAt: 9e12, online: { ...online('alice', `sa${i}`), endpointId } }),
        other.writeLogin({ boundAt: 1, tokenHash: `B${i}`, expiresAt: 9e12, online: { ...online('bob', `sb${i}`), endpointId } }),
      ]);
      t.equal(a.owner, b.owner, `${endpointId}: one owner`);
      const loser = a.owner === 'alice' ? 'bob' : 'alice';
      t.equal(await store.countLoginSessions(loser, endpointId), 0, `${endpointId}: no token for ${loser}`);
      t.same((await store.onlineOf([loser])).filter((r) => r.endpointId === endpointId), [], `${endpointId}: no row for ${loser}`);
      t.equal(await store.countLoginSessions(a.owner ?? 'nobody', endpointId), 1);
    }
  });

  void t.test('pruneCallRecords deletes only that account\'s records started before the cut; returns how many (A15 retention)', async (t) => {
    const store = await open(t);
    const rec = (sessionId: string, account: string, startedAt: number) => ({ doorEndpoint: 'door-1', sessionId, account, callerAccount: 'door', startedAt, record: '{}' });
    await store.addCallRecord(rec('old', 'alice', 1000));
    await store.addCallRecord(rec('new', 'alice', 5000));
    await store.addCallRecord(rec('bobs', 'bob', 1000));
    t.equal(await store.pruneCallRecords('alice', 5000), 1);
    t.same((await store.callRecordsFor('alice', 10)).map((r) => r.sessionId), ['new']);
    t.same((await store.callRecordsFor('bob', 10)).map((r) => r.sessionId), ['bobs'], "another account's record is kept");
    t.equal(await store.pruneCallRecords('alice', 5000), 0);
  });
}
