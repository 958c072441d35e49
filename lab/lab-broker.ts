import { DiagnosticsConfig } from '../firmware-config/diagnostics-config.ts';
import type { World } from './world.ts';
import type { Logger } from '../platform/log.ts';
import { startDiagnostics, type Diagnostics } from '../runtime/diagnostics/diagnostics.ts';
import { startLoopbackBroker } from '../runtime/diagnostics/loopback-broker.ts';

export interface LabDiagnostics {
  /** mqtt://127.0.0.1:<port>, MQTT 3.1.1 (aedes). */
  url: string;
  diagnostics: Map<string, Diagnostics>;
  close(): Promise<void>;
}

/**
 * The lab's broker: aedes on loopback (127.0.0.1 only, whatever host the lab serves on), with
 * diagnostics attached to every endpoint of the world. Read-only: the lab configures no operator
 * keys and no shell. Watch with `sweep diag watch --url <url> --protocol 4`.
 */
export async function startLabDiagnostics(world: World, log: Logger): Promise<LabDiagnostics> {
  const broker = await startLoopbackBroker();
  const url = broker.url;
  const diagnostics = new Map<string, Diagnostics>();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.all([...diagnostics.values()].map((d) => d.close()));
    await broker.close();
  };
  try {
    const config = DiagnosticsConfig.parse({ url, protocolVersion: 4, telemetryIntervalMs: 10_000, reconnectMs: 1000 });
    for (const [id, we] of world.endpoints) diagnostics.set(id, await startDiagnostics(we.endpoint, config, { log: log.child({ endpoint: id }) }));
  } catch (err) {
    await close();
    throw err;
  }
  return { url, diagnostics, close };
}
