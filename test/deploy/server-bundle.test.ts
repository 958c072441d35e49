import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findWebRoot } from '../../server/cli.ts';
import { makeServerBundle, SERVER_NATIVE, SERVER_OMITTED, SERVER_TARBALL } from '../../deploy/make-server-bundle.ts';
import { cleanup, freshBundle, sh, unpack, which } from './arm64-helpers.ts';

const CLI = fileURLToPath(new URL('../../tools/cli.ts', import.meta.url));
const UNIT = fileURLToPath(new URL('../../deploy/systemd/sweep-server.service', import.meta.url));
// Building the server bundle (when its inputs changed) takes a minute or two on a loaded machine.
t.setTimeout(900_000);

function get(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    })
      .on('error', reject)
      .end();
  });
}

/** `sweep server serve --port 0` as a child process; resolves with its URL once it listens. */
async function serve(t: Test, cmd: string, args: string[], data: string, cwd: string): Promise<string> {
  const child = spawn(cmd, [...args, 'server', 'serve', '--data', data, '--port', '0', '--host', '127.0.0.1'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen within 60 s: ${out} ${err}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const url = /listening on (\S+)/.exec(out)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve(url.replace(/^ws/, 'http').replace(/\/access$/, ''));
      }
    });
    void exited.then(() => reject(new Error(`server exited: ${out} ${err}`)));
  });
}

void t.test('findWebRoot with --web naming a directory without index.html refuses, naming --web and what is allowed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-web-'));
  t.teardown(() => cleanup(dir));
  await t.rejects(findWebRoot(dir, { stderr: process.stderr }), /--web: .* holds no index\.html; allowed: a directory with the built phone page/);
});

void t.test('findWebRoot in a checkout without a built page builds it instead of answering 404', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-web-'));
  t.teardown(() => cleanup(dir));
  const here = join(dir, 'server');
  await mkdir(join(dir, 'phone', 'src'), { recursive: true });
  await writeFile(join(dir, 'phone', 'src', 'index.html'), '<!doctype html>');
  await t.rejects(findWebRoot(undefined, { stderr: process.stderr }, { here }), /the phone page is not in .*in a checkout run npm run build:web/, 'the server alone cannot build the page');
  let built = 0;
  const said: string[] = [];
  const root = await findWebRoot(undefined, { stderr: { write: (s: string) => said.push(s) } as unknown as NodeJS.WritableStream }, {
    here,
    build: async () => {
      built++;
      return join(dir, 'phone', 'dist');
    },
  });
  t.equal(built, 1, 'the page was built');
  t.equal(root, join(dir, 'phone', 'dist'));
  t.match(said.join(''), /the phone page is not built yet; building it into .*npm run build:web/);
});

void t.test('findWebRoot in a server bundle finds phone/dist from dist/chunks; with neither it says how', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-web-'));
  t.teardown(() => cleanup(dir));
  const chunks = join(dir, 'dist', 'chunks');
  await mkdir(chunks, { recursive: true });
  await t.rejects(findWebRoot(undefined, { stderr: process.stderr }, { here: chunks }), /the phone page is not in .*; pass --web DIR/);
  await mkdir(join(dir, 'phone', 'dist'), { recursive: true });
  await writeFile(join(dir, 'phone', 'dist', 'index.html'), '<!doctype html>');
  t.equal(await findWebRoot(undefined, { stderr: process.stderr }, { here: chunks }), join(dir, 'phone', 'dist'));
});

void t.test('sweep server serve from a checkout answers / with the phone page, not 404', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-srv-'));
  t.teardown(() => cleanup(dir));
  const base = await serve(t, process.execPath, ['--import', 'tsx', CLI], join(dir, 'data'), fileURLToPath(new URL('../../', import.meta.url)));
  const page = await get(`${base}/`);
  t.equal(page.status, 200, 'GET /');
  t.match(page.type, /text\/html/);
  t.match(page.body, /<script[^>]+app\.js/);
});

void t.test('the server bundle installs nothing from a checkout: account, buddy, pubkey and provision-code commands, and serve answers / with the phone page', async (t) => {
  const bundle = await freshBundle(SERVER_TARBALL, () => makeServerBundle({ log: () => {} }));
  if ('skip' in bundle) {
    t.pass('server bundle', { skip: bundle.skip });
    return;
  }
  if (bundle.buildMs !== null) t.comment(`server bundle built in ${(bundle.buildMs / 1000).toFixed(1)} s`);
  const dir = await mkdtemp(join(tmpdir(), 'sweep-server-bundle-'));
  t.teardown(() => cleanup(dir));
  const root = await unpack(bundle.tarball, dir, 'sweep-server');

  const files = await sh('sh', ['-c', 'find . -type f -exec file {} +'], { cwd: root });
  const elves = files.stdout.split('\n').filter((l) => l.includes('ELF'));
  t.same(elves.filter((l) => !l.includes('x86-64')), [], 'every ELF file is x86-64');
  for (const name of SERVER_NATIVE) t.ok(elves.some((l) => l.startsWith(`./node_modules/${name}/`)), `${name} has its binary`);
  for (const name of Object.keys(SERVER_OMITTED)) t.notOk(existsSync(join(root, 'node_modules', name)), `${name} is left out`);
  const sqlite = JSON.parse(await readFile(join(root, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as { version: string };
  t.match(sqlite.version, /^12\./, 'better-sqlite3 stays 12.x');
  t.ok(existsSync(join(root, 'phone', 'dist', 'index.html')), 'the phone page is prebuilt');
  t.ok(existsSync(join(root, 'deploy', 'sweep-server.service')) && existsSync(join(root, 'deploy', 'install-server.sh')), 'unit and installer are inside');

  // Run from a directory that is not a checkout, with the bundle's own Node.
  const work = join(dir, 'elsewhere');
  await mkdir(work);
  const data = join(work, 'data');
  const node = join(root, 'bin', 'node');
  const sweep = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(node, [join(root, 'dist', 'sweep.mjs'), 'server', ...args, '--data', data], { cwd: work, env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdin.end(input ?? '');
      child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  const add = await sweep(['account', 'add', 'door']);
  t.equal(add.code, 0, add.stderr);
  t.match(add.stdout, /created account door\npassword \(shown once/);
  t.equal((await sweep(['account', 'add', 'alice', '--password-stdin'], 'a long test passphrase\n')).code, 0, 'argon2 hashes a password');
  t.match((await sweep(['buddy', 'add', 'door', 'alice'])).stdout, /door and alice are buddies/);
  const pub = await sweep(['pubkey']);
  t.match(pub.stdout, /^[A-Za-z0-9_-]{43}\n$/, 'pubkey');
  t.match((await sweep(['provision-code', 'add', 'door', '--endpoint', 'door-1'])).stdout, /provisioning code for door\/door-1/);
  t.match((await sweep(['account', 'list'])).stdout, /alice\b[\s\S]*door\b/, 'better-sqlite3 keeps them');

  const http = await serve(t, node, [join(root, 'dist', 'sweep.mjs')], data, work);
  const page = await get(`${http}/`);
  t.equal(page.status, 200, 'GET / is the phone page');
  t.match(page.type, /text\/html/);
  t.match(page.body, /<script[^>]+app\.js/);
  t.equal((await get(`${http}/app.js`)).status, 200, 'its script');
});

void t.test('deploy/systemd/sweep-server.service is sandboxed and passes systemd-analyze verify', async (t) => {
  const text = await readFile(UNIT, 'utf8');
  for (const line of ['User=sweep-server', 'ProtectSystem=strict', 'PrivateDevices=yes', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'StateDirectory=sweep-server', 'ReadWritePaths=/var/lib/sweep-server', 'SystemCallFilter=@system-service']) {
    t.ok(text.split('\n').includes(line), line);
  }
  t.match(text, /^ExecStart=\/opt\/sweep-server\/bin\/node \/opt\/sweep-server\/dist\/sweep\.mjs server serve --data \/var\/lib\/sweep-server /m);
  const analyze = which('systemd-analyze');
  if (!analyze) {
    t.pass('verify', { skip: 'systemd-analyze missing (apt-get install systemd; .ci/run does)' });
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'sweep-unit-'));
  t.teardown(() => cleanup(dir));
  const copy = join(dir, 'sweep-server.service');
  await writeFile(copy, text.replaceAll('/opt/sweep-server/bin/node', process.execPath).replace('EnvironmentFile=/etc/sweep-server/server.env', `EnvironmentFile=${join(dir, 'server.env')}`));
  await writeFile(join(dir, 'server.env'), 'SWEEP_SERVER_HOST=127.0.0.1\nSWEEP_SERVER_PORT=8443\nSWEEP_SERVER_ARGS="--trusted-proxy 127.0.0.1"\n');
  const r = await sh(analyze, ['verify', copy]);
  t.equal(r.code, 0, r.stdout + r.stderr);
});
