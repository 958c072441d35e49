/**
 * Commands whose code is loaded on demand: the lab and the access server need packages (SQLite,
 * Argon2, aedes) that are not in the device bundle (deploy/make-bundle.ts); esbuild puts them in
 * chunks of their own. (Kept out of cli.ts: tsx cannot parse a file with both a shebang and import().)
 */
export async function loadLab(): Promise<typeof import('../lab/lab.ts')> {
  return import('../lab/lab.ts');
}

export async function loadServerCli(): Promise<typeof import('../server/cli.ts')> {
  return import('../server/cli.ts');
}

/** Builds the phone page into phone/dist (a checkout's `sweep server serve` before the first build). */
export async function buildPhonePage(): Promise<string> {
  const { buildWeb } = await import('../phone/build.ts');
  return buildWeb();
}
