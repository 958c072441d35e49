import { pino, type DestinationStream } from 'pino';

// pino behind the foundation's Logger interface (core/log.ts).
export { NS, type Logger } from '../core/log.ts';

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

export function createLogger(opts: LogOptions = {}): pino.Logger {
  const options = {
    level: opts.level ?? process.env.SWEEP_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
    base: opts.name ? { name: opts.name } : {},
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything: for tests that assert on behaviour, not logs. */
export function silentLogger(): pino.Logger {
  return pino({ level: 'silent' });
}
