import { build } from 'esbuild';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { iconPng } from './icons.ts';
import { fileURLToPath } from 'node:url';

/**
 * Bundles the smartphone client (phone/src) for browsers into phone/dist, which the
 * access server serves. The shared catalogue (core/protocol) is bundled in; `platform:
 * 'browser'` makes any Node import in it a build error.
 */
export async function buildWeb(opts: { minify?: boolean } = {}): Promise<string> {
  const src = fileURLToPath(new URL('./src/', import.meta.url));
  const dist = fileURLToPath(new URL('./dist/', import.meta.url));
  await mkdir(dist, { recursive: true });
  await build({
    // A16: the service worker is its own bundle, served from the page's directory (its scope).
    entryPoints: { app: `${src}app.ts`, sw: `${src}sw.ts` },
    outdir: dist,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'safari16', 'firefox115'],
    minify: opts.minify ?? true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [
      {
        // zod re-exports every locale as `z.locales` (260 kB); its English messages come from
        // locales/en.js, imported on their own, so the index is left out of the phone's bundle.
        name: 'zod-without-locale-index',
        setup(b) {
          b.onResolve({ filter: /locales\/index\.js$/ }, (args) => (args.importer.includes('/zod/') ? { path: 'zod-locales', namespace: 'stub' } : undefined));
          b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'export {};', loader: 'js' }));
        },
      },
    ],
  });
  await copyFile(`${src}index.html`, `${dist}index.html`);
  await copyFile(`${src}app.css`, `${dist}app.css`);
  await copyFile(`${src}manifest.webmanifest`, `${dist}manifest.webmanifest`);
  for (const size of [192, 512]) await writeFile(`${dist}icon-${size}.png`, iconPng(size));
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
