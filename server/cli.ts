import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DestinationStream } from 'pino';
import { SweepError, toSweepError } from '../core/errors.ts';
import { createLogger, type Logger } from '../platform/log.ts';
import { AccessServer } from './access-server.ts';
import { hashPassword, MAX_PASSWORD_LENGTH } from './passwords.ts';
import { loadOrCreateServerKey } from './server-key.ts';
import { checkAccountName, type AccountStore } from './store.ts';
import { migrateStore, openStore, storeLocation, type StoreLocation } from './store/open.ts';
import { createProvisionCode } from './provisioning.ts';
import { ClientAddresses } from './client-address.ts';
import { EndpointId } from '../core/protocol/common.ts';
import { checkIceOptions, type IceOptions } from './ice.ts';
import type { PushOptions } from './push/push-service.ts';
import { DEFAULT_HISTORY_DAYS } from './history.ts';

export interface ServerCliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** Stops `serve` like SIGINT/SIGTERM would (for tests and embedding). */
  signal?: AbortSignal;
  /** Logger for `serve`; default JSON lines on stderr. */
  log?: Logger;
  /**
   * Builds the phone page in a checkout where it is not built yet (the `sweep` dispatcher passes
   * phone/build.ts: the server only serves the page's files and never imports the page).
   */
  buildPhonePage?: () => Promise<string>;
}

export const SERVER_USAGE = `usage: sweep server <command> --data DIR [options]
  serve [--host H] [--port P] [--trusted-proxy ADDR]... [--web DIR]
                                                run the access server until SIGINT/SIGTERM
                                                (default 127.0.0.1, port 8443; 0 picks a free port);
                                                --trusted-proxy: a reverse proxy's address or CIDR
                                                range (repeat or comma-separate) whose
                                                X-Forwarded-For names the client for login limits;
                                                --web: the phone page's files (default: the
                                                bundle's, or phone/dist in a checkout, built
                                                there when missing)
        [--stun URL]... [--turn URL]... [--turn-secret-file FILE] [--turn-ttl S] [--relay-only]
                                                A13, answering from outside the home: STUN and
                                                TURN servers handed to every endpoint, TURN with
                                                credentials valid --turn-ttl seconds (default
                                                3600) made with coturn's static-auth-secret read
                                                from FILE; --relay-only: every link via TURN
        [--push-subject mailto:ADDR|https://URL]     A16: the contact the Web Push services see
                                                (VAPID subject; default mailto:sweep@localhost)
        [--history-days N]                          A15: days household call records are kept
                                                (default 90)
        [--db postgres://USER@HOST:PORT/DB] [--bus nats://HOST:PORT[,nats://…]] [--node-id ID]
                                                a cluster node (README "Running a cluster"): state
                                                in PostgreSQL instead of accounts.db, relay and
                                                presence over NATS; --node-id names this node
                                                (default: random per start). --data still holds
                                                the server key, the same file on every node
  migrate [--db URL]                            create or upgrade the database schema (run once
                                                per upgrade, before starting the nodes; SQLite
                                                migrates by itself)
  account add NAME [--display TEXT] [--password-stdin]
                                                create an account; without --password-stdin a strong
                                                password is generated and printed once
  account passwd NAME --password-stdin          set a new password read from stdin
  account list                                  list accounts
  buddy add A B | buddy remove A B              make or unmake two accounts buddies
  pubkey                                        print the server's public key (base64url)
  provision-code add ACCOUNT --endpoint ID [--ttl MINUTES]
                                                a one-time code (default 60 min) a device exchanges
                                                once for its own credential (sweep provision)
  endpoint list ACCOUNT                         provisioned endpoints of an account
  endpoint revoke ACCOUNT ID                    revoke a provisioned endpoint's credential
  endpoint owner ID                             the account an endpoint id is bound to (A10)
  endpoint release ID                           unbind an endpoint id from its account, so another
                                                account may claim it (a replaced or resold device)
`;

const OPTIONS = {
  data: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'trusted-proxy': { type: 'string', multiple: true },
  web: { type: 'string' },
  stun: { type: 'string', multiple: true },
  turn: { type: 'string', multiple: true },
  'turn-secret-file': { type: 'string' },
  'turn-ttl': { type: 'string' },
  'relay-only': { type: 'boolean' },
  'push-subject': { type: 'string' },
  'history-days': { type: 'string' },
  db: { type: 'string' },
  bus: { type: 'string' },
  'node-id': { type: 'string' },
  display: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  endpoint: { type: 'string' },
  ttl: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flag = keyof typeof OPTIONS;

/** Each command: how many positionals after its name, which flags it takes. */
const COMMANDS: Record<string, { args: string[]; flags: Flag[] }> = {
  serve: { args: [], flags: ['host', 'port', 'trusted-proxy', 'web', 'stun', 'turn', 'turn-secret-file', 'turn-ttl', 'relay-only', 'push-subject', 'history-days', 'db', 'bus', 'node-id'] },
  migrate: { args: [], flags: ['db'] },
  'account add': { args: ['NAME'], flags: ['display', 'password-stdin'] },
  'account passwd': { args: ['NAME'], flags: ['password-stdin'] },
  'account list': { args: [], flags: [] },
  'buddy add': { args: ['A', 'B'], flags: [] },
  'buddy remove': { args: ['A', 'B'], flags: [] },
  pubkey: { args: [], flags: [] },
  'provision-code add': { args: ['ACCOUNT'], flags: ['endpoint', 'ttl'] },
  'endpoint list': { args: ['ACCOUNT'], flags: [] },
  'endpoint revoke': { args: ['ACCOUNT', 'ID'], flags: [] },
  'endpoint owner': { args: ['ID'], flags: [] },
  'endpoint release': { args: ['ID'], flags: [] },
};

const DEFAULT_PORT = 8443;

class UsageError extends Error {}

/** `sweep server …`: returns the exit code (0 ok, 1 failed, 2 bad usage). */
export async function serverCli(argv: string[], io: ServerCliIo): Promise<number> {
  const out = (s: string): void => void io.stdout.write(s);
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true });
    } catch (err) {
      const message = (err as Error).message;
      const unknown = /^Unknown option '([^']+)'/.exec(message);
      throw new UsageError(unknown ? `unknown option ${unknown[1]}` : message);
    }
    const { values, positionals } = parsed;
    if (values.help || positionals.length === 0) {
      out(SERVER_USAGE);
      return values.help ? 0 : 2;
    }
    const [first = '', second = ''] = positionals;
    const name = ['account', 'buddy', 'provision-code', 'endpoint'].includes(first) ? `${first} ${second}`.trim() : first;
    const spec = COMMANDS[name];
    if (!spec) throw new UsageError(`unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
    const args = positionals.slice(name.split(' ').length);
    if (args.length !== spec.args.length) {
      throw new UsageError(`"${name}" takes ${spec.args.length ? spec.args.join(' ') : 'no arguments'}, got ${args.length ? args.map((a) => `"${a}"`).join(' ') : 'none'}`);
    }
    for (const flag of Object.keys(values) as Flag[]) {
      if (flag !== 'data' && flag !== 'help' && !spec.flags.includes(flag)) throw new UsageError(`--${flag} is not an option of "${name}"`);
    }
    const dataDir = values.data;
    if (!dataDir) throw new UsageError('--data DIR is required');
    const location = parseStoreLocation(values.db, dataDir);
    const nodeId = values['node-id'];
    if (nodeId !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new UsageError(`--node-id: "${nodeId}" is not 1-64 of A-Z a-z 0-9 . _ -`);

    switch (name) {
      case 'serve':
        return await serve(
          {
            dataDir,
            host: values.host ?? '127.0.0.1',
            port: parsePort(values.port),
            trustedProxies: parseProxies(values['trusted-proxy']),
            ice: await parseIce(values),
            push: parsePushSubject(values['push-subject']),
            historyDays: parseHistoryDays(values['history-days']),
            store: location,
            ...(values.bus !== undefined ? { bus: values.bus } : {}),
            ...(nodeId !== undefined ? { nodeId } : {}),
          },
          await findWebRoot(values.web, io, io.buildPhonePage ? { build: io.buildPhonePage } : {}),
          io,
        );
      case 'migrate': {
        const applied = await migrateStore(location);
        out(applied.length ? `applied ${applied.join(', ')}\n` : 'the schema is current; nothing to apply\n');
        return 0;
      }
      case 'pubkey':
        out(`${(await loadOrCreateServerKey(dataDir)).publicKeyRaw}\n`);
        return 0;
      default:
        return await withStore(location, async (store) => {
          const [a = '', b = ''] = args;
          if (name === 'account add') {
            checkAccountName(a, 'NAME');
            const given = values['password-stdin'] ? await readPassword(io.stdin) : undefined;
            const password = given ?? randomBytes(18).toString('base64url');
            await store.createAccount(a, values.display ?? a, await hashPassword(password));
            out(`created account ${a}\n`);
            if (!given) out(`password (shown once, store it now): ${password}\n`);
          } else if (name === 'account passwd') {
            if (!values['password-stdin']) throw new UsageError('"account passwd" needs --password-stdin (the new password on stdin)');
            if (!(await store.getAccount(a))) throw new SweepError('NOT_FOUND', `unknown account "${a}"`);
            await store.setPassword(a, await hashPassword(await readPassword(io.stdin)));
            out(`password of ${a} changed\n`);
          } else if (name === 'account list') {
            const accounts = await store.listAccounts();
            if (accounts.length === 0) out('(no accounts)\n');
            for (const acc of accounts) out(`${acc.name}\t${acc.displayName}\t${new Date(acc.createdAt).toISOString()}\n`);
          } else if (name === 'provision-code add') {
            checkAccountName(a, 'ACCOUNT');
            if (!values.endpoint) throw new UsageError('"provision-code add" needs --endpoint ID (the device\'s endpoint.id)');
            const endpointId = EndpointId.safeParse(values.endpoint);
            if (!endpointId.success) throw new UsageError(`--endpoint: "${values.endpoint}" is not ${endpointId.error.issues[0]?.message ?? 'an endpoint id'}`);
            const minutes = values.ttl === undefined ? 60 : Number(values.ttl);
            if (!Number.isInteger(minutes) || minutes < 1 || minutes > 7 * 24 * 60) throw new UsageError(`--ttl: "${values.ttl}" is not a number of minutes (1-10080)`);
            const { code, expiresAt } = await createProvisionCode(store, a, endpointId.data, minutes * 60_000);
            out(`provisioning code for ${a}/${endpointId.data}, valid until ${new Date(expiresAt).toISOString()}, single use (shown once):\n${code}\n`);
          } else if (name === 'endpoint list') {
            checkAccountName(a, 'ACCOUNT');
            const list = await store.listEndpointCredentials(a);
            if (list.length === 0) out('(no provisioned endpoints)\n');
            for (const e of list) out(`${e.endpointId}\t${e.signingKey}\t${new Date(e.createdAt).toISOString()}\n`);
          } else if (name === 'endpoint revoke') {
            out((await store.removeEndpointCredential(a, b)) ? `credential of ${a}/${b} revoked\n` : `${a}/${b} had no credential\n`);
          } else if (name === 'endpoint owner') {
            const owner = await store.endpointOwner(a);
            out(owner ? `${a}\t${owner}\n` : `${a} is not bound to an account\n`);
          } else if (name === 'endpoint release') {
            const owner = await store.releaseEndpoint(a);
            out(owner ? `endpoint ${a} released from account ${owner}; the next account to log in with it claims it\n` : `${a} was not bound to an account\n`);
          } else if (name === 'buddy add') {
            await store.addBuddies(a, b);
            out(`${a} and ${b} are buddies\n`);
          } else {
            const existed = await store.removeBuddies(a, b);
            out(existed ? `${a} and ${b} are no longer buddies\n` : `${a} and ${b} were not buddies\n`);
          }
          return 0;
        });
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`sweep server: ${err.message}\n\n${SERVER_USAGE}`);
      return 2;
    }
    const e = toSweepError(err);
    io.stderr.write(`sweep server: ${e.message} (${e.code})\n`);
    return 1;
  }
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PORT;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`--port: "${text}" is not a port number (0-65535)`);
  return port;
}

function parseHistoryDays(text: string | undefined): number {
  if (text === undefined) return DEFAULT_HISTORY_DAYS;
  const days = Number(text);
  if (!/^\d+$/.test(text) || days < 1 || days > 36_500) throw new UsageError(`--history-days: "${text}" is not a whole number of days from 1 to 36500`);
  return days;
}

/** --trusted-proxy may repeat and may list several addresses separated by commas. */
function parseProxies(given: string[] | undefined): string[] {
  const list = (given ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);
  for (const entry of list) {
    try {
      new ClientAddresses([entry]);
    } catch {
      throw new UsageError(`--trusted-proxy: "${entry}" is not an IP address or CIDR range (e.g. 10.0.0.2 or 10.0.0.0/8)`);
    }
  }
  return list;
}

async function withStore(location: StoreLocation, fn: (store: AccountStore) => Promise<number>): Promise<number> {
  const store = await openStore(location);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** The first line of stdin; the password never reaches argv, the shell history or a log. */
async function readPassword(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (text.length > 4 * MAX_PASSWORD_LENGTH) break;
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password.length === 0) throw new UsageError('--password-stdin: stdin held no password');
  if (password.length > MAX_PASSWORD_LENGTH) throw new UsageError(`--password-stdin: the password has more than ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

/**
 * Where the phone page's files are: `--web DIR` when given; else the first of a checkout's
 * phone/dist (beside server/) and a server bundle's phone/dist (this file is then
 * dist/chunks/*.mjs) that holds index.html. In a checkout without a built page, the page is built
 * (npm run build:web) rather than served as 404, when the caller can build it.
 */
export async function findWebRoot(
  given: string | undefined,
  io: Pick<ServerCliIo, 'stderr'>,
  opts: { here?: string; build?: () => Promise<string> } = {},
): Promise<string> {
  const hasPage = (dir: string): Promise<boolean> => stat(join(dir, 'index.html')).then(
    (s) => s.isFile(),
    () => false,
  );
  if (given !== undefined) {
    if (await hasPage(given)) return given;
    throw new SweepError('NOT_FOUND', `--web: ${given} holds no index.html; allowed: a directory with the built phone page (npm run build:web writes phone/dist)`);
  }
  const here = opts.here ?? dirname(fileURLToPath(import.meta.url));
  const checkout = resolve(here, '..', 'phone', 'dist');
  const candidates = [checkout, resolve(here, '..', '..', 'phone', 'dist')];
  for (const dir of candidates) if (await hasPage(dir)) return dir;
  const inCheckout = await stat(resolve(here, '..', 'phone', 'src', 'index.html')).then(() => true, () => false);
  if (inCheckout && opts.build) {
    io.stderr.write(`sweep server: the phone page is not built yet; building it into ${checkout} (npm run build:web)\n`);
    return opts.build();
  }
  throw new SweepError('NOT_FOUND', `the phone page is not in ${candidates.join(' or ')}; pass --web DIR (a server bundle holds it in phone/dist; in a checkout run npm run build:web)`);
}

/** A13: the ICE flags of `serve`; the TURN secret is read from a file so it shows in no process list. */
async function parseIce(values: { stun?: string[]; turn?: string[]; 'turn-secret-file'?: string; 'turn-ttl'?: string; 'relay-only'?: boolean }): Promise<IceOptions | undefined> {
  const stun = values.stun ?? [];
  const turn = values.turn ?? [];
  if (!stun.length && !turn.length) {
    if (values['turn-secret-file'] || values['turn-ttl'] || values['relay-only']) throw new UsageError('--turn-secret-file, --turn-ttl and --relay-only need --turn');
    return undefined;
  }
  let secret: string | undefined;
  const file = values['turn-secret-file'];
  if (file !== undefined) {
    try {
      secret = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new UsageError(`--turn-secret-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  const ttlText = values['turn-ttl'];
  const ttlSeconds = ttlText === undefined ? undefined : /^\d+$/.test(ttlText) ? Number(ttlText) : Number.NaN;
  if (ttlSeconds !== undefined && Number.isNaN(ttlSeconds)) throw new UsageError(`--turn-ttl: "${ttlText}" is not a whole number of seconds`);
  const ice: IceOptions = { stun, turn, ...(secret !== undefined ? { secret } : {}), ...(ttlSeconds !== undefined ? { ttlSeconds } : {}), policy: values['relay-only'] ? 'relay' : 'all' };
  try {
    checkIceOptions(ice);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return ice;
}

/** --db: a postgres:// URL (its password belongs in ~/.pgpass or PGPASSWORD, not on the command line), or none for SQLite. */
function parseStoreLocation(db: string | undefined, dataDir: string): StoreLocation {
  try {
    return storeLocation(db, dataDir);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

interface ServeOptions {
  store: StoreLocation;
  bus?: string;
  nodeId?: string;
  dataDir: string;
  host: string;
  port: number;
  trustedProxies: string[];
  ice: IceOptions | undefined;
  push: PushOptions;
  historyDays: number;
}

/** A16: RFC 8292 wants a way to reach the operator: a mailto: or https: URL. */
function parsePushSubject(text: string | undefined): PushOptions {
  if (text === undefined) return {};
  if (!/^(mailto:[^\s@]+@[^\s@]+|https:\/\/\S+)$/.test(text)) throw new UsageError(`--push-subject: "${text}" is neither mailto:ADDRESS nor an https:// URL`);
  return { subject: text };
}

async function serve(o: ServeOptions, webRoot: string, io: ServerCliIo): Promise<number> {
  const log = io.log ?? createLogger({ destination: io.stderr as unknown as DestinationStream });
  const server = await AccessServer.start({
    dataDir: o.dataDir,
    host: o.host,
    port: o.port,
    log,
    trustedProxies: o.trustedProxies,
    webRoot,
    store: o.store,
    ...(o.bus !== undefined ? { bus: o.bus } : {}),
    ...(o.nodeId !== undefined ? { nodeId: o.nodeId } : {}),
    ...(o.ice ? { ice: o.ice } : {}),
    push: o.push,
    historyDays: o.historyDays,
  });
  io.stdout.write(`access server listening on ${server.url}\nnode: ${server.nodeId}\npublic key: ${server.publicKeyRaw}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (io.signal?.aborted) stop();
    else io.signal?.addEventListener('abort', stop);
  });
  await server.close();
  io.stdout.write('access server stopped\n');
  return 0;
}
