import { CONFIG_VERSION } from './endpoint-config.ts';

/**
 * Config file migrations: one pure function per step, vN → vN+1, on plain JSON. A file without
 * `configVersion` is version 1 (the format before versioning). Each function returns a new object
 * and never touches its input, so a failed load leaves nothing half-changed.
 */
export type JsonObject = Record<string, unknown>;

export interface Migration {
  from: number;
  to: number;
  /** What changed, for `sweep config migrate` and the docs. */
  summary: string;
  migrate(config: JsonObject): JsonObject;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    from: 1,
    to: 2,
    summary: 'adds configVersion; access.password may move to a secrets file (access.secretsFile)',
    migrate: (c) => ({ ...c, configVersion: 2 }),
  },
];

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/** The version a parsed file declares: 1 when absent. Throws MigrationError when it is not a usable version. */
export function versionOf(config: JsonObject): number {
  const v = config.configVersion;
  if (v === undefined) return 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new MigrationError(`configVersion: ${JSON.stringify(v)} is not a version; allowed: integers 1 to ${CONFIG_VERSION}`);
  }
  if (v > CONFIG_VERSION) {
    throw new MigrationError(`configVersion: ${v} is newer than this runtime understands; allowed: 1 to ${CONFIG_VERSION} (update the runtime)`);
  }
  return v;
}

/** Brings a parsed config file up to CONFIG_VERSION; `applied` lists the steps taken. */
export function migrateConfig(config: JsonObject, migrations: readonly Migration[] = MIGRATIONS): { config: JsonObject; from: number; applied: Migration[] } {
  const from = versionOf(config);
  let current = config;
  let version = from;
  const applied: Migration[] = [];
  while (version < CONFIG_VERSION) {
    const step = migrations.find((m) => m.from === version);
    if (!step || step.to !== version + 1) throw new MigrationError(`configVersion: no migration from version ${version}`);
    current = step.migrate(current);
    version = step.to;
    applied.push(step);
  }
  return { config: current, from, applied };
}
