import { execFile } from 'node:child_process';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.ts';
import type { Logger } from '../platform/log.ts';

/**
 * systemd's service notification protocol (sd_notify(3)) for a `Type=notify` unit: READY=1 once
 * the endpoint is logged in, WATCHDOG=1 every half WatchdogSec, STOPPING=1 on shutdown.
 *
 * Node cannot send on an AF_UNIX datagram socket, so each message goes through the
 * `systemd-notify --pid=<our pid>` binary (the unit needs `NotifyAccess=all`, since the sender is
 * a child). Messages are sent one at a time in order; a failure is logged once and never fatal.
 * Without NOTIFY_SOCKET (not under systemd) every call does nothing.
 */
export interface SdNotifier {
  readonly enabled: boolean;
  /** Interval of WATCHDOG=1 pings, ms, or undefined without a watchdog. */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): void;
  status(text: string): void;
  stopping(): void;
  /** Stops the watchdog and waits for messages in flight; idempotent. */
  close(): Promise<void>;
}

export interface SdNotifyOptions {
  log: Logger;
  /** Default process.env; when it is process.env, the notify variables are removed from it so children do not inherit them. */
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  pid?: number;
  /** Default "systemd-notify". */
  command?: string;
}

export function createSdNotifier(opts: SdNotifyOptions): SdNotifier {
  const env = opts.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const pid = opts.pid ?? process.pid;
  const usec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID === undefined ? pid : Number(env.WATCHDOG_PID);
  const watchdogIntervalMs = socket && Number.isFinite(usec) && usec > 0 && watchdogPid === pid ? Math.max(1, Math.floor(usec / 2000)) : undefined;
  if (env === process.env) {
    delete process.env.NOTIFY_SOCKET;
    delete process.env.WATCHDOG_USEC;
    delete process.env.WATCHDOG_PID;
  }
  if (!socket) {
    return { enabled: false, watchdogIntervalMs: undefined, ready: () => {}, status: () => {}, stopping: () => {}, close: () => Promise.resolve() };
  }
  const clock = opts.clock ?? systemClock;
  const command = opts.command ?? 'systemd-notify';
  let chain = Promise.resolve();
  let warned = false;
  let closed = false;

  const send = (...fields: string[]): void => {
    if (closed) return;
    chain = chain.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(command, [`--pid=${pid}`, ...fields], { env: { PATH: env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: socket }, timeout: 5000 }, (err) => {
            if (err && !warned) {
              warned = true;
              opts.log.warn({ command, reason: err.message }, 'sd_notify failed; systemd will not see readiness or watchdog pings');
            }
            resolve();
          });
        }),
    );
  };

  let watchdog: TimerHandle | undefined;
  if (watchdogIntervalMs !== undefined) watchdog = clock.setInterval(() => send('WATCHDOG=1'), watchdogIntervalMs);

  return {
    enabled: true,
    watchdogIntervalMs,
    ready: (status) => send('--ready', ...(status ? [`--status=${status}`] : [])),
    status: (text) => send(`--status=${text}`),
    stopping: () => {
      if (watchdog) clock.clear(watchdog);
      watchdog = undefined;
      send('STOPPING=1');
    },
    close: async () => {
      if (watchdog) clock.clear(watchdog);
      watchdog = undefined;
      closed = true;
      await chain;
    },
  };
}
