import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Namespaces name the subsystem, not the file. */
export const NS = {
  access: 'access:client',
  server: 'server:access',
  relay: 'server:relay',
  link: 'p2p:link',
  links: 'p2p:links',
  rpc: 'p2p:rpc',
  media: 'media',
  call: 'session:call',
  sweep: 'session:sweep',
  endpoint: 'endpoint',
  lab: 'lab',
  driverAudio: 'driver:audio',
  driverPanel: 'driver:panel',
  panel: 'panel',
  bench: 'bench',
} as const;

/** Secrets never reach a log line, whatever object they ride in. */
const REDACT = [
  'password',
  '*.password',
  '*.*.password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'privateKey',
  '*.privateKey',
  'certificate',
  '*.certificate',
  '*.*.certificate',
  'grant.signature',
  '*.grant.signature',
];

export interface LogOptions {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options = {
    level: opts.level ?? process.env.SWEEP_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
    base: opts.name ? { name: opts.name } : {},
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything: for tests that assert on behaviour, not logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
