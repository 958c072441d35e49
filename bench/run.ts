/**
 * `npm run bench` runs every benchmark; `npm run bench -- NAME…` the named ones. Each prints one
 * JSON line whose `bench` field names it. Figures are for comparing within one run: this machine
 * is shared and noisy.
 */
const BENCHES: Record<string, () => Promise<{ run: () => Promise<Record<string, unknown>> }>> = {
  'link-setup': () => import('./link-setup.ts'),
  'link-memory': () => import('./link-memory.ts'),
  sweep: () => import('./sweep.ts'),
  'call-cpu': () => import('./call-cpu.ts'),
  'browser-sweep': () => import('./browser-sweep.ts'),
  'button-sweep': () => import('./button-sweep.ts'),
  ring: () => import('./ring.ts'),
  mqtt: () => import('./mqtt.ts'),
  'audio-path': () => import('./audio-path.ts'),
  field: () => import('./field.ts'),
  nat: () => import('./nat.ts'),
  cluster: () => import('./cluster.ts'),
  'cluster-10k-pg': () => import('./cluster-10k-pg.ts'),
};

async function main(): Promise<number> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !(n in BENCHES));
  if (unknown.length) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
    return 2;
  }
  let failed = 0;
  for (const name of wanted.length ? wanted : Object.keys(BENCHES)) {
    try {
      const mod = await BENCHES[name]!();
      const result = await mod.run();
      process.stdout.write(`${JSON.stringify({ bench: name, ...result })}\n`);
    } catch (err) {
      failed += 1;
      process.stdout.write(`${JSON.stringify({ bench: name, error: (err as Error).message })}\n`);
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => setTimeout(() => process.exit(code), 100),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
