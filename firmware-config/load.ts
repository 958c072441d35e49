import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { CONFIG_VERSION, EndpointConfig, EndpointConfigFile, SecretsFile } from './endpoint-config.ts';
import { deployabilityProblems } from './deployable.ts';
import { migrateConfig, MigrationError, type JsonObject, type Migration } from './migrations.ts';
import { SweepError } from '../core/errors.ts';

/** One thing wrong with a config or secrets file: the file, the field path, what was wrong and what was allowed. */
export interface ConfigProblem {
  file: string;
  path: string;
  message: string;
}

/** A config that cannot be used; `problems` has one entry per bad field, `message` one line per problem. */
export class ConfigError extends SweepError {
  constructor(readonly problems: ConfigProblem[]) {
    super('INVALID_CONFIG', problems.map((p) => `${p.file}: ${p.path}: ${p.message}`).join('\n'));
  }
}

export interface LoadedConfig {
  config: EndpointConfig;
  /** The file as validated (after migration), secrets not resolved. */
  file: EndpointConfigFile;
  /** The version the file declared, and the migrations applied in memory to bring it to CONFIG_VERSION. */
  fromVersion: number;
  migrations: Migration[];
  /** Absolute path of the secrets file, when the config names one. */
  secretsFile?: string;
}

function problemsOf(file: string, error: z.ZodError): ConfigProblem[] {
  return error.issues.slice(0, 20).map((i) => ({ file, path: i.path.length ? i.path.join('.') : '(root)', message: i.message }));
}

async function readJson(file: string, path = '(file)'): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, path, message: `cannot read: ${(err as Error).message}` }]);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError([{ file, path: '(file)', message: `not valid JSON: ${(err as Error).message}` }]);
  }
}

/** Migrates and validates a parsed config file; throws ConfigError naming `file`. */
export function parseConfigFile(json: unknown, file: string): { file: EndpointConfigFile; fromVersion: number; migrations: Migration[] } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError([{ file, path: '(root)', message: 'expected a JSON object' }]);
  }
  let migrated;
  try {
    migrated = migrateConfig(json as JsonObject);
  } catch (err) {
    if (err instanceof MigrationError) {
      const [path = 'configVersion', ...rest] = err.message.split(': ');
      throw new ConfigError([{ file, path, message: rest.join(': ') }]);
    }
    throw err;
  }
  const result = EndpointConfigFile.safeParse(migrated.config);
  // Placeholders and example hosts first: a profile nobody edited yet is refused field by field.
  const examples = deployabilityProblems(migrated.config).map((p) => ({ file, ...p }));
  const schemaProblems = result.success ? [] : problemsOf(file, result.error).filter((p) => !examples.some((e) => e.path === p.path));
  if (examples.length || schemaProblems.length || !result.success) throw new ConfigError([...examples, ...schemaProblems]);
  return { file: result.data, fromVersion: migrated.from, migrations: migrated.applied };
}

/**
 * Reads a secrets file: it must be a regular file nobody but its owner can read (mode 0600 or
 * stricter), holding a valid SecretsFile object.
 */
export async function loadSecrets(secretsFile: string, referencedFrom: { file: string; path: string }): Promise<SecretsFile> {
  let st;
  try {
    st = await stat(secretsFile);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'does not exist (run sweep provision, or create it with mode 0600)' : `cannot be read: ${e.message}`;
    throw new ConfigError([{ ...referencedFrom, message: `${secretsFile} ${why}` }]);
  }
  if (!st.isFile()) throw new ConfigError([{ ...referencedFrom, message: `${secretsFile} is not a regular file` }]);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new ConfigError([{ file: secretsFile, path: '(file)', message: `mode ${mode} lets group or others read the secrets; allowed: 0600 or 0400 (chmod 600 ${secretsFile})` }]);
  }
  const json = await readJson(secretsFile);
  const result = SecretsFile.safeParse(json);
  if (!result.success) throw new ConfigError(problemsOf(secretsFile, result.error));
  return result.data;
}

/**
 * Reads, migrates and validates an endpoint config file and resolves its secrets. Errors name the
 * file, the field path and what was allowed. With `secrets: false` the secrets file is not read
 * (checking a config on a build host, where the secrets do not exist yet).
 */
export async function loadConfigFile(file: string, opts: { secrets?: boolean } = {}): Promise<LoadedConfig> {
  const parsed = parseConfigFile(await readJson(file), file);
  const { configVersion: _v, $schema: _s, access, ...rest } = parsed.file;
  const { secretsFile: secretsRef, password: inline, ...accessRest } = access;
  const secretsFile = secretsRef === undefined ? undefined : resolve(dirname(file), secretsRef);
  let password = inline;
  if (secretsFile !== undefined) {
    password = opts.secrets === false ? '(not read)' : (await loadSecrets(secretsFile, { file, path: 'access.secretsFile' })).password;
  }
  const config = EndpointConfig.parse({ ...rest, access: { ...accessRest, password } });
  return { config, file: parsed.file, fromVersion: parsed.fromVersion, migrations: parsed.migrations, ...(secretsFile !== undefined ? { secretsFile } : {}) };
}

/** Reads and validates an endpoint config file; errors name the file, the field path and what was allowed. */
export async function loadEndpointConfig(file: string): Promise<EndpointConfig> {
  return (await loadConfigFile(file)).config;
}

export { CONFIG_VERSION };
