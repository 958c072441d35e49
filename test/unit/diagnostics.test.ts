import t from 'tap';
import type { IPty } from 'node-pty';
import { EndpointConfig } from '../../firmware-config/endpoint-config.ts';
import { DiagnosticsConfig } from '../../firmware-config/diagnostics-config.ts';
import { OperatorAuth, signCommand } from '../../runtime/diagnostics/auth.ts';
import { configProblems } from '../../runtime/diagnostics/config-check.ts';
import { CommandHandler, redact, type CommandContext } from '../../runtime/diagnostics/commands.ts';
import { EventMapper, type DiagEvent } from '../../runtime/diagnostics/events.ts';
import { Outbox } from '../../runtime/diagnostics/outbox.ts';
import { ShellHost } from '../../runtime/diagnostics/shell.ts';
import { SessionCounter, StateTracker, mustReassert } from '../../runtime/diagnostics/state.ts';
import { TelemetrySampler } from '../../runtime/diagnostics/telemetry.ts';
import { DeviceTopics } from '../../runtime/diagnostics/topics.ts';
import { delay } from '../../core/clock.ts';
import { LevelControl, LogRing } from '../../runtime/util/log-ring.ts';
import { createLogger, silentLogger } from '../../platform/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeEndpoint } from '../helpers/fake-endpoint.ts';
import { operatorKey } from '../helpers/diagnostics-suite.ts';

void t.test('verifyCommand with a configured key, fresh nonce and expiry accepts; the same token again is REPLAYED (Q8, Q9)', async (t) => {
  const clock = new FakeClock();
  const key = operatorKey();
  const auth = new OperatorAuth([key.publicKeyRaw], 'intercom', 300_000);
  const token = signCommand({ ...key, device: 'intercom', command: 'restart', now: clock.now(), ttlMs: 60_000 });
  t.match(auth.verifyCommand(token, clock.now()), { command: 'restart', device: 'intercom' });
  t.throws(() => auth.verifyCommand(token, clock.now()), { code: 'REPLAYED' });
  clock.advance(61_000);
  t.throws(() => auth.verifyCommand(token, clock.now()), { code: 'EXPIRED' }, 'after expiry the nonce is forgotten, the expiry still refuses');
});

void t.test('verifyCommand with a stranger key, a forged signature, another device or too long a lifetime refuses', async (t) => {
  const now = 1_700_000_000_000;
  const key = operatorKey();
  const auth = new OperatorAuth([key.publicKeyRaw], 'intercom', 300_000);
  t.throws(() => auth.verifyCommand(signCommand({ ...operatorKey(), device: 'intercom', command: 'restart', now }), now), { code: 'UNAUTHORIZED', message: /operatorKeys/ });
  const good = signCommand({ ...key, device: 'intercom', command: 'restart', now });
  const tampered = `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(good.split('.')[0]!, 'base64url').toString()), command: 'sweep' })).toString('base64url')}.${good.split('.')[1]}`;
  t.throws(() => auth.verifyCommand(tampered, now), { code: 'UNAUTHORIZED', message: /signature does not verify/ });
  t.throws(() => auth.verifyCommand(signCommand({ ...key, device: 'handset', command: 'restart', now }), now), { code: 'FORBIDDEN', message: /signed\.device/ });
  t.throws(() => auth.verifyCommand(signCommand({ ...key, device: 'intercom', command: 'restart', now, ttlMs: 3_600_000 }), now), { code: 'EXPIRED', message: /at most 300000 ms/ });
  t.throws(() => auth.verifyCommand('a.b.c', now), { code: 'UNAUTHORIZED' });
});

void t.test('verifyCommand beyond maxNonces live nonces refuses RATE_LIMITED until some expire', async (t) => {
  const now = 1_700_000_000_000;
  const key = operatorKey();
  const auth = new OperatorAuth([key.publicKeyRaw], 'intercom', 300_000, 2);
  for (let i = 0; i < 2; i++) auth.verifyCommand(signCommand({ ...key, device: 'intercom', command: 'ping', now, ttlMs: 1000 }), now);
  t.throws(() => auth.verifyCommand(signCommand({ ...key, device: 'intercom', command: 'ping', now }), now), { code: 'RATE_LIMITED' });
  t.ok(auth.verifyCommand(signCommand({ ...key, device: 'intercom', command: 'ping', now: now + 2000 }), now + 2000), 'accepted once the others expired');
});

void t.test('Outbox push beyond capacity drops the oldest and counts them', async (t) => {
  const o = new Outbox<number>(3);
  for (let i = 1; i <= 5; i++) o.push(i);
  t.equal(o.size, 3);
  t.equal(o.takeDropped(), 2);
  t.equal(o.takeDropped(), 0);
  t.same(o.drain(), [3, 4, 5]);
  t.equal(o.size, 0);
  t.throws(() => new Outbox(0), RangeError);
});

void t.test('SessionCounter with a clock standing still still increases; mustReassert and StateTracker order by session (Q4)', async (t) => {
  const clock = new FakeClock();
  const c = new SessionCounter(() => clock.now());
  const a = c.next();
  const b = c.next();
  t.ok(b > a);
  t.equal(mustReassert({ state: 'lost', session: a, at: 0 }, b), true, 'stale will');
  t.equal(mustReassert({ state: 'online', session: a, at: 0 }, b), true, 'older online');
  t.equal(mustReassert({ state: 'lost', session: b, at: 0 }, b), true, 'our own session marked lost');
  t.equal(mustReassert({ state: 'online', session: b, at: 0 }, b), false);
  t.equal(mustReassert({ state: 'online', session: b + 1, at: 0 }, b), false, 'a newer session is not ours to fight');
  t.equal(mustReassert(undefined, b), true, 'garbage or nothing');
  const tracker = new StateTracker();
  t.equal(tracker.accept('d', { state: 'online', session: b, at: 0 }), true);
  t.equal(tracker.accept('d', { state: 'lost', session: a, at: 0 }), false, 'late will ignored');
  t.equal(tracker.accept('d', { state: 'lost', session: b, at: 0 }), true);
});

void t.test('DeviceTopics response topics outside the device are not used (Q3)', async (t) => {
  const topics = new DeviceTopics('sweep', 'intercom');
  t.equal(topics.isOwnResponseTopic('sweep/intercom/res/op1'), true);
  t.equal(topics.isOwnResponseTopic('sweep/intercom/res'), true);
  t.equal(topics.isOwnResponseTopic('sweep/handset/res'), false);
  t.equal(topics.isOwnResponseTopic('sweep/intercom/resx'), false);
  t.equal(topics.isOwnResponseTopic('sweep/intercom/res/#'), false);
  t.equal(topics.shellSessionOf('sweep/intercom/shell/abc/in'), 'abc');
  t.equal(topics.shellSessionOf('sweep/handset/shell/abc/in'), undefined);
});

void t.test('EventMapper on call and sweep events emits numbered events and keeps counters (Q5)', async (t) => {
  const clock = new FakeClock();
  const out: DiagEvent[] = [];
  const e = new FakeEndpoint();
  const mapper = new EventMapper(() => clock.now(), (ev) => out.push(ev));
  const owner = {};
  mapper.attach(e.bus, owner);
  const call = { sessionId: 'c1', state: 'active' as const, direction: 'in' as const, peer: { account: 'door', endpointId: 'intercom', label: 'Door' }, epoch: 1, startedAt: 1, doorRights: false, muted: false, onHold: false };
  e.bus.emit('call.state', { call });
  e.bus.emit('sweep.step', { sweepId: 's', role: 'newcomer', step: 'goAway', ms: 0 });
  e.bus.emit('sweep.step', { sweepId: 's', role: 'newcomer', step: 'update', ms: 3 });
  e.bus.emit('sweep.finished', { sweepId: 's', role: 'newcomer', outcome: 'refused', code: 'REFUSED', startedAtMono: 0, timeline: [{ step: 'goAway', ms: 0 }] });
  t.same(out.map((x) => [x.seq, x.type]), [[1, 'call.started'], [2, 'sweep.started'], [3, 'sweep.refused']]);
  t.equal(out[0]!.data.via, 'sweep');
  t.same(mapper.counters, { started: 1, completed: 0, moved: 0, refused: 1, rolledBack: 0 });
  t.match(mapper.lastSweep, { outcome: 'refused', code: 'REFUSED' });
  e.bus.removeOwner(owner);
  t.equal(e.bus.listenerCount(), 0);
});

void t.test('TelemetrySampler over a fake minute reports CPU as a share of elapsed time and glitches as deltas (Q6)', async (t) => {
  const clock = new FakeClock();
  let cpuUs = 0;
  const e = new FakeEndpoint();
  const mapper = new EventMapper(() => clock.now(), () => undefined);
  const s = new TelemetrySampler(e, mapper, () => 7, {
    mono: () => clock.mono(),
    now: () => clock.now(),
    cpuUsage: () => ({ user: cpuUs, system: 0 }),
    readTemperature: async () => 48.5,
  });
  clock.advance(60_000);
  cpuUs = 600_000; // 600 ms over 60 s
  e.stats.framesConcealed = 4;
  const a = await s.sample();
  t.equal(a.cpu.percent, 1);
  t.equal(a.uptimeS, 60);
  t.equal(a.temperatureC, 48.5);
  t.equal(a.audioGlitches, 4);
  t.equal(a.outbox.queued, 7);
  clock.advance(60_000);
  t.equal((await s.sample()).audioGlitches, 0, 'no new glitches');
});

function fakePty() {
  const data: Array<(d: string) => void> = [];
  const exit: Array<(e: { exitCode: number }) => void> = [];
  const written: string[] = [];
  const pty = {
    paused: false,
    killed: false,
    onData: (fn: (d: string) => void) => data.push(fn),
    onExit: (fn: (e: { exitCode: number }) => void) => exit.push(fn),
    write: (d: string) => written.push(d),
    pause() {
      this.paused = true;
    },
    resume() {
      this.paused = false;
    },
    kill() {
      this.killed = true;
    },
  };
  return { pty, emit: (d: string) => data.forEach((f) => f(d)), exit: (code: number) => exit.forEach((f) => f({ exitCode: code })), written };
}

void t.test('ShellHost with a fake pty: one session, idle timeout, output rate limit (Q11-Q13)', async (t) => {
  const clock = new FakeClock();
  const fp = fakePty();
  const out: Buffer[] = [];
  const closed: string[] = [];
  const host = new ShellHost(
    { command: '/bin/sh', idleTimeoutMs: 10_000, maxBytesPerSecond: 1000 },
    { clock, log: silentLogger(), spawn: async () => () => fp.pty as unknown as IPty, output: (_s, d) => out.push(d), closed: (_s, reason) => closed.push(reason), isRoot: () => false },
  );
  const s = await host.open('k', { cols: 80, rows: 24 });
  await t.rejects(host.open('k', { cols: 80, rows: 24 }), { code: 'BUSY' });
  fp.emit('x'.repeat(2500));
  t.equal(Buffer.concat(out).length, 1000, 'first second: the budget');
  t.equal(fp.pty.paused, true, 'pty paused while too much is pending');
  clock.advance(1000);
  t.equal(Buffer.concat(out).length, 2000);
  t.equal(fp.pty.paused, false, 'resumed');
  clock.advance(1000);
  t.equal(Buffer.concat(out).length, 2500, 'all delivered');
  host.input(s.id, 0, Buffer.from('ls\n'));
  t.throws(() => host.input(s.id, 0, Buffer.from('ls\n')), { code: 'REPLAYED' });
  t.throws(() => host.input(s.id, 1, Buffer.alloc(5000)), { code: 'RATE_LIMITED' });
  t.same(fp.written, ['ls\n']);
  clock.advance(9_999);
  t.same(closed, []);
  clock.advance(1);
  t.same(closed, ['idle']);
  t.equal(fp.pty.killed, true);
  t.equal(host.current, undefined);
  t.equal(clock.pending(), 0, 'no timers left');
});

void t.test('ShellHost as root without shell.user refuses FORBIDDEN', async (t) => {
  const host = new ShellHost(
    { command: '/bin/sh', idleTimeoutMs: 10_000, maxBytesPerSecond: 1000 },
    { clock: new FakeClock(), log: silentLogger(), spawn: async () => () => fakePty().pty as unknown as IPty, output: () => undefined, closed: () => undefined, isRoot: () => true },
  );
  await t.rejects(host.open('k', { cols: 80, rows: 24 }), { code: 'FORBIDDEN', message: /shell\.user/ });
  const asRoot = new ShellHost(
    { command: '/bin/sh', user: 'root', idleTimeoutMs: 10_000, maxBytesPerSecond: 1000 },
    { clock: new FakeClock(), log: silentLogger(), spawn: async () => () => fakePty().pty as unknown as IPty, output: () => undefined, closed: () => undefined, isRoot: () => true },
  );
  await t.rejects(asRoot.open('k', { cols: 80, rows: 24 }), { code: 'FORBIDDEN', message: /is root/ });
});

function context(clock: FakeClock, over: Partial<CommandContext> = {}): CommandContext {
  const key = operatorKey();
  return {
    endpoint: new FakeEndpoint(),
    auth: new OperatorAuth([key.publicKeyRaw], 'intercom', 300_000),
    shell: undefined,
    logRing: undefined,
    getLogLevel: () => 'info',
    setLogLevel: () => undefined,
    restart: () => undefined,
    now: () => clock.now(),
    mono: () => clock.mono(),
    session: () => 1,
    shellTopics: (s) => ({ in: s, out: s }),
    wait: (ms) => delay(clock, ms),
    ...over,
  };
}

void t.test('CommandHandler.handle with an oversized or keyless payload answers an error and keeps the correlation id', async (t) => {
  const clock = new FakeClock();
  const h = new CommandHandler(context(clock));
  t.match(await h.handle(Buffer.alloc(20_000, 0x20)), { status: 'error', error: { code: 'TOO_LARGE' } });
  t.match(await h.handle(Buffer.from(JSON.stringify({ correlationId: 'c9', command: 'getLogs' }))), { correlationId: 'c9', status: 'error', error: { code: 'NOT_FOUND' } });
  t.match(await h.handle(Buffer.from(JSON.stringify({ correlationId: 'c10', command: 'sweep', args: { to: 'phone' } }))), { correlationId: 'c10', command: 'sweep', status: 'error', error: { code: 'UNAUTHORIZED', message: /needs an operator signature/ } });
});

void t.test('CommandHandler audioSelfTest with a fake clock measures capture and playback over the duration', async (t) => {
  const clock = new FakeClock();
  const endpoint = new FakeEndpoint();
  const h = new CommandHandler(context(clock, { endpoint }));
  const p = h.handle(Buffer.from(JSON.stringify({ command: 'audioSelfTest', args: { durationMs: 1000 } })));
  endpoint.tick(50);
  clock.advance(1000);
  t.match(await p, { status: 'ok', data: { source: { capturing: true, framesPerSecond: 50 }, sink: { playing: true, framesPerSecond: 50 } } });
});

void t.test('redact on a config hides passwords and private keys but keeps public keys', async (t) => {
  const r = redact({ access: { password: 'p', serverPublicKey: 'pub' }, diagnostics: { passwordFile: '/x', tls: { keyFile: '/k', caFile: '/ca' }, operatorKeys: ['a'] } }) as Record<string, Record<string, unknown>>;
  t.same(r, { access: { password: '[redacted]', serverPublicKey: 'pub' }, diagnostics: { passwordFile: '[redacted]', tls: { keyFile: '[redacted]', caFile: '/ca' }, operatorKeys: ['a'] } });
});

void t.test('LogRing past capacity keeps the newest lines; LevelControl reaches children made earlier', async (t) => {
  const ring = new LogRing(3);
  const log = createLogger({ level: 'info', destination: ring });
  const levels = new LevelControl(log);
  const child = log.child({ ns: 'x' });
  for (let i = 0; i < 5; i++) child.info(`line ${i}`);
  t.same(ring.lines().map((l) => (JSON.parse(l) as { msg: string }).msg), ['line 2', 'line 3', 'line 4']);
  t.equal(ring.lines(1).length, 1);
  child.debug('hidden');
  levels.set('debug');
  child.debug('shown');
  t.match(ring.lines(1)[0], /shown/);
  t.equal(levels.level, 'debug');
});

void t.test('EndpointConfig.diagnostics absent is off; present gets defaults; unknown keys and password+passwordFile are refused', async (t) => {
  const base = { endpoint: { id: 'intercom', kind: 'intercom', label: 'x' }, access: { url: 'ws://127.0.0.1:1/a', serverPublicKey: 'A'.repeat(43), username: 'door', password: 'p' }, stateDir: '/tmp/x' };
  t.equal(EndpointConfig.parse(base).diagnostics, undefined);
  const d = EndpointConfig.parse({ ...base, diagnostics: { url: 'mqtts://broker.example:8883' } }).diagnostics!;
  t.match(d, { topicPrefix: 'sweep', protocolVersion: 5, shell: { enabled: false }, homeAssistant: { enabled: false }, operatorKeys: [] });
  const unknown = EndpointConfig.safeParse({ ...base, diagnostics: { url: 'mqtt://127.0.0.1:1883', shell: { enabled: true, sudo: true } } });
  t.match(unknown.error?.issues[0], { path: ['diagnostics', 'shell'], code: 'unrecognized_keys' });
  t.equal(DiagnosticsConfig.safeParse({ url: 'mqtt://127.0.0.1:1883', password: 'a', passwordFile: '/b' }).success, false);
  t.equal(DiagnosticsConfig.safeParse({ url: 'http://127.0.0.1' }).success, false);
  t.equal(DiagnosticsConfig.safeParse({ url: 'mqtt://127.0.0.1:1883', deviceId: 'a/#' }).success, false, 'no wildcards in the device id');
});

void t.test('configProblems on risky but valid settings names each field', async (t) => {
  t.same(configProblems(DiagnosticsConfig.parse({ url: 'mqtts://broker.example:8883', passwordFile: '/p' })), []);
  t.same(configProblems(DiagnosticsConfig.parse({ url: 'mqtt://127.0.0.1:1883' })), [], 'loopback may be plain');
  const fields = configProblems(DiagnosticsConfig.parse({ url: 'mqtt://broker.example:1883', password: 'x', shell: { enabled: true }, tls: { certFile: '/c' } })).map((p) => p.field);
  t.same(fields, ['diagnostics.url', 'diagnostics.operatorKeys', 'diagnostics.password', 'diagnostics.tls.keyFile']);
});

void t.test('CommandHandler dnd signed switches do not disturb; unsigned it is refused and changes nothing (H7)', async (t) => {
  const clock = new FakeClock();
  const key = operatorKey();
  const endpoint = new FakeEndpoint();
  const h = new CommandHandler(context(clock, { endpoint, auth: new OperatorAuth([key.publicKeyRaw], 'intercom', 300_000) }));
  t.match(await h.handle(Buffer.from(JSON.stringify({ command: 'dnd', args: { on: true } }))), { status: 'error', error: { code: 'UNAUTHORIZED' } });
  t.equal(endpoint.calls.doNotDisturb, false, 'unsigned: unchanged');
  const signed = signCommand({ ...key, device: 'intercom', command: 'dnd', args: { on: true }, now: clock.now() });
  t.match(await h.handle(Buffer.from(JSON.stringify({ correlationId: 'd1', signed }))), { correlationId: 'd1', status: 'ok', data: { previous: false, doNotDisturb: true } });
  t.equal(endpoint.calls.doNotDisturb, true);
  const bad = signCommand({ ...key, device: 'intercom', command: 'dnd', args: { on: 'yes' }, now: clock.now() });
  t.match(await h.handle(Buffer.from(JSON.stringify({ signed: bad }))), { status: 'error', error: { code: 'INVALID_MESSAGE', message: /args: on/ } });
});
