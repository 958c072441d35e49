import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUNDLE_CHUNKS_DIR, BUNDLE_FILE, buildBundle, ROOT } from './bundle.ts';
import { addNodeBinary, addonsFor, DEFAULT_CACHE, exists, nodeGyp, pruneForeignBinaries, run } from './make-bundle.ts';
import { buildWeb } from '../phone/build.ts';

/**
 * The access server as a product: one tarball for the server host (linux-x64, glibc) with its own
 * Node 20, the server's native parts (argon2 and better-sqlite3 12, built for Node 20), the phone page prebuilt, the systemd unit and the installer. `sweep server …` runs
 * from it with no checkout.
 */
export const SERVER_TARGET = { os: 'linux', cpu: 'x64', libc: 'glibc', elfMachine: 0x3e /* EM_X86_64 */ } as const;
export const SERVER_TARBALL = join(ROOT, 'dist', 'sweep-server-linux-x64.tar.gz');
const STAGE_ROOT = join(ROOT, 'dist', 'stage-server-linux-x64');

/** Packages the server bundle leaves out: development and the lab only, device drivers it never opens. */
export const SERVER_OMITTED: Record<string, string> = {
  tsx: 'development only (the bundle is plain JavaScript)',
  aedes: 'lab only (embedded MQTT broker)',
  'node-pty': 'device only (the diagnostics remote shell)',
  'alsa-capture': 'device only (ALSA capture)',
};

/** Native parts the server needs; each must hold an x86-64 binary in the bundle. */
export const SERVER_NATIVE = ['argon2', 'better-sqlite3'] as const;

export interface ServerBundleResult {
  tarball: string;
  stageDir: string;
  nodeVersion: string;
  /** How each native part's binary got there. */
  natives: Record<(typeof SERVER_NATIVE)[number], NativeOrigin>;
}

type NativeOrigin = 'compiled' | 'from this checkout';

const NATIVE_BINARY: Record<(typeof SERVER_NATIVE)[number], string> = { argon2: 'argon2.node', 'better-sqlite3': 'better_sqlite3.node' };

export async function makeServerBundle(opts: { cacheDir?: string; log?: (line: string) => void } = {}): Promise<ServerBundleResult> {
  const log = opts.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE;
  if (process.arch !== 'x64' || process.platform !== 'linux') throw new Error(`the server bundle is built on linux-x64 for linux-x64; this is ${process.platform}-${process.arch}`);
  await buildBundle();
  const stage = join(STAGE_ROOT, 'sweep-server');
  await rm(STAGE_ROOT, { recursive: true, force: true });
  await mkdir(join(stage, 'dist'), { recursive: true });
  await cp(BUNDLE_FILE, join(stage, 'dist', 'sweep.mjs'));
  await cp(BUNDLE_CHUNKS_DIR, join(stage, 'dist', 'chunks'), { recursive: true });
  // The phone page, prebuilt: `server serve` finds it at phone/dist next to dist/.
  const web = await buildWeb();
  await cp(web, join(stage, 'phone', 'dist'), { recursive: true });

  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; engines?: object; dependencies: Record<string, string> };
  const dependencies = Object.fromEntries(Object.entries(pkg.dependencies).filter(([name]) => !(name in SERVER_OMITTED)));
  const sqliteRange = dependencies['better-sqlite3'];
  if (!sqliteRange || !/^\^?12\./.test(sqliteRange)) throw new Error(`better-sqlite3 must stay 12.x (13 needs Node 22); package.json says ${sqliteRange ?? 'nothing'}`);
  await writeFile(join(stage, 'package.json'), `${JSON.stringify({ name: `${pkg.name}-server`, version: pkg.version, private: true, type: 'module', engines: pkg.engines, dependencies }, null, 2)}\n`);
  await cp(join(ROOT, 'package-lock.json'), join(stage, 'package-lock.json'));
  log(`installing ${Object.keys(dependencies).join(', ')} for ${SERVER_TARGET.os}-${SERVER_TARGET.cpu}-${SERVER_TARGET.libc}`);
  await run(
    'npm',
    ['install', `--cpu=${SERVER_TARGET.cpu}`, `--os=${SERVER_TARGET.os}`, `--libc=${SERVER_TARGET.libc}`, '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier'],
    { cwd: stage, maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
  );
  await rm(join(stage, 'package-lock.json'));
  const pruned = await pruneForeignBinaries(join(stage, 'node_modules'), stage, SERVER_TARGET.elfMachine);
  log(`pruned ${pruned.length} binaries for other platforms`);

  const { version: nodeVersion, headers } = await addNodeBinary(stage, cacheDir, 'x64', log);
  const natives = {} as ServerBundleResult['natives'];
  for (const name of SERVER_NATIVE) {
    natives[name] = await addNativeBuild(name, join(stage, 'node_modules', name), NATIVE_BINARY[name], headers, log);
    if ((await addonsFor(join(stage, 'node_modules', name), SERVER_TARGET.elfMachine)).length === 0) throw new Error(`${name} has no ${SERVER_TARGET.cpu} binary in the server bundle`);
  }

  await mkdir(join(stage, 'deploy'), { recursive: true });
  await cp(join(ROOT, 'deploy', 'systemd', 'sweep-server.service'), join(stage, 'deploy', 'sweep-server.service'));
  await cp(join(ROOT, 'deploy', 'systemd', 'sweep-server-node.service'), join(stage, 'deploy', 'sweep-server-node.service'));
  await cp(join(ROOT, 'deploy', 'install-server.sh'), join(stage, 'deploy', 'install-server.sh'));
  await writeFile(
    join(stage, 'BUNDLE.txt'),
    [
      `sweep access server ${pkg.version} for ${SERVER_TARGET.os}-${SERVER_TARGET.cpu} (${SERVER_TARGET.libc}), Node ${nodeVersion}`,
      'Run: bin/node dist/sweep.mjs server --help     Install: sudo bash deploy/install-server.sh',
      'The phone page: phone/dist (served at /).',
      'Native parts (built for Node 20):',
      ...(await Promise.all(SERVER_NATIVE.map(async (name) => `  ${name} ${await versionOf(join(stage, 'node_modules', name))}: ${natives[name]}`))),
      'Left out:',
      ...Object.entries(SERVER_OMITTED).map(([name, why]) => `  ${name}: ${why}`),
      '',
    ].join('\n'),
  );
  await rm(SERVER_TARBALL, { force: true });
  await run('tar', ['-czf', SERVER_TARBALL, '--owner=0', '--group=0', '--numeric-owner', '-C', STAGE_ROOT, 'sweep-server']);
  log(`wrote ${SERVER_TARBALL} (${((await stat(SERVER_TARBALL)).size / 1e6).toFixed(1)} MB)`);
  return { tarball: SERVER_TARBALL, stageDir: stage, nodeVersion, natives };
}

async function versionOf(dir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}


/**
 * A native part built for this Node: better-sqlite3 has no prebuilt binary reachable from here,
 * and argon2's linux-x64 prebuild crashes (SIGSEGV) on load on this machine, so both are built
 * from source. This checkout's build is taken when it is the same version (npm ci compiled it for
 * Node 20, the ABI the bundled Node has); else the package is compiled with npm's node-gyp against
 * the bundled Node's headers (~1 min each). Prebuilds are removed so nothing else gets loaded.
 */
async function addNativeBuild(name: string, dir: string, binary: string, nodeHeaders: string, log: (line: string) => void): Promise<NativeOrigin> {
  const release = join(dir, 'build', 'Release');
  const local = join(ROOT, 'node_modules', name);
  const localBinary = join(local, 'build', 'Release', binary);
  await rm(join(dir, 'prebuilds'), { recursive: true, force: true });
  if ((await exists(localBinary)) && (await versionOf(local)) === (await versionOf(dir)) && process.versions.node.split('.')[0] === '20') {
    await mkdir(release, { recursive: true });
    await cp(localBinary, join(release, binary));
    log(`${name}: this checkout's build (same version, Node 20)`);
    return 'from this checkout';
  }
  log(`compiling ${name} for the bundled Node`);
  await run(process.execPath, [await nodeGyp(), 'rebuild', '--release', `--nodedir=${nodeHeaders}`, '--jobs=2'], { cwd: dir, maxBuffer: 32 * 1024 * 1024, timeout: 900_000 });
  for (const entry of await readdir(join(dir, 'build'))) if (entry !== 'Release') await rm(join(dir, 'build', entry), { recursive: true, force: true });
  for (const entry of await readdir(release)) if (entry !== binary) await rm(join(release, entry), { recursive: true, force: true });
  return 'compiled';
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await makeServerBundle();
}
