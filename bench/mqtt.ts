import { performance } from 'node:perf_hooks';
import { EndpointConfig } from '../firmware-config/endpoint-config.ts';
import { DiagnosticsConfig } from '../firmware-config/diagnostics-config.ts';
import { startDiagnostics } from '../runtime/diagnostics/diagnostics.ts';
import { startLoopbackBroker } from '../runtime/diagnostics/loopback-broker.ts';
import type { ObservedEndpoint } from '../runtime/diagnostics/observed.ts';
import { OperatorClient } from '../tools/operator.ts';
import type { EndpointEvents } from '../core/session/events.ts';
import { EventBus } from '../core/bus.ts';
import { createLogger } from '../platform/log.ts';
import { percentile, round } from './stats.ts';

/**
 * The cost of MQTT diagnostics on an idle endpoint: process CPU over `idleSeconds` with
 * diagnostics connected (telemetry every `telemetryIntervalMs`), scaled to a minute; then
 * `n` sequential `ping` commands, operator → broker → device → broker → operator.
 * The broker is aedes on loopback in this process (its share of the CPU is included: an upper bound).
 * `idleCpuMsPerMinute` is the process CPU with diagnostics connected minus the same process idle
 * without it (each the quietest of three windows over `idleSeconds`); both raw figures are reported.
 */
export async function run(opts: { idleSeconds?: number; n?: number; telemetryIntervalMs?: number } = {}): Promise<Record<string, unknown>> {
  const idleSeconds = opts.idleSeconds ?? 12;
  const n = opts.n ?? 200;
  const telemetryIntervalMs = opts.telemetryIntervalMs ?? 5000;
  const broker = await startLoopbackBroker();
  const url = broker.url;
  // The same process idle with the broker but without diagnostics, to subtract.
  await new Promise((r) => setTimeout(r, 1000));
  const baseline = await quietest(idleSeconds);
  const endpoint = idleEndpoint();
  const diag = await startDiagnostics(endpoint, DiagnosticsConfig.parse({ url, protocolVersion: 4, telemetryIntervalMs }), { log: createLogger({ level: 'silent' }) });
  let op: OperatorClient | undefined;
  try {
    const deadline = Date.now() + 5000;
    while (!diag.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (!diag.connected) throw new Error('diagnostics did not connect');
    await new Promise((r) => setTimeout(r, 500));
    const idle = await quietest(idleSeconds);
    const idleCpuMsPerMinute = idle - baseline;

    op = await OperatorClient.connect({ url, clientId: 'bench-operator', protocolVersion: 4 });
    const rtts: number[] = [];
    const benchDeadline = Date.now() + 20_000;
    for (let i = 0; i < n && Date.now() < benchDeadline; i++) {
      const start = performance.now();
      const res = await op.request('bench', 'ping', {}, { timeoutMs: 2000 });
      if (res.status !== 'ok') throw new Error(`ping failed: ${res.error.message}`);
      rtts.push(performance.now() - start);
    }
    return {
      broker: 'aedes (in process, loopback)',
      idleSeconds,
      telemetryIntervalMs,
      idleCpuMsPerMinute: round(Math.max(0, idleCpuMsPerMinute)),
      withDiagnosticsCpuMsPerMinute: round(idle),
      baselineCpuMsPerMinute: round(baseline),
      n: rtts.length,
      commandRttP50Ms: round(percentile(rtts, 0.5), 2),
      commandRttP95Ms: round(percentile(rtts, 0.95), 2),
    };
  } finally {
    await op?.close();
    await diag.close();
    await broker.close();
  }
}

/** An endpoint with no call and one idle link: what an intercom is most of the day. */
function idleEndpoint(): ObservedEndpoint {
  return {
    id: 'bench',
    config: EndpointConfig.parse({
      endpoint: { id: 'bench', kind: 'intercom', label: 'Bench' },
      access: { url: 'ws://127.0.0.1:1/access', serverPublicKey: 'A'.repeat(43), username: 'bench', password: 'unused' },
      stateDir: '/nonexistent',
    }),
    bus: new EventBus<EndpointEvents>(),
    calls: { snapshot: () => null, push: () => Promise.reject(new Error('no call')), doNotDisturb: false, setDoNotDisturb: () => undefined },
    links: { links: () => [] },
    media: {
      stats: () => ({ framesCaptured: 0, framesSent: 0, packetsSent: 0, framesReceived: 0, framesDecoded: 0, framesConcealed: 0, framesDropped: 0, playbackSwitches: 0 }),
    },
  };
}

/**
 * The quietest of three windows of `seconds / 3`: this machine is shared, and the process has
 * sporadic work of its own (the TypeScript loader, GC) that has nothing to do with diagnostics.
 */
async function quietest(seconds: number): Promise<number> {
  const w: number[] = [];
  for (let i = 0; i < 3; i++) w.push(await cpuOver(seconds / 3));
  return Math.min(...w);
}

/** Process CPU (every thread, µs resolution) over `seconds`, in ms per minute. */
async function cpuOver(seconds: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000 / ((performance.now() - t0) / 60_000);
}
