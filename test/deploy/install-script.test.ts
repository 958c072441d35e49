import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const INSTALL = fileURLToPath(new URL('../../deploy/install.sh', import.meta.url));
const INSTALL_SERVER = fileURLToPath(new URL('../../deploy/install-server.sh', import.meta.url));
const STAGE = fileURLToPath(new URL('../../deploy/image/stage-sweep', import.meta.url));

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }));
  });
}

const ROOTFS = fileURLToPath(new URL('../../deploy/image/build-rootfs.sh', import.meta.url));
const scripts = [INSTALL, INSTALL_SERVER, ROOTFS, `${STAGE}/prerun.sh`, `${STAGE}/00-sweep/00-run.sh`];

void t.test('deploy shell scripts parse with bash -n', async (t) => {
  for (const s of scripts) {
    const r = await run('bash', ['-n', s]);
    t.equal(r.code, 0, `${s}: ${r.out}`);
  }
});

void t.test('deploy shell scripts pass shellcheck', { skip: has('shellcheck') ? false : 'shellcheck missing (apt-get install shellcheck; .ci/run does)' }, async (t) => {
  const r = await run('shellcheck', ['-x', ...scripts]);
  t.equal(r.code, 0, r.out);
});

void t.test('install.sh and install-server.sh --help print usage; an unknown option exits 2', async (t) => {
  for (const [script, name] of [
    [INSTALL, 'install\\.sh'],
    [INSTALL_SERVER, 'install-server\\.sh'],
  ] as const) {
    const help = await run('bash', [script, '--help']);
    t.equal(help.code, 0);
    t.match(help.out, new RegExp(`usage: ${name} \\[--bundle FILE\\]`));
    const bad = await run('bash', [script, '--frobnicate']);
    t.equal(bad.code, 2);
    t.match(bad.out, /unknown option --frobnicate/);
  }
});

void t.test('install.sh on an unprovisioned device walks the installer through audio list, audio test and the panel port before provisioning', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const script = await readFile(INSTALL, 'utf8');
  const next = script.slice(script.indexOf("cat <<'NEXT'"), script.indexOf('\nNEXT\n'));
  t.ok(next.length > 0, 'a next-steps message');
  const order = ['access.serverPublicKey', 'sweep audio list', 'sweep audio test --playback', 'audio.source.device', 'panel.device.path', 'sweep config check', 'sweep-provision'].map((s) => next.indexOf(s));
  t.ok(order.every((i) => i >= 0), `every step is there (${order.join(', ')})`);
  t.same([...order].sort((a, b) => a - b), order, 'in the order an installer does them');
});

void t.test('the image stage without an SSH key refuses to build an image nobody can log in to; with one it goes on', async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const rootfs = await mkdtemp(`${tmpdir()}/sweep-rootfs-`);
  t.teardown(() => rm(rootfs, { recursive: true, force: true }));
  const prerun = (env: Record<string, string>) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      execFile('bash', [`${STAGE}/prerun.sh`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ROOTFS_DIR: rootfs, ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
      );
    });
  const none = await prerun({ ENABLE_SSH: '1' });
  t.equal(none.code, 1);
  t.match(none.out, /refusing to build an image nobody can log in to: set PUBKEY_SSH_FIRST_USER/);
  const noSsh = await prerun({ ENABLE_SSH: '0', PUBKEY_SSH_FIRST_USER: 'ssh-ed25519 AAAAC3Nza operator' });
  t.equal(noSsh.code, 1, 'a key with SSH off is no way in either');
  const notKey = await prerun({ ENABLE_SSH: '1', PUBKEY_SSH_FIRST_USER: 'hunter2' });
  t.equal(notKey.code, 1);
  t.match(notKey.out, /is not an SSH public key/);
  const ok = await prerun({ ENABLE_SSH: '1', PUBKEY_SSH_FIRST_USER: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample operator' });
  t.equal(ok.code, 0, ok.out);
  const { readFile } = await import('node:fs/promises');
  const config = await readFile(fileURLToPath(new URL('../../deploy/image/config', import.meta.url)), 'utf8');
  t.match(config, /^ENABLE_SSH=1$/m, 'the shipped config turns SSH on (key only)');
  t.match(config, /^PUBKEY_ONLY_SSH=1$/m);
});

void t.test('build-rootfs.sh without an SSH key, or with something that is not one, refuses to build', async (t) => {
  const none = await run('bash', [ROOTFS]);
  t.equal(none.code, 1);
  t.match(none.out, /refusing to build a root filesystem nobody can log in to: pass --ssh-key/);
  const notKey = await run('bash', [ROOTFS, '--ssh-key', INSTALL]);
  t.equal(notKey.code, 1);
  t.match(notKey.out, /is not an SSH public key/);
});
