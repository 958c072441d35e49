import { SweepError } from '../../core/errors.ts';

/**
 * The panel line protocol (docs/serial-protocol.md), pure: no port, no timers. A line is
 *
 *     <seq>,<TYPE>[,<arg>…]*<HH>\n
 *
 * where `seq` is 0-255 (the sender's own counter, wrapping), TYPE is upper-case letters, args are
 * [a-z0-9_.-], and HH is the XOR of every byte before `*` as two upper-case hex digits. A CR
 * before the LF is tolerated. Lines longer than MAX_LINE bytes, lines with a bad checksum and
 * lines that do not parse are counted and dropped; nothing here ever throws on input bytes.
 */

export const PROTOCOL_VERSION = 1;
/** The longest line, newline included. */
export const MAX_LINE = 64;
export const SEQ_MODULO = 256;

export const BUTTON_ACTIONS = ['down', 'up', 'long'] as const;
export type ButtonAction = (typeof BUTTON_ACTIONS)[number];
export const LED_PATTERNS = ['off', 'on', 'ringing', 'incall', 'sweeping', 'error'] as const;
export type LedPattern = (typeof LED_PATTERNS)[number];
/** Button and LED names: what a config file and a sketch can both spell. */
export const NAME_RE = /^[a-z0-9_]{1,12}$/;
export const RELAY_MIN_MS = 20;
export const RELAY_MAX_MS = 10_000;

export interface Frame {
  seq: number;
  type: string;
  args: string[];
}

/** What the panel (the microcontroller) sends. */
export type PanelMessage =
  | { type: 'hello'; seq: number; firmware: string; protocol: number }
  | { type: 'button'; seq: number; button: string; action: ButtonAction }
  | { type: 'heartbeat'; seq: number };

/** What the host (the Pi) sends. */
export type HostMessage =
  | { type: 'hello'; seq: number; protocol: number }
  | { type: 'led'; seq: number; led: string; pattern: LedPattern }
  | { type: 'relay'; seq: number; ms: number }
  | { type: 'heartbeat'; seq: number };

export interface DecoderStats {
  /** Lines accepted and delivered. */
  accepted: number;
  /** Lines whose checksum did not match (noise). */
  badChecksum: number;
  /** Lines that are not `seq,TYPE,…*HH`, or carry bytes outside printable ASCII. */
  malformed: number;
  /** Well-framed lines with a good checksum that are no message we know (type or arguments). */
  invalid: number;
  /** Lines longer than MAX_LINE, dropped up to their newline. */
  overlong: number;
}

const FRAME_RE = /^(\d{1,3}),([A-Z]{1,8})((?:,[a-z0-9_.-]{1,16}){0,4})\*([0-9A-F]{2})$/;

export function checksumOf(text: string): number {
  let x = 0;
  for (let i = 0; i < text.length; i++) x ^= text.charCodeAt(i) & 0xff;
  return x;
}

export function encodeFrame(f: Frame): string {
  const body = [String(f.seq), f.type, ...f.args].join(',');
  const line = `${body}*${checksumOf(body).toString(16).toUpperCase().padStart(2, '0')}\n`;
  if (line.length > MAX_LINE) throw new SweepError('TOO_LARGE', `a panel line of ${line.length} bytes, at most ${MAX_LINE} allowed`);
  return line;
}

export type FrameError = 'malformed' | 'badChecksum';

/** One line (without its newline) to a frame, or the reason it is not one. */
export function parseLine(line: string): Frame | FrameError {
  const m = FRAME_RE.exec(line);
  if (!m) return 'malformed';
  const seq = Number(m[1]);
  if (seq >= SEQ_MODULO) return 'malformed';
  const body = line.slice(0, line.length - 3);
  if (checksumOf(body) !== parseInt(m[4]!, 16)) return 'badChecksum';
  return { seq, type: m[2]!, args: m[3] ? m[3].slice(1).split(',') : [] };
}

function bad(f: Frame, what: string): never {
  throw new SweepError('INVALID_MESSAGE', `panel line ${f.seq},${f.type}: ${what}`);
}

function arity(f: Frame, n: number): void {
  if (f.args.length !== n) bad(f, `${f.args.length} arguments, expected ${n}`);
}

function name(f: Frame, i: number, what: string): string {
  const v = f.args[i]!;
  if (!NAME_RE.test(v)) bad(f, `${what} "${v}" is not 1-12 of a-z 0-9 _`);
  return v;
}

function oneOf<T extends string>(f: Frame, i: number, allowed: readonly T[], what: string): T {
  const v = f.args[i]!;
  if (!(allowed as readonly string[]).includes(v)) bad(f, `${what} "${v}", expected one of ${allowed.join(', ')}`);
  return v as T;
}

function int(f: Frame, i: number, min: number, max: number, what: string): number {
  const v = f.args[i]!;
  const n = /^\d{1,6}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) bad(f, `${what} "${v}", expected an integer ${min}-${max}`);
  return n;
}

/** A frame from the panel to a PanelMessage; throws SweepError INVALID_MESSAGE naming the bad value. */
export function toPanelMessage(f: Frame): PanelMessage {
  switch (f.type) {
    case 'HELLO':
      arity(f, 2);
      return { type: 'hello', seq: f.seq, firmware: f.args[0]!, protocol: int(f, 1, 1, 999, 'protocol') };
    case 'BTN':
      arity(f, 2);
      return { type: 'button', seq: f.seq, button: name(f, 0, 'button'), action: oneOf(f, 1, BUTTON_ACTIONS, 'action') };
    case 'HB':
      arity(f, 0);
      return { type: 'heartbeat', seq: f.seq };
    default:
      return bad(f, `unknown type, expected HELLO, BTN or HB`);
  }
}

/** A frame from the host to a HostMessage (what a panel, or its emulator, parses). */
export function toHostMessage(f: Frame): HostMessage {
  switch (f.type) {
    case 'HELLO':
      arity(f, 1);
      return { type: 'hello', seq: f.seq, protocol: int(f, 0, 1, 999, 'protocol') };
    case 'LED':
      arity(f, 2);
      return { type: 'led', seq: f.seq, led: name(f, 0, 'led'), pattern: oneOf(f, 1, LED_PATTERNS, 'pattern') };
    case 'RELAY':
      arity(f, 1);
      return { type: 'relay', seq: f.seq, ms: int(f, 0, RELAY_MIN_MS, RELAY_MAX_MS, 'pulse ms') };
    case 'HB':
      arity(f, 0);
      return { type: 'heartbeat', seq: f.seq };
    default:
      return bad(f, `unknown type, expected HELLO, LED, RELAY or HB`);
  }
}

export function formatHost(m: HostMessage): string {
  switch (m.type) {
    case 'hello':
      return encodeFrame({ seq: m.seq, type: 'HELLO', args: [String(m.protocol)] });
    case 'led':
      return encodeFrame({ seq: m.seq, type: 'LED', args: [m.led, m.pattern] });
    case 'relay':
      return encodeFrame({ seq: m.seq, type: 'RELAY', args: [String(m.ms)] });
    case 'heartbeat':
      return encodeFrame({ seq: m.seq, type: 'HB', args: [] });
  }
}

export function formatPanel(m: PanelMessage): string {
  switch (m.type) {
    case 'hello':
      return encodeFrame({ seq: m.seq, type: 'HELLO', args: [m.firmware, String(m.protocol)] });
    case 'button':
      return encodeFrame({ seq: m.seq, type: 'BTN', args: [m.button, m.action] });
    case 'heartbeat':
      return encodeFrame({ seq: m.seq, type: 'HB', args: [] });
  }
}

/**
 * Splits a byte stream into messages. Feed it whatever each read returned (a line may arrive
 * split over any number of reads, several lines in one); `push` returns the messages completed by
 * this chunk, in order. Every rejected line is counted in `stats` and reported to `onReject`.
 */
export class LineDecoder<M> {
  readonly stats: DecoderStats = { accepted: 0, badChecksum: 0, malformed: 0, invalid: 0, overlong: 0 };
  readonly #buf = new Uint8Array(MAX_LINE);
  #len = 0;
  /** Inside an over-long line: drop everything up to the next newline. */
  #skipping = false;

  constructor(
    private readonly toMessage: (f: Frame) => M,
    private readonly onReject?: (kind: keyof DecoderStats, detail: string) => void,
  ) {}

  push(chunk: Uint8Array): M[] {
    const out: M[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0a) {
        if (this.#skipping) this.#skipping = false;
        else this.#line(out);
        this.#len = 0;
        continue;
      }
      if (this.#skipping) continue;
      if (this.#len >= MAX_LINE - 1) {
        this.#skipping = true;
        this.#len = 0;
        this.#reject('overlong', `a line longer than ${MAX_LINE} bytes`);
        continue;
      }
      this.#buf[this.#len++] = b;
    }
    return out;
  }

  /** Forgets a partial line (the port was reopened). */
  reset(): void {
    this.#len = 0;
    this.#skipping = false;
  }

  #line(out: M[]): void {
    let end = this.#len;
    if (end > 0 && this.#buf[end - 1] === 0x0d) end -= 1;
    if (end === 0) return; // blank lines are keep-alives of sorts: ignored, not counted
    let text = '';
    for (let i = 0; i < end; i++) {
      const c = this.#buf[i]!;
      if (c < 0x20 || c > 0x7e) {
        this.#reject('malformed', `a byte 0x${c.toString(16).padStart(2, '0')} outside printable ASCII`);
        return;
      }
      text += String.fromCharCode(c);
    }
    const frame = parseLine(text);
    if (frame === 'malformed') return this.#reject('malformed', `"${text}" is not seq,TYPE,args*HH`);
    if (frame === 'badChecksum') return this.#reject('badChecksum', `"${text}" fails its checksum`);
    let msg: M;
    try {
      msg = this.toMessage(frame);
    } catch (err) {
      return this.#reject('invalid', err instanceof Error ? err.message : String(err));
    }
    this.stats.accepted += 1;
    out.push(msg);
  }

  #reject(kind: Exclude<keyof DecoderStats, 'accepted'>, detail: string): void {
    this.stats[kind] += 1;
    this.onReject?.(kind, detail);
  }
}
