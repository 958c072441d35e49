/** A console-backed logger with the levels the shared RpcChannel uses; secrets are never passed to it. */
export interface WebLog {
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

export function consoleLog(scope: string, verbose = false): WebLog {
  const line = (obj: unknown, msg?: string): unknown[] => (msg === undefined ? [`[${scope}]`, obj] : [`[${scope}] ${msg}`, obj]);
  return {
    debug: (obj, msg) => {
      if (verbose) console.debug(...line(obj, msg));
    },
    info: (obj, msg) => console.info(...line(obj, msg)),
    warn: (obj, msg) => console.warn(...line(obj, msg)),
    error: (obj, msg) => console.error(...line(obj, msg)),
  };
}
