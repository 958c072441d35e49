import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { rawPublicKey } from '../platform/token.ts';
import { SweepError } from '../core/errors.ts';
import { signCommand, signShellInput } from '../runtime/diagnostics/auth.ts';
import type { CommandResponse } from '../runtime/diagnostics/commands.ts';
import { brokerOptions, noDelay, type BrokerSettings } from '../runtime/diagnostics/connection.ts';
import { DeviceTopics } from '../runtime/diagnostics/topics.ts';

export interface OperatorKey {
  privateKey: KeyObject;
  publicKeyRaw: string;
}

/** Reads an operator's Ed25519 private key (PEM, as written by `sweep diag keygen`). */
export async function readOperatorKey(file: string): Promise<OperatorKey> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new SweepError('INVALID_CONFIG', `--operator-key: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? ''}`);
  }
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new SweepError('INVALID_CONFIG', `--operator-key: ${file} is a ${privateKey.asymmetricKeyType} key, Ed25519 allowed`);
  return { privateKey, publicKeyRaw: rawPublicKey(createPublicKey(privateKey)) };
}

/**
 * The operator's side of the diagnostics protocol: one MQTT connection, requests with a
 * correlation id and a timeout, every pending request rejected CLOSED on close.
 */
export class OperatorClient {
  private readonly pending = new Map<string, { resolve: (r: CommandResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly subscribed = new Set<string>();
  private closed = false;

  private constructor(
    readonly client: MqttClient,
    readonly prefix: string,
    private readonly protocolVersion: 4 | 5,
  ) {
    noDelay(client);
    client.on('connect', () => noDelay(client));
    client.on('message', (topic, payload, packet) => {
      if (!topic.includes('/res')) return;
      let res: CommandResponse;
      try {
        res = JSON.parse(payload.toString('utf8')) as CommandResponse;
      } catch {
        return;
      }
      const id = packet.properties?.correlationData?.toString('utf8') ?? res.correlationId;
      const p = id ? this.pending.get(id) : undefined;
      if (!p || !id) return;
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve(res);
    });
  }

  /** Connects (rejects if the first connection fails within `timeoutMs`). */
  static async connect(settings: BrokerSettings & { prefix?: string }, extra: Partial<IClientOptions> = {}, timeoutMs = 10_000): Promise<OperatorClient> {
    const opts = { ...(await brokerOptions(settings, 'operator')), reconnectPeriod: 1000, connectTimeout: timeoutMs, ...extra };
    const client = mqtt.connect(settings.url, opts);
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', (err) => reject(new SweepError('UNAUTHORIZED', `broker refused the connection: ${err.message}`)));
        setTimeout(() => reject(new SweepError('TIMEOUT', `no connection to ${settings.url} within ${timeoutMs} ms`)), timeoutMs).unref();
      });
    } catch (err) {
      client.end(true);
      throw err;
    }
    return new OperatorClient(client, settings.prefix ?? 'sweep', settings.protocolVersion);
  }

  topics(device: string): DeviceTopics {
    return new DeviceTopics(this.prefix, device);
  }

  async subscribe(filters: string[]): Promise<void> {
    const todo = filters.filter((f) => !this.subscribed.has(f));
    if (!todo.length) return;
    await this.client.subscribeAsync(todo, { qos: 1 });
    for (const f of todo) this.subscribed.add(f);
  }

  /** Sends a command (signed with `key` if given) and resolves with the device's response. */
  async request(device: string, command: string, args: Record<string, unknown> = {}, opts: { key?: OperatorKey; timeoutMs?: number; ttlMs?: number; raw?: string | Buffer } = {}): Promise<CommandResponse> {
    if (this.closed) throw new SweepError('CLOSED', 'operator client closed');
    const t = this.topics(device);
    const correlationId = randomBytes(9).toString('base64url');
    const responseTopic = `${t.response}/${this.client.options.clientId ?? 'operator'}`;
    await this.subscribe([this.protocolVersion === 5 ? responseTopic : t.response]);
    const body = opts.raw ?? JSON.stringify(
      opts.key
        ? { correlationId, signed: signCommand({ ...opts.key, device, command, args, ...(opts.ttlMs ? { ttlMs: opts.ttlMs } : {}) }) }
        : { correlationId, command, args },
    );
    const timeoutMs = opts.timeoutMs ?? 5000;
    const stack = new Error().stack;
    const result = new Promise<CommandResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationId);
        const err = new SweepError('TIMEOUT', `${device}: no response to ${command} within ${timeoutMs} ms`);
        err.stack = `${err.stack ?? ''}\n${stack ?? ''}`;
        reject(err);
      }, timeoutMs);
      this.pending.set(correlationId, { resolve, reject, timer });
    });
    await this.client.publishAsync(t.command, body, {
      qos: 1,
      ...(this.protocolVersion === 5 ? { properties: { responseTopic, correlationData: Buffer.from(correlationId) } } : {}),
    });
    return result;
  }

  /** Sends signed shell input. */
  async shellInput(device: string, session: string, seq: number, data: Buffer, key: OperatorKey): Promise<void> {
    await this.client.publishAsync(this.topics(device).shellIn(session), signShellInput({ ...key, device, session, seq, data }), { qos: 1 });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SweepError('CLOSED', `operator client closed with request ${id} pending`));
    }
    this.pending.clear();
    await Promise.race([this.client.endAsync(), new Promise((r) => setTimeout(r, 1000).unref())]);
    this.client.end(true);
  }
}
