import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_FILE = `${ROOT}dist/sweep.mjs`;

/**
 * Bundles the runtime's command line into dist/sweep.mjs: what a device runs (no TypeScript
 * loader in production). Native modules and packages that load files at run time stay external
 * and come from node_modules.
 */
export async function buildBundle(): Promise<string> {
  await build({
    entryPoints: [`${ROOT}runtime/cli.ts`],
    outfile: BUNDLE_FILE,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    external: ['node-datachannel', '@evan/opus', 'better-sqlite3', 'argon2', 'pino', 'ws', 'bufferutil', 'utf-8-validate'],
    // CommonJS dependencies inside an ES module bundle need `require`.
    banner: { js: "import { createRequire as __sweepRequire } from 'node:module'; const require = __sweepRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  return BUNDLE_FILE;
}
