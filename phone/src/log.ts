import type { Logger, LogFn } from '../../core/log.ts';

/** The foundation's Logger on the browser console; secrets are never passed to it. */
export function consoleLog(scope: string, verbose = false, bindings: Record<string, unknown> = {}): Logger {
  const fn = (write: (...args: unknown[]) => void, enabled = true): LogFn =>
    ((obj: object | string, msg?: string): void => {
      if (!enabled) return;
      if (typeof obj === 'string') write(`[${scope}] ${obj}`, bindings);
      else write(msg === undefined ? `[${scope}]` : `[${scope}] ${msg}`, { ...bindings, ...obj });
    });
  return {
    level: verbose ? 'debug' : 'info',
    fatal: fn(console.error),
    error: fn(console.error),
    warn: fn(console.warn),
    info: fn(console.info),
    debug: fn(console.debug, verbose),
    trace: fn(console.debug, verbose),
    child: (more) => consoleLog(scope, verbose, { ...bindings, ...more }),
  };
}
