import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from '../firmware-config/load.ts';
import { migrateConfig, MigrationError, type JsonObject } from '../firmware-config/migrations.ts';
import { endpointConfigJsonSchemaText } from '../firmware-config/json-schema.ts';
import { deviceProblems, simulatedDrivers } from '../runtime/diagnostics/config-check.ts';
import { writeFileAtomic } from '../firmware-config/atomic-write.ts';

export const CONFIG_USAGE = `usage: sweep config <command>
  check FILE [--no-secrets] [--no-device]
                              validate a config file (and its secrets file unless --no-secrets) and,
                              unless --no-device (checking on a build host), that this machine has
                              what it names: its bind address, driver packages, the serial port;
                              exit 0 with one OK line, or exit 2 with one "file: path: problem" line each
  migrate FILE [--write]      print the file migrated to the current configVersion (--write: replace it atomically)
  schema                      print the JSON Schema of the config file
`;

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** `sweep config …`: 0 ok, 2 invalid config or bad usage. */
export async function configCli(argv: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { 'no-secrets': { type: 'boolean' }, 'no-device': { type: 'boolean' }, write: { type: 'boolean' } }, strict: true, allowPositionals: true });
  } catch (err) {
    io.stderr.write(`sweep config: ${(err as Error).message}\n${CONFIG_USAGE}`);
    return 2;
  }
  const [command, file, ...extra] = parsed.positionals;
  const needsFile = command === 'check' || command === 'migrate';
  if (!command || !['check', 'migrate', 'schema'].includes(command) || (needsFile && (!file || extra.length)) || (!needsFile && file)) {
    io.stderr.write(`sweep config: ${command ? `bad usage of "${command}"` : 'no command'}\n${CONFIG_USAGE}`);
    return 2;
  }
  try {
    if (command === 'schema') {
      io.stdout.write(endpointConfigJsonSchemaText());
      return 0;
    }
    if (command === 'check') {
      const loaded = await loadConfigFile(file!, { secrets: !parsed.values['no-secrets'] });
      if (!parsed.values['no-device']) {
        const problems = await deviceProblems(loaded.config);
        if (problems.length) throw new ConfigError(problems.map((p) => ({ file: file!, path: p.field, message: p.message })));
      }
      for (const line of simulatedDrivers(loaded.config)) io.stderr.write(`${file}: warning: ${line}\n`);
      const migrated = loaded.migrations.length ? `, version ${loaded.fromVersion} migrated in memory (sweep config migrate --write)` : '';
      const secrets = loaded.secretsFile ? (parsed.values['no-secrets'] ? ', secrets not read' : ', secrets file 0600') : ', inline password';
      io.stdout.write(`${file}: OK (configVersion ${loaded.file.configVersion}${migrated}, endpoint ${loaded.config.endpoint.id}, ${loaded.config.endpoint.kind}${secrets})\n`);
      return 0;
    }
    // migrate: validate the result first; never write a file that would not load.
    await loadConfigFile(file!, { secrets: false });
    const json = JSON.parse(await readFile(file!, 'utf8')) as JsonObject;
    const { config, applied } = migrateConfig(json);
    const text = `${JSON.stringify(config, null, 2)}\n`;
    if (!parsed.values.write) {
      io.stdout.write(text);
    } else if (applied.length === 0) {
      io.stdout.write(`${file}: already at configVersion ${String(config.configVersion)}\n`);
    } else {
      await writeFileAtomic(file!, text, (await stat(file!)).mode & 0o777);
      io.stdout.write(`${file}: migrated ${applied.map((m) => `${m.from}→${m.to} (${m.summary})`).join(', ')}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`${err.message}\n`);
      return 2;
    }
    if (err instanceof MigrationError) {
      io.stderr.write(`${file}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
