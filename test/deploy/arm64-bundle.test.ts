import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CROSS_BUILT, OMITTED } from '../../deploy/make-bundle.ts';
import { alsaConfigPath, fileCapturePcm, filePlaybackPcm } from '../../drivers/audio/alsa-devices.ts';
import { tone } from '../helpers/alsa.ts';
import { arm64Bundle, arm64Missing, cleanup, runArm64, sh, unpack } from './arm64-helpers.ts';

const PROFILE = fileURLToPath(new URL('../../firmware-config/profiles/intercom.json', import.meta.url));
const skip = arm64Missing();
// Building the bundle (when its inputs changed) and running arm64 Node under qemu take minutes, not tap's default 2.
t.setTimeout(900_000);

void t.test('make-bundle for linux-arm64 holds every driver, aarch64 binaries only, and runs --version, config check and its native addons under qemu', { skip, timeout: 900_000 }, async (t) => {
  const bundle = await arm64Bundle();
  if ('skip' in bundle) {
    t.pass('arm64 bundle', { skip: bundle.skip });
    return;
  }
  if (bundle.buildMs !== null) t.comment(`arm64 bundle built in ${(bundle.buildMs / 1000).toFixed(1)} s`);
  const dir = await mkdtemp(join(tmpdir(), 'sweep-arm64-'));
  t.teardown(() => cleanup(dir));
  const root = await unpack(bundle.tarball, dir);

  const files = await sh('sh', ['-c', 'find . -type f -exec file {} +'], { cwd: root });
  t.equal(files.code, 0, files.stderr);
  const elves = files.stdout.split('\n').filter((l) => l.includes('ELF'));
  t.ok(elves.length >= 6, `node, node-datachannel, opus, serialport, alsa-capture and node-pty binaries are there (${elves.length} ELF files)`);
  t.same(elves.filter((l) => !l.includes('ARM aarch64')), [], 'every ELF file is ARM aarch64');
  t.same(files.stdout.split('\n').filter((l) => /Mach-O|PE32/.test(l)), [], 'no darwin or windows binaries');
  for (const name of Object.keys(OMITTED)) t.notOk(existsSync(join(root, 'node_modules', name)), `${name} is left out`);
  for (const name of Object.keys(CROSS_BUILT)) t.ok(elves.some((l) => l.startsWith(`./node_modules/${name}/build/Release/`)), `${name} is cross-built for arm64`);
  const notes = await readFile(join(root, 'BUNDLE.txt'), 'utf8');
  t.notMatch(notes, /on the device|build it|built on/i, 'BUNDLE.txt asks for nothing to be built on the device');
  t.notMatch(notes, /alsa-capture: native without|node-pty: native without/);
  t.match(notes, /alsa-capture: the ALSA capture driver/);
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };

  const node = join(root, 'bin', 'node');
  const runArm = (args: string[]) => runArm64(node, args, { cwd: root });
  const version = await runArm(['dist/sweep.mjs', '--version']);
  t.equal(version.code, 0, version.stderr);
  t.equal(version.stdout, `${pkg.version}\n`, 'sweep --version under qemu-aarch64');

  // The intercom profile as an installer fills it in: only the access fields and the serial port
  // (a file stands in for /dev/ttyAMA0); audio stays as shipped (ALSA both ways).
  const cfgDir = join(dir, 'etc');
  await mkdir(cfgDir, { recursive: true });
  const profile = JSON.parse(await readFile(PROFILE, 'utf8')) as { access: object; panel: { device: object } };
  await writeFile(join(cfgDir, 'ttyAMA0'), '');
  await writeFile(
    join(cfgDir, 'sweep.json'),
    JSON.stringify({ ...profile, access: { ...profile.access, url: 'wss://access.home.arpa/access', serverPublicKey: 'A'.repeat(43) }, panel: { ...profile.panel, device: { ...profile.panel.device, path: join(cfgDir, 'ttyAMA0') } } }),
  );
  await writeFile(join(cfgDir, 'secrets.json'), JSON.stringify({ password: 'a-device-password-made-by-provisioning' }), { mode: 0o600 });
  const check = await runArm(['dist/sweep.mjs', 'config', 'check', join(cfgDir, 'sweep.json')]);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /sweep\.json: OK \(configVersion 2, endpoint door-1, intercom, secrets file 0600\)/, 'sweep config check under qemu-aarch64, driver packages found');

  const natives = await runArm([
    '--input-type=module',
    '-e',
    [
      "await import('node-datachannel'); await import('@evan/opus'); await import('serialport');",
      "const { createRequire } = await import('node:module'); const require = createRequire(process.cwd() + '/');",
      "if (typeof require('alsa-capture') !== 'function') throw new Error('alsa-capture');",
      "const pty = require('node-pty'); const p = pty.spawn('/bin/sh', ['-c', 'echo pty-ok'], {});",
      "let out = ''; p.onData((d) => { out += d; }); await new Promise((r) => p.onExit(r));",
      "console.log(out.includes('pty-ok') ? 'loaded' : 'pty said: ' + out);",
    ].join(' '),
  ]);
  t.equal(natives.code, 0, natives.stderr);
  t.equal(natives.stdout.trim(), 'loaded', 'the arm64 native modules load, node-pty runs a shell');

  // README step 5 on the device: sweep audio list / audio test, here through file-plugin devices
  // read by the arm64 ALSA library (capture) and aplay (playback).
  const alsa = join(dir, 'alsa');
  await mkdir(alsa, { recursive: true });
  const mic = join(alsa, 'mic.raw');
  await writeFile(mic, Buffer.from(tone(1000, 4).buffer));
  await writeFile(join(alsa, 'asoundrc'), [fileCapturePcm('sweep_mic', mic), filePlaybackPcm('sweep_speaker', join(alsa, 'speaker.raw')), ''].join('\n'));
  const env = { ...process.env, ALSA_CONFIG_PATH: alsaConfigPath(join(alsa, 'asoundrc')) };
  const list = await runArm64(node, ['dist/sweep.mjs', 'audio', 'list'], { cwd: root, env });
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /capture devices \(\d+\):[\s\S]*sweep_mic/, 'audio list shows the capture device');
  const test = await runArm64(node, ['dist/sweep.mjs', 'audio', 'test', '--playback', 'sweep_speaker', '--capture', 'sweep_mic', '--seconds', '1'], { cwd: root, env });
  t.equal(test.code, 0, test.stdout + test.stderr);
  t.match(test.stdout, /^playback sweep_speaker: OK, 50 frames of 1000 Hz/m, 'audio test plays');
  t.match(test.stdout, /^capture sweep_mic: OK, \d+ frames, .*dominant 1000 Hz/m, 'audio test records through the arm64 alsa-capture');

  // A bundle that lost its capture driver: one line naming it, no stack trace.
  await rm(join(root, 'node_modules', 'alsa-capture'), { recursive: true });
  const lost = await runArm64(node, ['dist/sweep.mjs', 'audio', 'test', '--no-play', '--capture', 'sweep_mic', '--seconds', '1'], { cwd: root, env });
  t.equal(lost.code, 1);
  t.equal(lost.stdout, 'capture sweep_mic: FAILED — the ALSA capture driver needs the optional package alsa-capture (built against libasound2-dev)\n');
  t.equal(lost.stderr, '', 'no stack trace');
  const refused = await runArm(['dist/sweep.mjs', 'config', 'check', join(cfgDir, 'sweep.json')]);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /sweep\.json: audio\.source\.driver: "alsa" needs the package alsa-capture, which is not installed/);
  t.equal(refused.stderr.trim().split('\n').length, 1, 'config check: one line');
});
