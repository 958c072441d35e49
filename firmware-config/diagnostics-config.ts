import { z } from 'zod';
import { SigningKey } from '../core/protocol/common.ts';

/**
 * Remote diagnostics over MQTT (docs/mqtt.md). Absent from the endpoint config = off.
 * Unknown keys are refused; everything that can be defaulted is.
 */
export const DiagnosticsConfig = z.strictObject({
  /** mqtt://host:port or mqtts://host:port (TLS). */
  url: z.string().regex(/^mqtts?:\/\/[^\s/@]+(:\d+)?\/?$/, 'an mqtt:// or mqtts:// URL such as mqtts://broker.example:8883 (credentials go in username and password)'),
  /** The device id in the topic tree; defaults to the endpoint id. */
  deviceId: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$/, 'letters, digits, "_" and "-" (no MQTT wildcards or "/")')
    .optional(),
  /** The MQTT client id; defaults to "sweep-<deviceId>". */
  clientId: z.string().min(1).max(64).optional(),
  /** 5 for brokers that speak MQTT 5 (mosquitto 2, EMQX), 4 for MQTT 3.1.1 ones (aedes). */
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  username: z.string().min(1).max(128).optional(),
  /** The broker password; prefer passwordFile so the config can be shared without it. */
  password: z.string().min(1).max(256).optional(),
  passwordFile: z.string().min(1).optional(),
  tls: z
    .strictObject({
      /** PEM files: the CA that signed the broker's certificate, and an optional client certificate and key. */
      caFile: z.string().min(1).optional(),
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
      /** The name to check the broker's certificate against, when the URL host differs. */
      serverName: z.string().min(1).optional(),
    })
    .optional(),
  topicPrefix: z
    .string()
    .regex(/^[a-zA-Z0-9_-]+(\/[a-zA-Z0-9_-]+)*$/, 'topic levels of letters, digits, "_" and "-" separated by "/"')
    .default('sweep'),
  telemetryIntervalMs: z.number().int().min(1000).max(3_600_000).default(30_000),
  keepaliveS: z.number().int().min(5).max(600).default(30),
  reconnectMs: z.number().int().min(100).max(600_000).default(5000),
  /** Events kept while the broker is unreachable; the oldest are dropped beyond this (and counted). */
  outboxSize: z.number().int().min(1).max(10_000).default(200),
  /** Ed25519 public keys (raw, base64url) of the operators allowed to send commands that change the device. */
  operatorKeys: z.array(SigningKey).max(32).default([]),
  /** Longest lifetime of a signed command, ms (expiresAt - now); longer ones are refused. */
  maxCommandLifetimeMs: z.number().int().min(1000).max(3_600_000).default(300_000),
  shell: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Run the shell as this (unprivileged) user; required when the runtime runs as root. */
      user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a user name').optional(),
      command: z.string().min(1).default('/bin/sh'),
      idleTimeoutMs: z.number().int().min(1000).max(3_600_000).default(300_000),
      maxBytesPerSecond: z.number().int().min(64).max(10_000_000).default(16_384),
    })
    .default({ enabled: false, command: '/bin/sh', idleTimeoutMs: 300_000, maxBytesPerSecond: 16_384 }),
  homeAssistant: z
    .strictObject({
      enabled: z.boolean().default(false),
      discoveryPrefix: z.string().regex(/^[a-zA-Z0-9_-]+$/, 'one topic level').default('homeassistant'),
      /**
       * Q16: a door-open button on an intercom with a panel relay. It bypasses operator
       * signatures (whoever the broker ACL lets write its topic opens the door): off by default.
       */
      doorButton: z.boolean().default(false),
    })
    .default({ enabled: false, discoveryPrefix: 'homeassistant', doorButton: false }),
}).refine((c) => !(c.password !== undefined && c.passwordFile !== undefined), {
  message: 'set password or passwordFile, not both',
  path: ['passwordFile'],
});
export type DiagnosticsConfig = z.output<typeof DiagnosticsConfig>;
export type DiagnosticsConfigInput = z.input<typeof DiagnosticsConfig>;
