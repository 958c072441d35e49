import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * Bundles the smartphone client (server/web/src) for browsers into server/web/dist, which the
 * access server serves. The shared catalogue (runtime/protocol) is bundled in; `platform:
 * 'browser'` makes any Node import in it a build error.
 */
export async function buildWeb(opts: { minify?: boolean } = {}): Promise<string> {
  const src = fileURLToPath(new URL('./src/', import.meta.url));
  const dist = fileURLToPath(new URL('./dist/', import.meta.url));
  await mkdir(dist, { recursive: true });
  await build({
    entryPoints: [`${src}app.ts`],
    outfile: `${dist}app.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'safari16', 'firefox115'],
    minify: opts.minify ?? true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  await copyFile(`${src}index.html`, `${dist}index.html`);
  await copyFile(`${src}app.css`, `${dist}app.css`);
  return dist;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildWeb().then(
    (dist) => console.log(`web client built into ${dist}`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
