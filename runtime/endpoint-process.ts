import { createInterface } from 'node:readline';
import { z } from 'zod';
import { ConfigError, loadEndpointConfig } from '../firmware-config/load.ts';
import { deviceProblems, simulatedDrivers } from './diagnostics/config-check.ts';
import { createAudioSink, createAudioSource, watchAudioDrivers } from './audio-drivers.ts';
import { Endpoint } from './endpoint.ts';
import { retry, TRANSIENT_CODES } from '../core/retry.ts';
import { isFinalLoginRefusal } from '../core/protocol/access.ts';
import { systemClock } from '../core/clock.ts';
import { startPanel } from './panel/panel-controller.ts';
import { parseWith } from '../core/protocol/validate.ts';
import { createLogger, NS } from '../platform/log.ts';
import { LevelControl, LogRing, teeDestination } from './util/log-ring.ts';
import { startDiagnostics, type Diagnostics } from './diagnostics/diagnostics.ts';
import { SweepError, toWireError } from '../core/errors.ts';
import { randomB64u } from '../core/wire/b64.ts';
import { SimulatedAnalysingSink } from '../drivers/audio/simulated.ts';
import type { AudioSink } from '../drivers/audio/audio.ts';
import { createSdNotifier } from './sd-notify.ts';
import type { EndpointEvents } from '../core/session/events.ts';

/** Commands accepted on stdin with `--control stdio`, one JSON object per line. */
const Command = z.discriminatedUnion('cmd', [
  /** C1 to one endpoint (`to`), or H1 to a household (`account`): every online endpoint of it rings. */
  z.strictObject({ id: z.string().max(64), cmd: z.literal('call'), to: z.string().max(64).optional(), account: z.string().max(64).optional(), doorRights: z.boolean().optional() }),
  /** H7: do not disturb on or off. */
  z.strictObject({ id: z.string().max(64), cmd: z.literal('dnd'), on: z.boolean() }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('answer') }),
  /** S10 'ask': take the call a sibling sends here (the only one ringing, or the one named). */
  z.strictObject({ id: z.string().max(64), cmd: z.literal('accept'), sweepId: z.string().max(64).optional() }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('decline'), sweepId: z.string().max(64).optional() }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('hangup') }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('push'), to: z.string().max(64).optional() }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('pull'), from: z.string().max(64).optional() }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('state') }),
  /** What the simulated sink played since `since` (this process's monotonic ms, a `now` an earlier reply gave); all it holds without. */
  z.strictObject({ id: z.string().max(64), cmd: z.literal('audio'), since: z.number().finite().optional() }),
  /** `n` ctl round trips on the ready link to `peer`, ms each (bench/nat.ts). */
  z.strictObject({ id: z.string().max(64), cmd: z.literal('ping'), peer: z.string().max(64), n: z.number().int().min(1).max(100).optional() }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('crash') }),
  z.strictObject({ id: z.string().max(64), cmd: z.literal('quit') }),
]);
type Command = z.infer<typeof Command>;

const FORWARDED: Array<keyof EndpointEvents & string> = ['call.state', 'ring.started', 'ring.fork', 'ring.answered', 'ring.ended', 'sweep.finished', 'sweep.invited', 'sweep.inviteEnded', 'link.state', 'link.failed', 'sibling.call', 'access.state'];

/**
 * Runs one endpoint with the audio drivers its config names (simulated by default). With `control: 'stdio'`, stdin takes commands and
 * stdout carries one JSON line per event and per command result: the multi-process test and
 * scripts drive endpoints this way. Logs go to stderr.
 */
export async function runEndpointProcess(opts: { configFile: string; control: 'none' | 'stdio' }): Promise<number> {
  const config = await loadEndpointConfig(opts.configFile);
  // What this machine lacks (an address not its own, a driver package, the serial port) stops the
  // process here, one line each, before any login; simulated drivers are announced loudly.
  const missing = await deviceProblems(config);
  if (missing.length) throw new ConfigError(missing.map((p) => ({ file: opts.configFile, path: p.field, message: p.message })));
  for (const line of simulatedDrivers(config)) process.stderr.write(`sweep: SIMULATED DRIVER (${config.endpoint.id}): ${line}; a device needs the real driver (README "Audio on the device")\n`);
  const logRing = new LogRing(500);
  const log = createLogger({ level: config.log.level, destination: teeDestination(process.stderr, logRing), name: config.endpoint.id });
  const levels = new LevelControl(log);
  const audioLog = log.child({ ns: NS.driverAudio });
  // A device that boots while its server is unreachable keeps trying, with jittered back-off
  // (a fleet must not return in step); a refused login is final. Each attempt opens its drivers
  // afresh, since a failed start releases them.
  const startup = new AbortController();
  const abortStartup = () => startup.abort();
  process.once('SIGINT', abortStartup);
  process.once('SIGTERM', abortStartup);
  let source!: ReturnType<typeof createAudioSource>;
  let sink!: Awaited<ReturnType<typeof createAudioSink>>;
  const endpoint = await retry(
    async () => {
      source = createAudioSource(config.audio.source, { log: audioLog });
      sink = await createAudioSink(config.audio.sink, { log: audioLog });
      return Endpoint.start(config, { source, sink, log });
    },
    { clock: systemClock, log, what: 'login to the access server', signal: startup.signal, retryable: retryableAtStart },
  ).finally(() => {
    process.off('SIGINT', abortStartup);
    process.off('SIGTERM', abortStartup);
  });
  watchAudioDrivers(source, sink, (e) => endpoint.bus.emit('driver.state', e));
  const out = (obj: object) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  for (const type of FORWARDED) endpoint.bus.on(endpoint, type, (e) => out({ event: type, ...(e as object) }));
  // The panel is a leaf: if it cannot start, the endpoint still takes calls without buttons.
  const panel = config.panel
    ? await startPanel(endpoint, config.panel, { log }).catch((err: unknown) => {
        log.error({ message: toWireError(err).message }, 'panel not started');
        return undefined;
      })
    : undefined;
  out({ event: 'ready', endpointId: endpoint.id, account: endpoint.account });
  // Under systemd (Type=notify): READY once logged in, WATCHDOG pings, STOPPING on shutdown.
  const notify = createSdNotifier({ log });
  notify.ready(`logged in as ${endpoint.account}/${endpoint.id}`);

  let stop!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (stop = resolve));
  // Diagnostics is a leaf: if it cannot start, the endpoint runs without it.
  let diagnostics: Diagnostics | undefined;
  if (config.diagnostics) {
    diagnostics = await startDiagnostics(endpoint, config.diagnostics, { log, logRing, levels, restart: (code) => stop(code), ...(panel?.door ? { door: panel.door } : {}) }).catch((err: unknown) => {
      log.error({ message: toWireError(err).message }, 'diagnostics not started');
      return undefined;
    });
  }
  const shutdown = () => stop(0);
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);

  if (opts.control === 'stdio') {
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      let cmd: Command;
      try {
        cmd = parseWith(Command, JSON.parse(line), 'command');
      } catch (err) {
        out({ status: 'error', error: toWireError(err) });
        return;
      }
      run(endpoint, sink, cmd, stop).then(
        (data) => out({ id: cmd.id, status: 'ok', data: data ?? {} }),
        (err: unknown) => out({ id: cmd.id, status: 'error', error: toWireError(err) }),
      );
    });
    rl.on('close', shutdown);
  }
  const code = await stopped;
  notify.stopping();
  await diagnostics?.close();
  await panel?.close();
  await endpoint.close();
  await notify.close();
  return code;
}

/**
 * A10: at start, as on reconnect, only wrong credentials are final; a busy server, an endpoint id
 * held by another account until an operator releases it, an unreachable server are waited out.
 * A broken config or a local fault is final: systemd's restart would not fix it.
 */
function retryableAtStart(e: SweepError): boolean {
  return TRANSIENT_CODES.has(e.code) || (!isFinalLoginRefusal(e.code) && e.code !== 'INVALID_CONFIG' && e.code !== 'INVALID_MESSAGE' && e.code !== 'INTERNAL');
}

async function run(e: Endpoint, sink: AudioSink, cmd: Command, stop: (code: number) => void): Promise<unknown> {
  switch (cmd.cmd) {
    case 'call':
      if (cmd.account !== undefined && cmd.to === undefined) return e.calls.ringAccount(cmd.account, { doorRights: cmd.doorRights ?? false });
      if (cmd.to !== undefined && cmd.account === undefined) return e.calls.placeCall(cmd.to, { doorRights: cmd.doorRights ?? false });
      throw new SweepError('INVALID_MESSAGE', 'call: give either "to" (an endpoint id) or "account" (a household), not both or neither');
    case 'dnd':
      e.calls.setDoNotDisturb(cmd.on);
      return { doNotDisturb: cmd.on };
    case 'answer':
      return e.calls.answer();
    case 'accept':
      return e.calls.acceptInvite(cmd.sweepId);
    case 'decline':
      e.calls.declineInvite(cmd.sweepId);
      return {};
    case 'hangup':
      return e.calls.hangup();
    case 'push':
      return e.calls.push(cmd.to ? { to: cmd.to } : {});
    case 'pull':
      return e.calls.pull(cmd.from ? { from: cmd.from } : {});
    case 'state':
      return {
        call: e.calls.snapshot(),
        links: e.links.links().map((l) => l.peerId),
        // Issue 17: how each link reaches its peer (host, srflx, relay).
        paths: Object.fromEntries(e.links.links().map((l) => [l.peerId, l.transport.selectedPath?.() ?? null])),
        siblingCalls: e.calls.siblingCallsSnapshot(),
      };
    case 'audio': {
      if (!(sink instanceof SimulatedAnalysingSink)) throw new SweepError('BAD_STATE', 'audio: only the simulated sink (audio.sink.driver "simulated") keeps what it played; this endpoint plays to a device');
      const since = cmd.since ?? -Infinity;
      // `now` on the sink's own clock: pass it back as `since` to ask about what came after.
      return { now: systemClock.mono(), frames: sink.framesSince(since).length, maxGapMs: sink.maxGapMs(since) };
    }
    case 'ping': {
      const link = e.links.current(cmd.peer);
      if (!link) throw new SweepError('BAD_STATE', `ping: no ready link to ${cmd.peer}`);
      const rttMs: number[] = [];
      for (let i = 0; i < (cmd.n ?? 1); i++) {
        // An ack for a sweep that does not exist: every endpoint answers it and changes nothing (the holder's handler).
        const t0 = performance.now();
        await link.rpc.request('sweep.ack', { sweepId: randomB64u(9) });
        rttMs.push(performance.now() - t0);
      }
      return { rttMs };
    }
    case 'crash':
      await e.crash();
      process.exit(137);
      break;
    case 'quit':
      stop(0);
      return {};
  }
  return {};
}
