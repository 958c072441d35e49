import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { rawPublicKey } from '../platform/token.ts';
import { SweepError, toSweepError } from '../core/errors.ts';
import { OperatorClient, readOperatorKey } from './operator.ts';
import { StateTracker, readState } from '../runtime/diagnostics/state.ts';
import { watchFilters } from '../runtime/diagnostics/topics.ts';
import { COMMANDS } from '../runtime/diagnostics/commands.ts';

export interface DiagIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
}

const USAGE = `usage: sweep diag <command> [options]
  keygen --out FILE                 make an operator Ed25519 key (PEM, mode 0600); prints the
                                    public key to list in the devices' diagnostics.operatorKeys
  watch [--device ID] [--count N] [--for-ms MS]
                                    print state, telemetry and events of one device or the fleet
  cmd --device ID [--operator-key FILE] COMMAND [ARGS_JSON]
                                    send one command and print the response (exit 1 on error);
                                    commands that change the device need --operator-key
  shell --device ID --operator-key FILE
                                    open the remote shell (when the device allows it); Ctrl-] ends
broker options: --url mqtts://host:8883 (or $SWEEP_MQTT_URL) [--username U] [--password-file F]
  [--ca F] [--cert F] [--tls-key F] [--protocol 5|4] [--prefix sweep] [--client-id ID] [--timeout-ms 5000]`;

const OPTIONS = {
  url: { type: 'string' },
  username: { type: 'string' },
  'password-file': { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  'tls-key': { type: 'string' },
  protocol: { type: 'string', default: '5' },
  prefix: { type: 'string', default: 'sweep' },
  'client-id': { type: 'string' },
  'timeout-ms': { type: 'string', default: '5000' },
  device: { type: 'string' },
  'operator-key': { type: 'string' },
  count: { type: 'string' },
  'for-ms': { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', default: false },
} as const;

function int(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new SweepError('INVALID_MESSAGE', `--${name}: "${value}", an integer ${min}-${max} allowed`);
  return n;
}

/** `sweep diag …` for fleet operators. Resolves with the exit code. */
export async function diagCli(argv: string[], io: DiagIo): Promise<number> {
  const [sub, ...rest] = argv;
  const print = (s: string) => io.stdout.write(`${s}\n`);
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
    if (!sub || sub === 'help' || values.help) {
      print(USAGE);
      return sub ? 0 : 2;
    }
    if (sub === 'keygen') {
      if (!values.out) throw new SweepError('INVALID_MESSAGE', '--out FILE is required');
      const { privateKey } = generateKeyPairSync('ed25519');
      await writeFile(values.out, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
      print(rawPublicKey(createPublicKey(privateKey)));
      return 0;
    }
    if (!['watch', 'cmd', 'shell'].includes(sub)) throw new SweepError('UNKNOWN_TYPE', `diag: "${sub}" is not one of keygen, watch, cmd, shell`);
    const url = values.url ?? process.env.SWEEP_MQTT_URL;
    if (!url) throw new SweepError('INVALID_MESSAGE', '--url (or SWEEP_MQTT_URL) is required');
    const protocol = int(values.protocol, 'protocol', 4, 5) as 4 | 5;
    const timeoutMs = int(values['timeout-ms'], 'timeout-ms', 100, 600_000) ?? 5000;
    const client = await OperatorClient.connect({
      url,
      clientId: values['client-id'] ?? `sweep-diag-${randomBytes(4).toString('hex')}`,
      protocolVersion: protocol,
      username: values.username,
      passwordFile: values['password-file'],
      tls: { caFile: values.ca, certFile: values.cert, keyFile: values['tls-key'] },
      prefix: values.prefix,
    }, {}, timeoutMs);
    try {
      if (sub === 'watch') return await watch(client, values.device, int(values.count, 'count', 1, 1e9), int(values['for-ms'], 'for-ms', 1, 1e9), print);
      if (!values.device) throw new SweepError('INVALID_MESSAGE', '--device ID is required');
      const key = values['operator-key'] ? await readOperatorKey(values['operator-key']) : undefined;
      if (sub === 'cmd') {
        const [command, argsJson] = positionals;
        if (!command) throw new SweepError('INVALID_MESSAGE', `cmd: COMMAND is required (${Object.keys(COMMANDS).join(', ')})`);
        let args: Record<string, unknown> = {};
        if (argsJson) {
          try {
            args = JSON.parse(argsJson) as Record<string, unknown>;
          } catch {
            throw new SweepError('INVALID_MESSAGE', `ARGS_JSON: not valid JSON: ${argsJson}`);
          }
        }
        const res = await client.request(values.device, command, args, { ...(key ? { key } : {}), timeoutMs });
        print(JSON.stringify(res, null, 2));
        return res.status === 'ok' ? 0 : 1;
      }
      if (!key) throw new SweepError('INVALID_MESSAGE', 'shell: --operator-key FILE is required');
      return await shell(client, values.device, key, io, timeoutMs);
    } finally {
      await client.close();
    }
  } catch (err) {
    io.stderr.write(`sweep diag: ${toSweepError(err).message}\n`);
    return 2;
  }
}

async function watch(client: OperatorClient, device: string | undefined, count: number | undefined, forMs: number | undefined, print: (s: string) => void): Promise<number> {
  const tracker = new StateTracker();
  let seen = 0;
  await new Promise<void>((resolve) => {
    const done = () => {
      client.client.removeListener('message', onMessage);
      process.removeListener('SIGINT', done);
      resolve();
    };
    const onMessage = (topic: string, payload: Buffer) => {
      const parts = topic.slice(client.prefix.length + 1).split('/');
      const [dev, kind, ...more] = parts;
      if (!dev || !kind || kind === 'cmd' || kind === 'res' || kind === 'shell') return;
      if (kind === 'state') {
        const s = readState(payload);
        // Q4: a state older than one already seen (a late will) is not news.
        if (!s || !tracker.accept(dev, s)) return;
      }
      print(`${dev} ${[kind, ...more].join('/')} ${payload.toString('utf8')}`);
      seen += 1;
      if (count !== undefined && seen >= count) done();
    };
    client.client.on('message', onMessage);
    process.once('SIGINT', done);
    if (forMs !== undefined) setTimeout(done, forMs).unref();
    client.subscribe(watchFilters(client.prefix, device)).catch(() => done());
  });
  return 0;
}

async function shell(client: OperatorClient, device: string, key: Awaited<ReturnType<typeof readOperatorKey>>, io: DiagIo, timeoutMs: number): Promise<number> {
  const res = await client.request(device, 'shell', { cols: 80, rows: 24 }, { key, timeoutMs });
  if (res.status !== 'ok') {
    io.stderr.write(`sweep diag: shell refused: ${res.error.code}: ${res.error.message}\n`);
    return 1;
  }
  const { session, topics } = res.data as { session: string; topics: { in: string; out: string } };
  const t = client.topics(device);
  await client.subscribe([topics.out, t.event('shell.closed')]);
  const stdin = io.stdin as Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => void };
  let seq = 0;
  await new Promise<void>((resolve) => {
    const finish = () => {
      stdin.removeListener('data', onInput);
      stdin.removeListener('end', onEnd);
      client.client.removeListener('message', onMessage);
      if (stdin.isTTY) stdin.setRawMode?.(false);
      stdin.pause();
      resolve();
    };
    const onMessage = (topic: string, payload: Buffer) => {
      if (topic === topics.out) io.stdout.write(payload);
      else if (topic === t.event('shell.closed')) {
        const e = JSON.parse(payload.toString('utf8')) as { data?: { session?: string; reason?: string } };
        if (e.data?.session === session) {
          io.stderr.write(`\r\n[shell closed: ${e.data.reason ?? ''}]\r\n`);
          finish();
        }
      }
    };
    const onInput = (chunk: Buffer) => {
      if (chunk.includes(0x1d)) {
        // Ctrl-]
        void client.request(device, 'shellClose', { session }, { key, timeoutMs }).catch(() => undefined);
        return;
      }
      void client.shellInput(device, session, seq++, chunk, key).catch(() => undefined);
    };
    const onEnd = () => void client.request(device, 'shellClose', { session }, { key, timeoutMs }).catch(() => undefined);
    client.client.on('message', onMessage);
    if (stdin.isTTY) stdin.setRawMode?.(true);
    stdin.on('data', onInput);
    stdin.on('end', onEnd);
    stdin.resume();
  });
  return 0;
}
