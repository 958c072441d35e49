import { z } from 'zod';
import { AccountName, EndpointId, EndpointKind, SigningKey } from '../core/protocol/common.ts';
import { DiagnosticsConfig } from './diagnostics-config.ts';
import { PanelConfig } from './panel-config.ts';

/**
 * The endpoint's settings: one schema is the source of validation, types and defaults.
 * Unknown keys are refused, never silently ignored.
 */
export const AudioSourceConfig = z.discriminatedUnion('driver', [
  z.strictObject({
    driver: z.literal('simulated'),
    /** Tone frequency in Hz; each endpoint of the lab has its own so a listener can tell who it hears. */
    frequencyHz: z.number().min(50).max(8000).default(440),
    levelDbfs: z.number().min(-60).max(0).default(-12),
  }),
  z.strictObject({
    driver: z.literal('alsa'),
    /** ALSA PCM name: `default`, `plughw:CARD=Device,DEV=0`, `hw:1,0`, or an echo-cancel PCM (README). */
    device: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_:,=.-]*$/, 'an ALSA PCM name such as default, hw:1,0 or plughw:CARD=Device').max(128).default('default'),
    /** Period asked of the device, frames at 48 kHz (960 = 20 ms = one Opus frame, one wake-up per frame); the device may choose another. */
    periodFrames: z.number().int().min(32).max(9600).default(960),
    /** Send-path noise gate: frames quieter than this (RMS dBFS) are sent as silence; absent = off. */
    noiseGateDbfs: z.number().min(-90).max(0).optional(),
  }),
]);

export const AudioSinkConfig = z.discriminatedUnion('driver', [
  z.strictObject({ driver: z.literal('simulated') }),
  z.strictObject({
    driver: z.literal('alsa'),
    device: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_:,=.-]*$/, 'an ALSA PCM name such as default, hw:1,0 or plughw:CARD=Device').max(128).default('default'),
    /** ALSA period and buffer, ms: the buffer is the latency playback adds at most. */
    periodMs: z.number().min(1).max(100).default(10),
    bufferMs: z.number().min(2).max(1000).default(30),
  }),
]);

/** The receive path's jitter buffer (runtime/media/jitter-buffer.ts), ms. */
export const JitterConfig = z.strictObject({
  minMs: z.number().int().min(0).max(200).default(20),
  targetMs: z.number().int().min(0).max(500).default(40),
  maxMs: z.number().int().min(20).max(1000).default(60),
});

export const EndpointConfig = z.strictObject({
  endpoint: z.strictObject({
    id: EndpointId,
    kind: EndpointKind,
    label: z.string().min(1).max(64),
  }),
  access: z.strictObject({
    /** ws://host:port/access or wss://… */
    url: z.string().regex(/^wss?:\/\/[^\s]+$/, 'a ws:// or wss:// URL'),
    /** Other nodes of the same access-server cluster, tried in turn after a lost connection. */
    fallbackUrls: z.array(z.string().regex(/^wss?:\/\/[^\s]+$/, 'a ws:// or wss:// URL')).max(16).optional(),
    /** The access server's Ed25519 public key (base64url), to check certificates (A3). */
    serverPublicKey: SigningKey,
    username: AccountName,
    password: z.string().min(1).max(256),
  }),
  /** Where the endpoint keeps its keys; created on first boot. */
  stateDir: z.string().min(1),
  network: z
    .strictObject({
      /** The local address ICE binds to (L2); 127.0.0.1 in the lab and tests, 0.0.0.0 (every address of the machine) on a device. */
      bindAddress: z
        .string()
        .refine((v) => z.ipv4().safeParse(v).success || z.ipv6().safeParse(v).success, 'an IPv4 or IPv6 address of this machine, such as 0.0.0.0 (every address), 127.0.0.1 or 192.168.1.20')
        .default('127.0.0.1'),
    })
    .default({ bindAddress: '127.0.0.1' }),
  sweep: z
    .strictObject({
      /** S4/S8: grant lifetime and step deadline, ms. */
      timeoutMs: z.number().int().min(200).max(60_000).default(3000),
      /** S10: accept pushed calls at once, or ring and ask. */
      invites: z.enum(['auto', 'ask']).default('ask'),
      /** S10: with invites "ask", how long a pushed call rings here before the sender is told "not answered", ms. */
      inviteTimeoutMs: z.number().int().min(1000).max(120_000).default(20_000),
      /** Push targets in order of preference (endpoint ids). */
      pushTo: z.array(EndpointId).default([]),
    })
    .default({ timeoutMs: 3000, invites: 'ask', inviteTimeoutMs: 20_000, pushTo: [] }),
  calls: z
    .strictObject({
      /** C1: an outgoing call nobody answers ends after this long. */
      ringTimeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
      /** C5: how long a call outlives the link to its other party (a takeover, S9, or a reloaded page reclaiming it, L7), ms. */
      linkLossGraceMs: z.number().int().min(1000).max(120_000).default(10_000),
      /** H7: do not disturb: this endpoint is not rung (invites are answered DO_NOT_DISTURB, a household ring skips it). */
      doNotDisturb: z.boolean().default(false),
      /** H7: a household ring that could ring nobody plays three falling tones on this endpoint's speaker. */
      nobodyHomeTone: z.boolean().default(true),
    })
    .default({ ringTimeoutMs: 60_000, linkLossGraceMs: 10_000, doNotDisturb: false, nobodyHomeTone: true }),
  audio: z
    .strictObject({ source: AudioSourceConfig, sink: AudioSinkConfig, jitter: JitterConfig.default({ minMs: 20, targetMs: 40, maxMs: 60 }) })
    .default({ source: { driver: 'simulated', frequencyHz: 440, levelDbfs: -12 }, sink: { driver: 'simulated' }, jitter: { minMs: 20, targetMs: 40, maxMs: 60 } }),
  links: z
    .strictObject({ idleCloseMs: z.number().int().min(1000).default(60_000), setupTimeoutMs: z.number().int().min(500).default(8000) })
    .default({ idleCloseMs: 60_000, setupTimeoutMs: 8000 }),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).default({ level: 'info' }),
  /** Remote diagnostics over MQTT (docs/mqtt.md); absent = off. */
  diagnostics: DiagnosticsConfig.optional(),
  /** Buttons, LEDs and the door relay on a serial line (docs/serial-protocol.md); absent = none. */
  panel: PanelConfig.optional(),
});
export type EndpointConfig = z.output<typeof EndpointConfig>;
export type EndpointConfigInput = z.input<typeof EndpointConfig>;

/** The config file format's version; older files are migrated on load (firmware-config/migrations.ts). */
export const CONFIG_VERSION = 2;

/**
 * The secrets file (`access.secretsFile`): JSON, mode 0600, kept apart from the config so the
 * config can be shared, diffed and baked into images without credentials. Written by `sweep provision`.
 */
export const SecretsFile = z.strictObject({
  /** The endpoint's password on the access server. */
  password: z.string().min(1).max(256),
});
export type SecretsFile = z.output<typeof SecretsFile>;

const AccessConfigFile = EndpointConfig.shape.access
  .extend({
    /** Inline password: accepted for the lab; devices use secretsFile. */
    password: z.string().min(1).max(256).optional(),
    /** Path of the secrets file (relative to the config file's directory, or absolute). */
    secretsFile: z.string().min(1).optional(),
  })
  .refine((a) => (a.password === undefined) !== (a.secretsFile === undefined), {
    message: 'set exactly one of password or secretsFile',
    path: ['secretsFile'],
  });

/**
 * The config file as written on disk (the published JSON Schema describes this): the runtime
 * config plus `configVersion`, an optional `$schema` for editors, and the password either inline
 * or in a secrets file. The loader turns it into an `EndpointConfig`.
 */
export const EndpointConfigFile = EndpointConfig.extend({
  /** Editors use this to find the JSON Schema; ignored by the runtime. */
  $schema: z.string().optional(),
  configVersion: z.literal(CONFIG_VERSION),
  access: AccessConfigFile,
});
export type EndpointConfigFile = z.output<typeof EndpointConfigFile>;
export type EndpointConfigFileInput = z.input<typeof EndpointConfigFile>;
