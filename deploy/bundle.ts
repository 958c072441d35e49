import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_FILE = `${ROOT}dist/sweep.mjs`;

/**
 * Bundles the runtime's command line into dist/sweep.mjs: what a device runs (no TypeScript
 * loader in production). Dependencies stay in node_modules.
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
    // Packages (several native, some loading files at run time) come from node_modules as
    // installed for the target platform; the bundle holds the project's own code only.
    packages: 'external',
    logLevel: 'warning',
  });
  return BUNDLE_FILE;
}
