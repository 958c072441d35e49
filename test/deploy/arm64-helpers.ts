import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeArm64Bundle, TARBALL } from '../../deploy/make-bundle.ts';

/**
 * The arm64 sysroot is the host itself through Debian multiarch: libc6:arm64, libstdc++6:arm64 and
 * libasound2:arm64 (with its PCM plugins) in /usr/lib/aarch64-linux-gnu, the loader at
 * /lib/ld-linux-aarch64.so.1; qemu-aarch64-static runs arm64 programs with no -L. (Mixing the
 * cross toolchain's libc, -L /usr/aarch64-linux-gnu, with multiarch's ld.so.cache hangs at start.)
 */
export const ARM64_LIBS = '/usr/lib/aarch64-linux-gnu';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const qemu = which('qemu-aarch64-static');

/** Why the arm64 tests cannot run here (missing Debian packages), or false. */
export function arm64Missing(): string | false {
  const missing = [
    ...(qemu ? [] : ['qemu-aarch64-static (apt-get install qemu-user-static)']),
    ...(existsSync('/lib/ld-linux-aarch64.so.1') && existsSync(join(ARM64_LIBS, 'libc.so.6')) ? [] : ['the arm64 libc (dpkg --add-architecture arm64; apt-get install libc6:arm64)']),
    ...(existsSync(join(ARM64_LIBS, 'libstdc++.so.6')) ? [] : ['the arm64 libstdc++ (apt-get install libstdc++6:arm64)']),
    ...(which('aarch64-linux-gnu-g++') ? [] : ['the cross compiler (apt-get install g++-aarch64-linux-gnu)']),
    ...(existsSync('/usr/lib/aarch64-linux-gnu/libasound.so') ? [] : ['the arm64 ALSA library (dpkg --add-architecture arm64; apt-get install libasound2-dev:arm64)']),
    ...(which('file') ? [] : ['file (apt-get install file)']),
  ];
  return missing.length ? `needs ${missing.join(', ')}` : false;
}

export function sh(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The newest modification time of the bundle's inputs (sources, lock file, profiles, deploy). */
async function newestInput(): Promise<number> {
  let newest = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (['node_modules', 'dist', '.git', 'test', 'bench', 'docs'].includes(entry.name) || entry.name.startsWith('.')) continue;
      const p = join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) newest = Math.max(newest, (await stat(p)).mtimeMs);
    }
  };
  await walk(ROOT);
  return newest;
}

export const OFFLINE = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network/i;

/**
 * A bundle tarball built once per test run: reused while it is newer than every input (the
 * deploy tests and the arm64 call test share one build), rebuilt with `make` otherwise. Resolves
 * to a skip reason when the npm registry is unreachable and nothing is cached.
 */
export async function freshBundle(tarball: string, make: () => Promise<unknown>): Promise<{ tarball: string; buildMs: number | null } | { skip: string }> {
  const built = await stat(tarball).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built > (await newestInput())) return { tarball, buildMs: null };
  const t0 = performance.now();
  try {
    await make();
  } catch (err) {
    const message = (err as Error & { stderr?: string }).stderr ?? (err as Error).message;
    if (OFFLINE.test(message)) return { skip: `the npm registry is unreachable and nothing is cached: ${message.slice(0, 200)}` };
    throw err;
  }
  return { tarball, buildMs: Math.round(performance.now() - t0) };
}

/** dist/sweep-linux-arm64.tar.gz, built once per test run. */
export function arm64Bundle(): ReturnType<typeof freshBundle> {
  return freshBundle(TARBALL, () => makeArm64Bundle({ log: () => {} }));
}

/** Unpacks a bundle into `dir` (the tree a device has in /opt/sweep): returns `dir/<top>`. */
export async function unpack(tarball: string, dir: string, top = 'sweep'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const r = await sh('tar', ['-xzf', tarball, '-C', dir]);
  if (r.code !== 0) throw new Error(`tar -xzf ${tarball}: ${r.stderr}`);
  return join(dir, top);
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Runs an arm64 program (the bundle's bin/node) under qemu-aarch64-static. */
export function runArm64(program: string, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return sh(qemu!, [program, ...args], { timeoutMs: 180_000, ...opts });
}
