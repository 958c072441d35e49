import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../runtime/cli.ts', import.meta.url));
const PROFILE = fileURLToPath(new URL('../../firmware-config/profiles/intercom.json', import.meta.url));

function sweep(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

void t.test('sweep config check with a valid config and 0600 secrets exits 0 with one OK line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { readFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'sweep.json'), await readFile(PROFILE, 'utf8'));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ password: 'p' }), { mode: 0o600 });
  const ok = await sweep(['config', 'check', join(dir, 'sweep.json')]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^.*sweep\.json: OK \(configVersion 2, endpoint door-1, intercom, secrets file 0600\)\n$/);
  t.equal(ok.stdout.split('\n').length, 2, 'one line');
});

void t.test('sweep config check with a bad config exits 2 with one file: path: message line per problem', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'bad.json');
  await writeFile(file, JSON.stringify({ configVersion: 2, endpoint: { id: 'a', kind: 'toaster', label: 'x' }, stateDir: '/x', colour: 1 }));
  const bad = await sweep(['config', 'check', file]);
  t.equal(bad.code, 2);
  t.equal(bad.stdout, '');
  const lines = bad.stderr.trim().split('\n');
  t.ok(lines.every((l) => l.startsWith(`${file}: `)), bad.stderr);
  t.ok(lines.some((l) => /^.*: endpoint\.kind: .*"intercom"/.test(l)));
  t.ok(lines.some((l) => /^.*: access: /.test(l)));
  t.ok(lines.some((l) => /Unrecognized key: "colour"/.test(l)));
});

void t.test('sweep config migrate --write with a v1 file rewrites it at the current version', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'old.json');
  await writeFile(file, JSON.stringify({ endpoint: { id: 'a', kind: 'intercom', label: 'x' }, access: { url: 'ws://127.0.0.1:1/access', serverPublicKey: 'A'.repeat(43), username: 'a', password: 'p' }, stateDir: '/x' }));
  const before = await sweep(['config', 'check', file]);
  t.match(before.stdout, /version 1 migrated in memory/);
  const mig = await sweep(['config', 'migrate', file, '--write']);
  t.equal(mig.code, 0, mig.stderr);
  t.match(mig.stdout, /migrated 1→2/);
  const after = await sweep(['config', 'check', file]);
  t.match(after.stdout, /OK \(configVersion 2, endpoint a, intercom, inline password\)/);
  const usage = await sweep(['config', 'frobnicate']);
  t.equal(usage.code, 2);
});
