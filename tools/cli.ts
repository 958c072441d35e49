#!/usr/bin/env -S node --import tsx
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runEndpointProcess } from '../runtime/endpoint-process.ts';
import { diagCli } from './diag-cli.ts';
import { audioCli } from './audio-test-cli.ts';
import { toSweepError } from '../core/errors.ts';
import { configCli } from './config-cli.ts';
import { provision } from '../runtime/provision.ts';
import { buildPhonePage, loadLab, loadServerCli } from './on-demand.ts';
import { tuneJitForAudio } from '../runtime/util/jit-tuning.ts';

const USAGE = `usage: sweep <command>
  lab [--demo] [--host 127.0.0.1] [--port 0] [--log-level warn]
                       the lab: access server, intercom, handset and phone on loopback
  endpoint --config FILE [--control stdio]
                       run one endpoint from a config file (JSON)
  server <serve|account|buddy|pubkey> …
                       the access server and its accounts (sweep server --help)
  provision --config FILE [--code CODE] [--force]
                       exchange a one-time code (or read it from stdin) for this device's
                       credential; writes access.secretsFile (0600)
  config <check|migrate|schema> …
                       validate a config file, migrate it, print its JSON Schema
  diag <watch|cmd|shell|keygen> …
                       operators: watch devices over MQTT, send signed commands, open the shell
  audio <list|test> …   installers: list ALSA devices, play a tone, record and report levels
  --version`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function readFirstLine(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (text.includes('\n') || text.length > 1024) break;
  }
  return text.split(/\r?\n/)[0] ?? '';
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'lab': {
      const { values } = parseArgs({
        args: rest,
        options: {
          demo: { type: 'boolean', default: false },
          host: { type: 'string', default: '127.0.0.1' },
          port: { type: 'string', default: '0' },
          'log-level': { type: 'string', default: 'warn' },
        },
        strict: true,
      });
      const port = Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: ${values.port} is not a port (0-65535)`);
      // The lab and the server are loaded on demand: their packages are not in the device bundle.
      const { runLab } = await loadLab();
      tuneJitForAudio();
      return runLab({ demo: values.demo, host: values.host, port, logLevel: values['log-level'], out: process.stdout });
    }
    case 'endpoint': {
      const { values } = parseArgs({
        args: rest,
        options: { config: { type: 'string' }, control: { type: 'string', default: 'none' } },
        strict: true,
      });
      if (!values.config) throw new Error('--config FILE is required');
      if (values.control !== 'none' && values.control !== 'stdio') throw new Error(`--control: "${values.control}" is not one of none, stdio`);
      tuneJitForAudio();
      return runEndpointProcess({ configFile: values.config, control: values.control });
    }
    case 'server': {
      const { serverCli } = await loadServerCli();
      return serverCli(rest, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, buildPhonePage });
    }
    case 'provision': {
      const { values } = parseArgs({
        args: rest,
        options: { config: { type: 'string' }, code: { type: 'string' }, force: { type: 'boolean', default: false } },
        strict: true,
      });
      if (!values.config) throw new Error('--config FILE is required');
      if (values.code === undefined && process.stdin.isTTY) process.stderr.write('provisioning code (from sweep server provision-code add): ');
      const code = values.code ?? (await readFirstLine(process.stdin));
      const r = await provision({ configFile: values.config, code, force: values.force });
      process.stdout.write(`provisioned ${r.account}/${r.endpointId}; password written to ${r.secretsFile} (0600)\n`);
      return 0;
    }
    case 'config':
      return configCli(rest, { stdout: process.stdout, stderr: process.stderr });
    case 'diag':
      return diagCli(rest, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
    case 'audio':
      return audioCli(rest, { stdout: process.stdout, stderr: process.stderr });
    case '--version':
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // node-datachannel keeps native threads; every object is closed by now, so leave explicitly.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`sweep: ${toSweepError(err).message}\n`);
    process.exit(2);
  },
);
