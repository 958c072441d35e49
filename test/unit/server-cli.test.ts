import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { serverCli, type ServerCliIo } from '../../server/cli.ts';
import type { AccountStore } from '../../server/store.ts';
import { openStore } from '../../server/store/open.ts';
import { verifyPassword } from '../../server/passwords.ts';
import { silentLogger } from '../../platform/log.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

async function run(argv: string[], stdin = '', extra: Partial<ServerCliIo> = {}, onStdout?: (s: string) => void): Promise<Run> {
  const out = sink();
  const err = sink();
  if (onStdout) out.stream.on('data', (c: Buffer) => onStdout(c.toString()));
  const code = await serverCli(argv, { stdout: out.stream, stderr: err.stream, stdin: Readable.from([stdin]), log: silentLogger(), ...extra });
  return { code, stdout: out.text(), stderr: err.text() };
}

function dataDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function readStore<T>(dir: string, fn: (s: AccountStore) => Promise<T>): Promise<T> {
  const store = await openStore({ kind: 'sqlite', dataDir: dir });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

void t.test('account add without --password-stdin prints a generated strong password once and stores its hash', async (t) => {
  const dir = dataDir(t);
  const r = await run(['account', 'add', 'alice', '--display', 'Alice A', '--data', dir]);
  t.equal(r.code, 0);
  const pw = /password \(shown once, store it now\): (\S+)/.exec(r.stdout)?.[1];
  t.ok(pw && pw.length >= 20, 'a long random password');
  const account = await readStore(dir, (s) => s.getAccount('alice'));
  t.equal(account?.displayName, 'Alice A');
  t.ok(await verifyPassword(account!.passwordHash, pw!));
  const again = await run(['account', 'add', 'bob', '--data', dir]);
  t.not(/: (\S+)$/m.exec(again.stdout)?.[1], pw, 'every account gets its own password');
});

void t.test('account add with --password-stdin uses the first stdin line and prints no password', async (t) => {
  const dir = dataDir(t);
  const r = await run(['account', 'add', 'bob', '--password-stdin', '--data', dir], 'hunter2-long\nignored\n');
  t.equal(r.code, 0);
  t.notMatch(r.stdout, /hunter2/);
  t.notMatch(r.stdout, /password/);
  t.ok(await verifyPassword((await readStore(dir, (s) => s.getAccount('bob')))!.passwordHash, 'hunter2-long'));
});

void t.test('account passwd with --password-stdin replaces the password; for an unknown account exits 1 naming it', async (t) => {
  const dir = dataDir(t);
  await run(['account', 'add', 'bob', '--password-stdin', '--data', dir], 'old-password');
  t.equal((await run(['account', 'passwd', 'bob', '--password-stdin', '--data', dir], 'new-password')).code, 0);
  t.ok(await verifyPassword((await readStore(dir, (s) => s.getAccount('bob')))!.passwordHash, 'new-password'));
  const r = await run(['account', 'passwd', 'zed', '--password-stdin', '--data', dir], 'x');
  t.equal(r.code, 1);
  t.match(r.stderr, /unknown account "zed"/);
  const noStdin = await run(['account', 'passwd', 'bob', '--data', dir]);
  t.equal(noStdin.code, 2);
  t.match(noStdin.stderr, /needs --password-stdin/);
});

void t.test('account add with an existing or invalid name exits 1 naming it', async (t) => {
  const dir = dataDir(t);
  await run(['account', 'add', 'alice', '--data', dir]);
  const dup = await run(['account', 'add', 'alice', '--data', dir]);
  t.equal(dup.code, 1);
  t.match(dup.stderr, /account "alice" already exists/);
  const bad = await run(['account', 'add', 'Bad Name', '--data', dir]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /NAME: "Bad Name" is not an account name/);
  const empty = await run(['account', 'add', 'carol', '--password-stdin', '--data', dir], '');
  t.equal(empty.code, 2);
  t.match(empty.stderr, /--password-stdin: stdin held no password/);
});

void t.test('account list and buddy add/remove print and change the store', async (t) => {
  const dir = dataDir(t);
  t.match((await run(['account', 'list', '--data', dir])).stdout, /\(no accounts\)/);
  await run(['account', 'add', 'alice', '--data', dir]);
  await run(['account', 'add', 'bob', '--display', 'Bob B', '--data', dir]);
  const list = await run(['account', 'list', '--data', dir]);
  t.match(list.stdout, /^alice\talice\t\d{4}-.*\nbob\tBob B\t/);
  t.notMatch(list.stdout, /argon2/);
  t.equal((await run(['buddy', 'add', 'alice', 'bob', '--data', dir])).code, 0);
  t.same(await readStore(dir, async (s) => (await s.buddiesOf('bob')).map((b) => b.name)), ['alice']);
  const unknown = await run(['buddy', 'add', 'alice', 'zed', '--data', dir]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /unknown account "zed"/);
  t.match((await run(['buddy', 'remove', 'bob', 'alice', '--data', dir])).stdout, /no longer buddies/);
  t.match((await run(['buddy', 'remove', 'bob', 'alice', '--data', dir])).stdout, /were not buddies/);
});

void t.test('pubkey creates the server key once (0600) and prints the same key again', async (t) => {
  const dir = dataDir(t);
  const a = await run(['pubkey', '--data', dir]);
  t.match(a.stdout, /^[A-Za-z0-9_-]{43}\n$/);
  t.equal((await run(['pubkey', '--data', dir])).stdout, a.stdout);
  t.equal(statSync(join(dir, 'server-key.pem')).mode & 0o777, 0o600);
});

void t.test('bad arguments exit 2 with a usage error naming the flag or argument', async (t) => {
  const dir = dataDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['account', 'list'], /--data DIR is required/],
    [['account', 'list', '--bogus', '--data', dir], /unknown option --bogus/],
    [['account', 'list', '--port', '1', '--data', dir], /--port is not an option of "account list"/],
    [['serve', '--port', 'http', '--data', dir], /--port: "http" is not a port number/],
    [['serve', '--port', '70000', '--data', dir], /--port: "70000"/],
    [['serve', '--trusted-proxy', '10.0.0.1,proxy.lan', '--data', dir], /--trusted-proxy: "proxy.lan" is not an IP address or CIDR range/],
    [['account', 'list', '--trusted-proxy', '10.0.0.1', '--data', dir], /--trusted-proxy is not an option of "account list"/],
    [['account', 'add', '--data', dir], /"account add" takes NAME, got none/],
    [['buddy', 'add', 'a', '--data', dir], /"buddy add" takes A B/],
    [['frobnicate', '--data', dir], /unknown command "frobnicate"/],
    [['serve', '--push-subject', 'http://me.example', '--data', dir], /--push-subject: "http:\/\/me.example" is neither mailto:ADDRESS nor an https:\/\/ URL/],
    [['serve', '--history-days', '0', '--data', dir], /--history-days: "0" is not a whole number of days from 1 to 36500/],
    [['serve', '--history-days', '2.5', '--data', dir], /--history-days: "2.5"/],
    [[], /usage: sweep server/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr + r.stdout, message);
  }
  t.equal((await run(['--help'])).code, 0);
});

void t.test('serve prints url and public key, answers /health, and stops cleanly when told', async (t) => {
  const dir = dataDir(t);
  // Its own page: the checkout's phone/dist exists only once something built it.
  const web = dataDir(t);
  writeFileSync(join(web, 'index.html'), '<!doctype html>');
  const stop = new AbortController();
  let printed = '';
  let seen!: () => void;
  const listening = new Promise<void>((resolve) => (seen = resolve));
  const done = run(['serve', '--port', '0', '--trusted-proxy', '10.0.0.2', '--trusted-proxy', '192.168.0.0/16', '--data', dir, '--web', web], '', { signal: stop.signal }, (s) => {
    printed += s;
    if (/public key: /.test(printed)) seen();
  });
  t.teardown(() => stop.abort());
  await listening;
  const url = /listening on (ws:\/\/127\.0\.0\.1:\d+\/access)/.exec(printed)?.[1];
  t.ok(url, 'prints a loopback url');
  t.match(printed, /public key: [A-Za-z0-9_-]{43}\n/);
  const health = await fetch(url!.replace('ws:', 'http:').replace('/access', '/health'));
  t.same(await health.json(), { ok: true });
  stop.abort();
  const r = await done;
  t.equal(r.code, 0);
  t.match(r.stdout, /access server stopped/);
});

void t.test('provision-code add for an endpoint id bound to another account exits 1 naming the owner (A10)', async (t) => {
  const dir = dataDir(t);
  await run(['account', 'add', 'alice', '--data', dir]);
  await run(['account', 'add', 'bob', '--data', dir]);
  await readStore(dir, (s) => s.claimEndpoint('handset-1', 'alice'));
  const r = await run(['provision-code', 'add', 'bob', '--endpoint', 'handset-1', '--data', dir]);
  t.equal(r.code, 1);
  t.match(r.stderr, /endpoint "handset-1" belongs to account "alice"; release it first \(sweep server endpoint release handset-1\) \(FORBIDDEN\)/);
  t.equal((await run(['provision-code', 'add', 'alice', '--endpoint', 'handset-1', '--data', dir])).code, 0, 'the owner may provision it');
  t.match((await run(['endpoint', 'owner', 'nobody-1', '--data', dir])).stdout, /nobody-1 is not bound to an account/);
});

void t.test('serve --turn: the secret comes from a file, bad ICE flags stop the server with the flag named (A13)', async (t) => {
  const dir = dataDir(t);
  const noSecret = await run(['serve', '--data', dir, '--turn', 'turn:turn.example.org:3478']);
  t.equal(noSecret.code, 2);
  t.match(noSecret.stderr, /--turn needs --turn-secret-file/);
  const missing = await run(['serve', '--data', dir, '--turn', 'turn:turn.example.org', '--turn-secret-file', join(dir, 'nope')]);
  t.match(missing.stderr, /--turn-secret-file: cannot read .*nope \(ENOENT\)/);
  const badUrl = await run(['serve', '--data', dir, '--stun', 'stun.example.org']);
  t.match(badUrl.stderr, /--stun: "stun.example.org" is not a STUN or TURN URL/);
  const relayAlone = await run(['serve', '--data', dir, '--relay-only']);
  t.match(relayAlone.stderr, /need --turn/);
  const ttl = await run(['serve', '--data', dir, '--stun', 'stun:s.example', '--turn-ttl', 'soon']);
  t.match(ttl.stderr, /need --turn|--turn-ttl/);
});
