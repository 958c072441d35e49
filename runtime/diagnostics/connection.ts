import { readFile } from 'node:fs/promises';
import type { IClientOptions, MqttClient } from 'mqtt';
import { SweepError } from '../../core/errors.ts';

/** Broker settings shared by the device (config.diagnostics) and the operator CLI. */
export interface BrokerSettings {
  url: string;
  clientId: string;
  protocolVersion: 4 | 5;
  username?: string | undefined;
  password?: string | undefined;
  passwordFile?: string | undefined;
  tls?: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined; serverName?: string | undefined } | undefined;
  keepaliveS?: number;
  reconnectMs?: number;
}

async function readSecretFile(file: string, field: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new SweepError('INVALID_CONFIG', `${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** MQTT.js options; reads the password and TLS files (INVALID_CONFIG naming the field if one cannot be read). */
export async function brokerOptions(s: BrokerSettings, field = 'diagnostics'): Promise<IClientOptions> {
  const password = s.passwordFile ? (await readSecretFile(s.passwordFile, `${field}.passwordFile`)).toString('utf8').trim() : s.password;
  const tls = s.tls ?? {};
  const opts: IClientOptions = {
    clientId: s.clientId,
    protocolVersion: s.protocolVersion,
    clean: true,
    keepalive: s.keepaliveS ?? 30,
    reconnectPeriod: s.reconnectMs ?? 5000,
    connectTimeout: 10_000,
    // Diagnostics keeps its own bounded outbox; nothing unbounded piles up inside MQTT.js.
    queueQoSZero: false,
    resubscribe: true,
    ...(s.username !== undefined ? { username: s.username } : {}),
    ...(password !== undefined ? { password } : {}),
  };
  if (tls.caFile) opts.ca = await readSecretFile(tls.caFile, `${field}.tls.caFile`);
  if (tls.certFile) opts.cert = await readSecretFile(tls.certFile, `${field}.tls.certFile`);
  if (tls.keyFile) opts.key = await readSecretFile(tls.keyFile, `${field}.tls.keyFile`);
  if (tls.serverName) opts.servername = tls.serverName;
  if (s.url.startsWith('mqtts:')) opts.rejectUnauthorized = true;
  return opts;
}

/** Small request/response messages: no Nagle delay (with delayed ACKs it adds ~40 ms per hop). */
export function noDelay(client: MqttClient): void {
  (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
}
