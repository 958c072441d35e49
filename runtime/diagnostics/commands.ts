import { z } from 'zod';
import { EndpointId } from '../../core/protocol/common.ts';
import { describeIssues, MAX_MESSAGE_BYTES } from '../../core/protocol/validate.ts';
import { SweepError, toWireError, type WireError } from '../../core/errors.ts';
import type { LogRing } from '../util/log-ring.ts';
import type { OperatorAuth } from './auth.ts';
import type { ObservedEndpoint } from './observed.ts';
import type { ShellHost } from './shell.ts';

/**
 * Commands (Q7): request on `<prefix>/<device>/cmd`, one response in the envelope
 *   {correlationId?, command?, status:"ok", data} | {correlationId?, command?, status:"error", error:{code, message}}
 * A request is either plain `{correlationId?, command, args?}` (read-only commands only) or
 * signed `{correlationId?, signed: "<token>"}` (runtime/diagnostics/auth.ts), which every
 * command that changes the device needs.
 */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const CorrelationId = z.string().min(1).max(128);
const PlainRequest = z.strictObject({ correlationId: CorrelationId.optional(), command: z.string().min(1).max(32), args: z.record(z.string(), z.unknown()).optional() });
const SignedRequest = z.strictObject({ correlationId: CorrelationId.optional(), signed: z.string().min(1).max(8192) });

export const COMMANDS = {
  ping: { changes: false, args: z.strictObject({}) },
  getConfig: { changes: false, args: z.strictObject({}) },
  getLogs: { changes: false, args: z.strictObject({ lines: z.number().int().min(1).max(500).default(100) }) },
  listLinks: { changes: false, args: z.strictObject({}) },
  audioSelfTest: { changes: false, args: z.strictObject({ durationMs: z.number().int().min(50).max(5000).default(500) }) },
  setLogLevel: { changes: true, args: z.strictObject({ level: z.enum(LOG_LEVELS) }) },
  restart: { changes: true, args: z.strictObject({ reason: z.string().max(200).optional() }) },
  sweep: { changes: true, args: z.strictObject({ to: EndpointId.optional() }) },
  /** H7: do not disturb: a household ring skips this endpoint and invites are answered DO_NOT_DISTURB. */
  dnd: { changes: true, args: z.strictObject({ on: z.boolean() }) },
  shell: { changes: true, args: z.strictObject({ cols: z.number().int().min(10).max(500).default(80), rows: z.number().int().min(5).max(200).default(24) }) },
  shellClose: { changes: true, args: z.strictObject({ session: z.string().min(1).max(64) }) },
} as const;
export type CommandName = keyof typeof COMMANDS;
type Args<C extends CommandName> = z.output<(typeof COMMANDS)[C]['args']>;

export type CommandResponse =
  | { correlationId?: string; command?: string; status: 'ok'; data: unknown }
  | { correlationId?: string; command?: string; status: 'error'; error: WireError };

/** Exit code of `restart`: systemd's `Restart=on-failure` (or `RestartForceExitStatus=75`) starts the runtime again. */
export const RESTART_EXIT_CODE = 75;

export interface CommandContext {
  endpoint: ObservedEndpoint;
  auth: OperatorAuth;
  shell: ShellHost | undefined;
  logRing: LogRing | undefined;
  getLogLevel: () => string;
  setLogLevel: (level: string) => void;
  restart: (code: number, reason: string) => void;
  now: () => number;
  session: () => number;
  shellTopics: (session: string) => { in: string; out: string };
  wait: (ms: number) => Promise<void>;
  mono: () => number;
}

/** Names whose values never leave the device (getConfig, Q10). */
const SECRET = /pass(word)?|secret|token|private|^key$|keyFile/i;

export function redact(value: unknown, key = ''): unknown {
  if (key && SECRET.test(key) && value !== undefined) return '[redacted]';
  if (Array.isArray(value)) return value.map((v) => redact(v));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redact(v, k)]));
  }
  return value;
}

/** Validates and runs one command request; never throws: every failure is an error response. */
export class CommandHandler {
  constructor(private readonly ctx: CommandContext) {}

  async handle(payload: Buffer): Promise<CommandResponse> {
    let correlationId: string | undefined;
    let command: string | undefined;
    try {
      if (payload.length > MAX_MESSAGE_BYTES) throw new SweepError('TOO_LARGE', `request: ${payload.length} bytes, at most ${MAX_MESSAGE_BYTES} allowed`);
      let json: unknown;
      try {
        json = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new SweepError('INVALID_MESSAGE', 'request: not valid JSON');
      }
      if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SweepError('INVALID_MESSAGE', 'request: expected a JSON object');
      const raw = json as Record<string, unknown>;
      // Echo the correlation id even when something else is wrong, if it is usable.
      if (CorrelationId.safeParse(raw.correlationId).success) correlationId = raw.correlationId as string;
      let args: unknown;
      let signedBy: string | undefined;
      if ('signed' in raw) {
        const req = parse(SignedRequest, raw, 'request');
        const signed = this.ctx.auth.verifyCommand(req.signed, this.ctx.now());
        command = signed.command;
        args = signed.args;
        signedBy = signed.key;
      } else {
        const req = parse(PlainRequest, raw, 'request');
        command = req.command;
        args = req.args ?? {};
      }
      if (!isCommand(command)) {
        throw new SweepError('UNKNOWN_TYPE', `command: "${command}" is not one of ${Object.keys(COMMANDS).join(', ')}`);
      }
      if (COMMANDS[command].changes && !signedBy) {
        throw new SweepError('UNAUTHORIZED', `command: "${command}" changes the device and needs an operator signature (field "signed")`);
      }
      const data = await this.run(command, args, signedBy);
      return { ...(correlationId ? { correlationId } : {}), command, status: 'ok', data };
    } catch (err) {
      return { ...(correlationId ? { correlationId } : {}), ...(command ? { command } : {}), status: 'error', error: toWireError(err) };
    }
  }

  private async run(command: CommandName, rawArgs: unknown, signedBy: string | undefined): Promise<unknown> {
    const c = this.ctx;
    switch (command) {
      case 'ping':
        parse(COMMANDS.ping.args, rawArgs, 'args');
        return { pong: true, at: c.now(), session: c.session(), deviceId: c.endpoint.id };
      case 'getConfig':
        parse(COMMANDS.getConfig.args, rawArgs, 'args');
        return redact(c.endpoint.config);
      case 'getLogs': {
        const a: Args<'getLogs'> = parse(COMMANDS.getLogs.args, rawArgs, 'args');
        if (!c.logRing) throw new SweepError('NOT_FOUND', 'getLogs: this runtime keeps no recent log lines');
        return { lines: c.logRing.lines(a.lines) };
      }
      case 'listLinks':
        parse(COMMANDS.listLinks.args, rawArgs, 'args');
        return {
          links: c.endpoint.links.links().map((l) => ({
            peerId: l.peerId,
            linkId: l.transport.linkId,
            role: l.transport.role,
            open: !l.isClosed && l.transport.isOpen,
            malformed: l.malformedCount,
            // Issue 17: host, srflx or relay on each side: whether a call runs direct or through TURN.
            path: l.transport.selectedPath?.() ?? null,
          })),
        };
      case 'audioSelfTest': {
        const a: Args<'audioSelfTest'> = parse(COMMANDS.audioSelfTest.args, rawArgs, 'args');
        const before = c.endpoint.media.stats();
        const t0 = c.mono();
        await c.wait(a.durationMs);
        const after = c.endpoint.media.stats();
        const seconds = Math.max(1e-3, (c.mono() - t0) / 1000);
        const captured = after.framesCaptured - before.framesCaptured;
        const played = after.framesDecoded + after.framesConcealed - before.framesDecoded - before.framesConcealed;
        const audio = c.endpoint.config.audio;
        return {
          source: { driver: audio.source.driver, capturing: captured > 0, framesPerSecond: Math.round(captured / seconds) },
          sink: { driver: audio.sink.driver, playing: played > 0, framesPerSecond: Math.round(played / seconds) },
          media: after,
          call: c.endpoint.calls.snapshot()?.state ?? null,
        };
      }
      case 'setLogLevel': {
        const a: Args<'setLogLevel'> = parse(COMMANDS.setLogLevel.args, rawArgs, 'args');
        const previous = c.getLogLevel();
        c.setLogLevel(a.level);
        return { previous, level: a.level };
      }
      case 'restart': {
        const a: Args<'restart'> = parse(COMMANDS.restart.args, rawArgs, 'args');
        c.restart(RESTART_EXIT_CODE, a.reason ?? 'operator restart');
        return { restarting: true, exitCode: RESTART_EXIT_CODE };
      }
      case 'sweep': {
        const a: Args<'sweep'> = parse(COMMANDS.sweep.args, rawArgs, 'args');
        return c.endpoint.calls.push(a.to ? { to: a.to } : {});
      }
      case 'dnd': {
        const a: Args<'dnd'> = parse(COMMANDS.dnd.args, rawArgs, 'args');
        const previous = c.endpoint.calls.doNotDisturb;
        c.endpoint.calls.setDoNotDisturb(a.on);
        return { previous, doNotDisturb: a.on };
      }
      case 'shell': {
        const a: Args<'shell'> = parse(COMMANDS.shell.args, rawArgs, 'args');
        if (!c.shell) throw new SweepError('FORBIDDEN', 'shell: disabled on this device (diagnostics.shell.enabled is false)');
        const s = await c.shell.open(signedBy!, { cols: a.cols, rows: a.rows });
        return { session: s.id, topics: c.shellTopics(s.id) };
      }
      case 'shellClose': {
        const a: Args<'shellClose'> = parse(COMMANDS.shellClose.args, rawArgs, 'args');
        if (!c.shell?.current || c.shell.current.id !== a.session) throw new SweepError('NOT_FOUND', `shellClose.session: ${a.session} is not open`);
        c.shell.close(a.session);
        return { closed: a.session };
      }
    }
  }
}

function isCommand(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

function parse<S extends z.ZodType>(schema: S, data: unknown, what: string): z.output<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw new SweepError('INVALID_MESSAGE', `${what}: ${describeIssues(r.error)}`);
  return r.data;
}
