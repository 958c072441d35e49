/**
 * The logger every floor writes to: an interface, so the foundation, the drivers and the phone
 * page need no logging library. On node it is pino (platform/log.ts); in the page, the console.
 * Context goes in the first argument as fields, never into the message text.
 */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  level: string;
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

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

/** A logger that drops everything (a default where the caller passes none). */
export function nullLogger(): Logger {
  const drop: LogFn = () => undefined;
  const log: Logger = { level: 'silent', fatal: drop, error: drop, warn: drop, info: drop, debug: drop, trace: drop, child: () => log };
  return log;
}
