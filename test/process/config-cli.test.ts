import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceProblems, type MachineProbe } from '../../runtime/diagnostics/config-check.ts';

const CLI = fileURLToPath(new URL('../../tools/cli.ts', import.meta.url));
const PROFILES = ['intercom', 'deskphone'] as const;
const profilePath = (name: (typeof PROFILES)[number]): string => fileURLToPath(new URL(`../../firmware-config/profiles/${name}.json`, import.meta.url));

type Json = Record<string, unknown> & { access?: Record<string, unknown>; panel?: Record<string, unknown> };

/**
 * A shipped profile as an installer fills it in (README step 5): endpoint, access fields and the
 * panel's serial port (here a file standing in for it); audio untouched.
 */
async function filledProfile(name: (typeof PROFILES)[number], dir: string): Promise<Json> {
  const profile = JSON.parse(await readFile(profilePath(name), 'utf8')) as Json;
  const serial = join(dir, 'ttyAMA0');
  await writeFile(serial, '');
  return {
    ...profile,
    access: { ...profile.access, url: 'wss://access.home.arpa/access', serverPublicKey: 'A'.repeat(43) },
    stateDir: join(dir, 'state'),
    panel: { ...profile.panel, device: { ...(profile.panel!.device as object), path: serial } },
  };
}

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
  await writeFile(join(dir, 'sweep.json'), JSON.stringify(await filledProfile('intercom', dir)));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ password: 'p' }), { mode: 0o600 });
  const ok = await sweep(['config', 'check', join(dir, 'sweep.json')]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^.*sweep\.json: OK \(configVersion 2, endpoint door-1, intercom, secrets file 0600\)\n$/);
  t.equal(ok.stdout.split('\n').length, 2, 'one line');
  t.equal(ok.stderr, '', 'ALSA both ways and a serial panel: no simulated driver to warn about');
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

void t.test('sweep config check with the shipped profiles unedited refuses each placeholder and example host, naming the field', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const name of PROFILES) {
    const file = join(dir, `${name}.json`);
    await writeFile(file, await readFile(profilePath(name), 'utf8'));
    const r = await sweep(['config', 'check', '--no-secrets', '--no-device', file]);
    t.equal(r.code, 2, `${name}: refused`);
    t.equal(r.stdout, '');
    t.match(r.stderr, new RegExp(`^${file}: access\\.url: access\\.example\\.invalid is an example host`, 'm'), `${name}: the example host`);
    t.match(r.stderr, new RegExp(`^${file}: access\\.serverPublicKey: "REPLACE_with_sweep_server_pubkey_output_xxx" is a placeholder`, 'm'), `${name}: the placeholder key`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

void t.test('sweep config check with a bad address, an address not on this machine, an out-of-range port or an example broker names each field', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ password: 'p' }), { mode: 0o600 });
  const base = await filledProfile('intercom', dir);
  const cases: Array<[string, Json, RegExp]> = [
    ['bindAddress 999.1.1.1', { network: { bindAddress: '999.1.1.1' } }, /: network\.bindAddress: an IPv4 or IPv6 address/],
    ['bindAddress not on this machine', { network: { bindAddress: '10.254.253.252' } }, /: network\.bindAddress: 10\.254\.253\.252 is not an address of this machine; allowed: 0\.0\.0\.0 \(every address\) or one of .*127\.0\.0\.1/],
    ['access.url port 70000', { access: { ...base.access, url: 'wss://access.home.arpa:70000/access' } }, /: access\.url: port 70000 is out of range; allowed: 1-65535/],
    ['access.url port 0', { access: { ...base.access, url: 'ws://192.168.1.20:0/access' } }, /: access\.url: port 0 is out of range; allowed: 1-65535/],
    ['access.url documentation address', { access: { ...base.access, url: 'ws://192.0.2.10:8443/access' } }, /: access\.url: 192\.0\.2\.10 is an example host/],
    ['diagnostics.url example.com', { diagnostics: { url: 'mqtts://broker.example.com:8883', deviceId: 'door-1' } }, /: diagnostics\.url: broker\.example\.com is an example host/],
  ];
  for (const [what, over, expected] of cases) {
    const file = join(dir, 'sweep.json');
    await writeFile(file, JSON.stringify({ ...base, ...over }));
    const r = await sweep(['config', 'check', file]);
    t.equal(r.code, 2, `${what}: refused (${r.stdout.trim()})`);
    t.match(r.stderr, expected, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
  }
});

void t.test('sweep config check with a missing serial port names panel.device.path in one line; --no-device skips the machine checks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const base = await filledProfile('deskphone', dir);
  const file = join(dir, 'sweep.json');
  await writeFile(file, JSON.stringify({ ...base, panel: { ...base.panel, device: { driver: 'serial', path: join(dir, 'ttyUSB9') } } }));
  const r = await sweep(['config', 'check', '--no-secrets', file]);
  t.equal(r.code, 2);
  t.equal(r.stderr, `${file}: panel.device.path: ${join(dir, 'ttyUSB9')} does not exist; allowed: the panel's serial port (ls /dev/ttyAMA* /dev/ttyUSB* /dev/serial/by-id/), or remove "panel"\n`);
  const offline = await sweep(['config', 'check', '--no-secrets', '--no-device', file]);
  t.equal(offline.code, 0, offline.stderr);
});

void t.test('deviceProblems with alsa-capture missing or aplay absent names the audio driver fields', async (t) => {
  const probe: MachineProbe = {
    addresses: () => ['127.0.0.1'],
    exists: async () => true,
    loadPackage: async (name) => {
      throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
    },
    onPath: async () => false,
  };
  const problems = await deviceProblems({ network: { bindAddress: '127.0.0.1' }, audio: { source: { driver: 'alsa' }, sink: { driver: 'alsa' } } }, probe);
  t.same(
    problems.map((p) => p.field),
    ['audio.source.driver', 'audio.sink.driver'],
  );
  t.match(problems[0]!.message, /needs the package alsa-capture, which is not installed/);
  t.match(problems[1]!.message, /aplay, which is not on PATH \(apt-get install alsa-utils\)/);
  t.same(await deviceProblems({ network: { bindAddress: '0.0.0.0' }, audio: { source: { driver: 'simulated' }, sink: { driver: 'simulated' } } }, probe), [], 'simulated drivers need nothing');
});

void t.test('sweep endpoint with an unedited profile or a missing serial port exits 2 before login, one line per problem, no stack trace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ password: 'p' }), { mode: 0o600 });
  const raw = join(dir, 'raw.json');
  await writeFile(raw, await readFile(profilePath('intercom'), 'utf8'));
  const r1 = await sweep(['endpoint', '--config', raw]);
  t.equal(r1.code, 2);
  t.match(r1.stderr, /access\.url: access\.example\.invalid is an example host/);
  t.match(r1.stderr, /access\.serverPublicKey: "REPLACE_/);
  t.notMatch(r1.stderr, /\n\s+at /, 'no stack trace');

  const base = await filledProfile('intercom', dir);
  const noPort = join(dir, 'noport.json');
  await writeFile(noPort, JSON.stringify({ ...base, access: { ...base.access, url: 'ws://127.0.0.1:9/access' }, network: { bindAddress: '127.0.0.1' }, panel: { ...base.panel, device: { driver: 'serial', path: '/dev/ttyAMA9-none' } } }));
  const r2 = await sweep(['endpoint', '--config', noPort]);
  t.equal(r2.code, 2);
  t.equal(r2.stderr, `sweep: ${noPort}: panel.device.path: /dev/ttyAMA9-none does not exist; allowed: the panel's serial port (ls /dev/ttyAMA* /dev/ttyUSB* /dev/serial/by-id/), or remove "panel"\n`, 'one line, before any login attempt');
});

void t.test('sweep endpoint with simulated drivers says so loudly at start', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cfgcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ password: 'p' }), { mode: 0o600 });
  const base = await filledProfile('intercom', dir);
  const file = join(dir, 'sim.json');
  await writeFile(
    file,
    JSON.stringify({ ...base, access: { ...base.access, url: 'ws://127.0.0.1:9/access' }, network: { bindAddress: '127.0.0.1' }, audio: { source: { driver: 'simulated' }, sink: { driver: 'simulated' } }, panel: { ...base.panel, device: { driver: 'simulated' } } }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'endpoint', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no warning within 30 s: ${stderr}`)), 30_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/login to the access server failed/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  for (const field of ['audio.source.driver', 'audio.sink.driver', 'panel.device.driver']) t.match(stderr, new RegExp(`sweep: SIMULATED DRIVER \\(door-1\\): ${field.replace(/\./g, '\\.')} is "simulated"`), field);
  t.ok(stderr.indexOf('SIMULATED DRIVER') < stderr.indexOf('login to the access server'), 'said before the first login attempt');
});

void t.test('deployabilityProblems refuses placeholders wherever they are, but not a label that merely has an ellipsis', async (t) => {
  const { deployabilityProblems } = await import('../../firmware-config/deployable.ts');
  const problems = deployabilityProblems({
    endpoint: { id: 'door-1', label: 'Front door… east wing' },
    access: { url: 'wss://access.home.arpa/access', serverPublicKey: '<output of: sweep server pubkey>', username: 'CHANGEME' },
    panel: { buttons: [{ button: 'bell', action: 'call', to: 'REPLACE_me' }] },
  });
  t.same(
    problems.map((p) => p.path),
    ['access.serverPublicKey', 'access.username', 'panel.buttons.0.to'],
  );
});
