import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Test } from 'tap';
import { DiagnosticsConfig, type DiagnosticsConfigInput } from '../../firmware-config/diagnostics-config.ts';
import { signCommand } from '../../runtime/diagnostics/auth.ts';
import type { BrokerSettings } from '../../runtime/diagnostics/connection.ts';
import { startDiagnostics, type Diagnostics, type DiagnosticsDeps } from '../../runtime/diagnostics/diagnostics.ts';
import { OperatorClient, type OperatorKey } from '../../tools/operator.ts';
import { rawPublicKey } from '../../platform/token.ts';
import { LevelControl, LogRing } from '../../runtime/util/log-ring.ts';
import { createLogger } from '../../platform/log.ts';
import type { ObservedEndpoint } from '../../runtime/diagnostics/observed.ts';
import { FakeEndpoint } from './fake-endpoint.ts';

export interface SuiteBroker {
  name: string;
  protocolVersion: 4 | 5;
  /** Broker fields of a device's diagnostics config (url, credentials, TLS). */
  device(deviceId: string): Partial<DiagnosticsConfigInput>;
  operator(): Omit<BrokerSettings, 'clientId'>;
}

export function operatorKey(): OperatorKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKeyRaw: rawPublicKey(createPublicKey(privateKey)) };
}

export interface Message {
  topic: string;
  payload: Buffer;
  json: () => Record<string, unknown>;
  correlationData?: string;
  retain: boolean;
}

/** Collects what an MQTT client receives; `next` waits for a matching message. */
export class Collector {
  readonly seen: Message[] = [];
  private waiters: Array<{ match: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  constructor(op: OperatorClient) {
    op.client.on('message', (topic, payload, packet) => {
      const m: Message = {
        topic,
        payload,
        json: () => JSON.parse(payload.toString('utf8')) as Record<string, unknown>,
        retain: packet.retain,
        ...(packet.properties?.correlationData ? { correlationData: packet.properties.correlationData.toString() } : {}),
      };
      this.seen.push(m);
      for (const w of [...this.waiters]) {
        if (w.match(m)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
  }
  next(match: (m: Message) => boolean, ms = 5000, what = 'message'): Promise<Message> {
    const found = this.seen.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { match, resolve: (m: Message) => (clearTimeout(timer), resolve(m)) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${ms} ms`));
      }, ms);
      this.waiters.push(w);
    });
  }
  clear(): void {
    this.seen.length = 0;
  }
}

export interface Rig {
  endpoint: FakeEndpoint;
  diag: Diagnostics;
  op: OperatorClient;
  seen: Collector;
  key: OperatorKey;
  ring: LogRing;
  restarts: number[];
  config: DiagnosticsConfig;
}

export async function startDevice(
  t: Test,
  broker: SuiteBroker,
  opts: { endpoint?: ObservedEndpoint; config?: Partial<DiagnosticsConfigInput>; deps?: Partial<DiagnosticsDeps>; operatorKeys?: string[] } = {},
): Promise<{ diag: Diagnostics; config: DiagnosticsConfig; ring: LogRing; restarts: number[] }> {
  const endpoint = opts.endpoint ?? new FakeEndpoint();
  const config = DiagnosticsConfig.parse({
    ...broker.device(endpoint.id),
    protocolVersion: broker.protocolVersion,
    reconnectMs: 200,
    operatorKeys: opts.operatorKeys ?? [],
    ...opts.config,
  });
  const ring = new LogRing(100);
  const log = createLogger({ level: 'info', destination: ring });
  const restarts: number[] = [];
  const diag = await startDiagnostics(endpoint, config, { log, logRing: ring, levels: new LevelControl(log), restart: (code) => restarts.push(code), ...opts.deps });
  t.teardown(() => diag.close());
  return { diag, config, ring, restarts };
}

export async function startOperator(t: Test, broker: SuiteBroker, name = 'operator'): Promise<{ op: OperatorClient; seen: Collector }> {
  const op = await OperatorClient.connect({ ...broker.operator(), clientId: `${name}-${Math.random().toString(36).slice(2, 8)}` });
  t.teardown(() => op.close());
  return { op, seen: new Collector(op) };
}

/** A device (fake endpoint) and an operator watching it, both connected. */
export async function rig(t: Test, broker: SuiteBroker, opts: Parameters<typeof startDevice>[2] = {}): Promise<Rig> {
  const key = operatorKey();
  const endpoint = (opts.endpoint as FakeEndpoint | undefined) ?? new FakeEndpoint();
  const { op, seen } = await startOperator(t, broker);
  await op.subscribe([`sweep/${endpoint.id}/#`]);
  const device = await startDevice(t, broker, { ...opts, endpoint, operatorKeys: [...(opts.operatorKeys ?? []), key.publicKeyRaw] });
  await seen.next((m) => m.topic === `sweep/${endpoint.id}/state` && m.json().state === 'online', 5000, 'state online');
  return { endpoint, op, seen, key, ...device };
}

/**
 * The checks every broker must pass (run against aedes and mosquitto): state and will, telemetry,
 * every command, signatures, malformed requests.
 */
export function commandSuite(t: Test, makeBroker: (t: Test) => Promise<SuiteBroker>): void {
  void t.test('startDiagnostics when connected publishes a retained online state with a session number (D4)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    const online = await r.seen.next((m) => m.topic === 'sweep/intercom/state', 3000);
    t.equal(online.json().state, 'online');
    t.equal(online.json().session, r.diag.session);
    // A late watcher gets it retained.
    const { op: late, seen: lateSeen } = await startOperator(t, broker, 'late');
    await late.subscribe(['sweep/intercom/state']);
    const retained = await lateSeen.next((m) => m.topic === 'sweep/intercom/state', 3000, 'retained state');
    t.equal(retained.json().state, 'online');
  });

  void t.test('close when connected replaces online with offline (D4)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    await r.diag.close();
    const off = await r.seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'offline', 3000, 'offline');
    t.equal(off.json().session, r.diag.session);
    await r.diag.close(); // idempotent
    t.equal(r.endpoint.bus.listenerCount(), 0, 'bus listeners removed');
  });

  void t.test('stale will with an older session does not overwrite online: the device reasserts (D4)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    r.seen.clear();
    // What a broker does with a will it fires late, after the device reconnected: a lost state
    // of an earlier session. The operator may write sweep/+/cmd only, so it comes from the device's own credentials.
    const { op: stale } = await startOperatorAsDevice(t, broker, 'intercom');
    await stale.client.publishAsync('sweep/intercom/state', JSON.stringify({ state: 'lost', session: r.diag.session - 5, at: 0 }), { qos: 1, retain: true });
    await r.seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'lost', 3000, 'stale will');
    const again = await r.seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'online', 3000, 'online again');
    t.equal(again.json().session, r.diag.session);
  });

  void t.test('publishTelemetry when connected publishes a sample with call, links, media and sweep counters (D6)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    r.endpoint.tick(50);
    r.endpoint.bus.emit('sweep.step', { sweepId: 's1', role: 'holder', step: 'goAway', ms: 0 });
    r.endpoint.bus.emit('sweep.finished', { sweepId: 's1', role: 'holder', outcome: 'moved', startedAtMono: 0, timeline: [{ step: 'goAway', ms: 0 }, { step: 'moved', ms: 12 }] });
    r.seen.clear();
    await r.diag.publishTelemetry();
    const m = (await r.seen.next((m) => m.topic === 'sweep/intercom/telemetry' && (m.json().sweeps as { moved: number }).moved === 1, 3000, 'telemetry')).json();
    t.ok((m.uptimeS as number) >= 0);
    t.equal((m.links as { count: number }).count, 1);
    t.equal((m.media as { framesCaptured: number }).framesCaptured, 50);
    t.same(m.sweeps, { started: 1, completed: 0, moved: 1, refused: 0, rolledBack: 0 });
    t.equal((m.lastSweep as { timeline: unknown[] }).timeline.length, 2);
    t.ok('temperatureC' in m && 'cpu' in m && 'memory' in m);
  });

  void t.test('bus events when connected are published on event/<type> in order (D5)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    const call = { sessionId: 'c1', state: 'ringing' as const, direction: 'out' as const, peer: { account: 'alice', endpointId: 'handset', label: 'Desk' }, epoch: 0, startedAt: null, doorRights: true, muted: false, onHold: false };
    r.endpoint.bus.emit('call.state', { call });
    r.endpoint.bus.emit('call.state', { call: { ...call, state: 'active' } });
    r.endpoint.bus.emit('call.state', { call: { ...call, state: 'ended' }, reason: 'hung up' });
    const ended = (await r.seen.next((m) => m.topic === 'sweep/intercom/event/call.ended', 3000)).json();
    t.equal((ended.data as { reason: string }).reason, 'hung up');
    const types = r.seen.seen.filter((m) => m.topic.includes('/event/')).map((m) => m.json().type);
    t.same(types, ['call.started', 'call.answered', 'call.ended']);
  });

  void t.test('read-only commands without a signature are answered with the correlation id (D7)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    const ping = await r.op.request('intercom', 'ping');
    t.equal(ping.status, 'ok');
    t.match(ping, { data: { pong: true, deviceId: 'intercom' } });
    t.ok(ping.correlationId, 'payload correlation id echoed');
    const cfg = await r.op.request('intercom', 'getConfig');
    t.equal((cfg as { data: { access: { password: string } } }).data.access.password, '[redacted]', 'password redacted (D10)');
    t.notMatch(JSON.stringify(cfg), /hunter2/);
    const links = await r.op.request('intercom', 'listLinks');
    t.match(links, { status: 'ok', data: { links: [{ peerId: 'handset', open: true, path: { local: 'host', remote: 'host', transport: 'UDP' } }] } }, 'each link with the path ICE chose (issue 17)');
    const logs = await r.op.request('intercom', 'getLogs', { lines: 5 });
    t.equal(logs.status, 'ok');
    t.ok((logs as { data: { lines: string[] } }).data.lines.length > 0, 'recent log lines');
    const ticking = setInterval(() => r.endpoint.tick(1), 20);
    t.teardown(() => clearInterval(ticking));
    const self = await r.op.request('intercom', 'audioSelfTest', { durationMs: 200 });
    t.match(self, { status: 'ok', data: { source: { driver: 'simulated', capturing: true }, sink: { driver: 'simulated', playing: true } } });
  });

  void t.test('commands that change the device with a valid signature are run (D7, D8)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    const level = await r.op.request('intercom', 'setLogLevel', { level: 'debug' }, { key: r.key });
    t.match(level, { status: 'ok', data: { previous: 'info', level: 'debug' } });
    const sweep = await r.op.request('intercom', 'sweep', { to: 'phone' }, { key: r.key });
    t.match(sweep, { status: 'ok', data: { to: 'phone' } });
    t.same(r.endpoint.pushes, [{ to: 'phone' }]);
    const restart = await r.op.request('intercom', 'restart', {}, { key: r.key });
    t.match(restart, { status: 'ok', data: { restarting: true, exitCode: 75 } });
    await new Promise((res) => setTimeout(res, 400));
    t.same(r.restarts, [75], 'restart hook called after the response');
  });

  void t.test('commands that change the device unsigned, wrongly signed, replayed or expired are refused (D7-D9)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    const unsigned = await r.op.request('intercom', 'setLogLevel', { level: 'debug' });
    t.match(unsigned, { status: 'error', error: { code: 'UNAUTHORIZED' } });
    const stranger = await r.op.request('intercom', 'restart', {}, { key: operatorKey() });
    t.match(stranger, { status: 'error', error: { code: 'UNAUTHORIZED', message: /operatorKeys/ } });
    // A real operator's payload with someone else's signature.
    const good = signCommand({ ...r.key, device: 'intercom', command: 'restart' });
    const forged = `${good.split('.')[0]}.${signCommand({ ...operatorKey(), device: 'intercom', command: 'restart' }).split('.')[1]}`;
    t.match(await rawRequest(r, { correlationId: 'forged', signed: forged }), { status: 'error', error: { code: 'UNAUTHORIZED', message: /signature does not verify/ } });
    // Replay: the same signed token twice.
    const token = signCommand({ ...r.key, device: 'intercom', command: 'setLogLevel', args: { level: 'warn' } });
    t.match(await rawRequest(r, { correlationId: 'first', signed: token }), { status: 'ok' });
    t.match(await rawRequest(r, { correlationId: 'again', signed: token }), { status: 'error', error: { code: 'REPLAYED' } });
    const expired = signCommand({ ...r.key, device: 'intercom', command: 'restart', now: Date.now() - 120_000, ttlMs: 60_000 });
    t.match(await rawRequest(r, { correlationId: 'old', signed: expired }), { status: 'error', error: { code: 'EXPIRED' } });
    const tooLong = signCommand({ ...r.key, device: 'intercom', command: 'restart', ttlMs: 24 * 3600_000 });
    t.match(await rawRequest(r, { correlationId: 'long', signed: tooLong }), { status: 'error', error: { code: 'EXPIRED', message: /at most/ } });
    const elsewhere = signCommand({ ...r.key, device: 'handset', command: 'restart' });
    t.match(await rawRequest(r, { correlationId: 'other', signed: elsewhere }), { status: 'error', error: { code: 'FORBIDDEN' } });
    t.same(r.restarts, [], 'nothing restarted');
  });

  void t.test('shell when enabled opens as an unprivileged user, echoes and idles out (D11-D13)', async (t) => {
    // As root the shell must switch to an unprivileged user (D11); otherwise it runs as this user.
    const asRoot = process.getuid?.() === 0;
    const user = asRoot ? 'nobody' : userInfo().username;
    const r = await rig(t, await makeBroker(t), { config: { shell: { enabled: true, ...(asRoot ? { user } : {}), idleTimeoutMs: 1500, maxBytesPerSecond: 4096 } } });
    const unsigned = await r.op.request('intercom', 'shell');
    t.match(unsigned, { status: 'error', error: { code: 'UNAUTHORIZED' } });
    const res = await r.op.request('intercom', 'shell', { cols: 80, rows: 24 }, { key: r.key });
    t.equal(res.status, 'ok');
    const { session, topics } = (res as { data: { session: string; topics: { in: string; out: string } } }).data;
    t.equal(topics.in, `sweep/intercom/shell/${session}/in`);
    const busy = await r.op.request('intercom', 'shell', {}, { key: r.key });
    t.match(busy, { status: 'error', error: { code: 'BUSY' } }, 'one session at a time');
    await r.op.shellInput('intercom', session, 0, Buffer.from('echo sweep-$((40+2)); id -un\n'), r.key);
    await r.seen.next((m) => m.topic === topics.out && /sweep-42/.test(outputOf(r.seen, topics.out)), 5000, 'echo output');
    await r.seen.next(() => new RegExp(`\\n${user}\\r?\\n`).test(outputOf(r.seen, topics.out)), 5000, `runs as ${user}`);
    // A replayed input (same seq) and input signed by a stranger are ignored.
    await r.op.shellInput('intercom', session, 0, Buffer.from('echo replayed\n'), r.key);
    await r.op.shellInput('intercom', session, 1, Buffer.from('echo stranger\n'), operatorKey());
    await new Promise((res) => setTimeout(res, 300));
    t.notMatch(outputOf(r.seen, topics.out), /\r?\nreplayed|\r?\nstranger/, 'refused input never ran');
    const closed = await r.seen.next((m) => m.topic === 'sweep/intercom/event/shell.closed', 5000, 'idle close');
    t.match(closed.json(), { data: { session, reason: 'idle' } });
    const again = await r.op.request('intercom', 'shell', {}, { key: r.key });
    t.equal(again.status, 'ok', 'a new session after the idle one closed');
    const id2 = (again as { data: { session: string } }).data.session;
    t.match(await r.op.request('intercom', 'shellClose', { session: id2 }, { key: r.key }), { status: 'ok' });
  });

  void t.test('malformed command payloads get an error naming the problem and nothing crashes (D7)', async (t) => {
    const broker = await makeBroker(t);
    const r = await rig(t, broker);
    const cases: Array<[string, RegExp]> = [
      ['not json', /not valid JSON/],
      ['[1,2]', /expected a JSON object/],
      [JSON.stringify({ correlationId: 'm1', command: 'ping', extra: 1 }), /extra/],
      [JSON.stringify({ correlationId: 'm2', command: 'reboot-now' }), /"reboot-now" is not one of ping/],
      [JSON.stringify({ correlationId: 'm3', command: 'getLogs', args: { lines: 'ten' } }), /args: lines: /],
      [JSON.stringify({ correlationId: 'm4', command: 42 }), /command: /],
      [JSON.stringify({ correlationId: 'm5', signed: 'garbage' }), /signed: not a signed token/],
    ];
    for (const [raw, message] of cases) {
      r.seen.clear();
      await r.op.client.publishAsync('sweep/intercom/cmd', raw, { qos: 1 });
      const res = await r.seen.next((m) => m.topic.startsWith('sweep/intercom/res'), 3000, `response to ${raw}`);
      t.match(res.json(), { status: 'error', error: { message } }, raw);
    }
    t.equal((await r.op.request('intercom', 'ping')).status, 'ok', 'still answering');
  });
}

/** Publishes a raw request and resolves with the response carrying its correlation id. */
export async function rawRequest(r: Rig, body: { correlationId: string } & Record<string, unknown>): Promise<Record<string, unknown>> {
  await r.op.client.publishAsync(`sweep/${r.endpoint.id}/cmd`, JSON.stringify(body), { qos: 1 });
  const res = await r.seen.next((m) => m.topic.startsWith(`sweep/${r.endpoint.id}/res`) && m.json().correlationId === body.correlationId, 3000, `response ${body.correlationId}`);
  return res.json();
}

function outputOf(seen: Collector, topic: string): string {
  return Buffer.concat(seen.seen.filter((m) => m.topic === topic).map((m) => m.payload)).toString('utf8');
}

/** A client with a device's own credentials (to act as that device, or as a rogue one). */
export async function startOperatorAsDevice(t: Test, broker: SuiteBroker, deviceId: string): Promise<{ op: OperatorClient; seen: Collector }> {
  const d = broker.device(deviceId);
  const op = await OperatorClient.connect({
    url: d.url!,
    clientId: `as-${deviceId}-${Math.random().toString(36).slice(2, 8)}`,
    protocolVersion: broker.protocolVersion,
    username: d.username,
    passwordFile: d.passwordFile,
    tls: d.tls,
  });
  t.teardown(() => op.close());
  return { op, seen: new Collector(op) };
}
