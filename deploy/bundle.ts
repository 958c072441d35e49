import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_FILE = `${ROOT}dist/sweep.mjs`;
/** Chunks loaded on demand by the bundle (the lab, the server): dist/chunks/. */
export const BUNDLE_CHUNKS_DIR = `${ROOT}dist/chunks`;

/**
 * Bundles the `sweep` command line (tools/cli.ts) into dist/sweep.mjs (+ dist/chunks/): what a device
 * runs (no TypeScript loader in production). Dependencies stay in node_modules.
 */
export async function buildBundle(): Promise<string> {
  await build({
    entryPoints: { sweep: `${ROOT}tools/cli.ts` },
    outdir: `${ROOT}dist`,
    outExtension: { '.js': '.mjs' },
    // Dynamic imports become chunks, so the server's and the lab's packages are only needed when
    // those commands run: a device bundle leaves them out.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    // Packages (several native, some loading files at run time) come from node_modules as
    // installed for the target platform; the bundle holds the project's own code only.
    packages: 'external',
    logLevel: 'warning',
  });
  return BUNDLE_FILE;
}
