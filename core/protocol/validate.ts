import type { z } from 'zod';
import { SweepError } from '../errors.ts';

/** Largest JSON message accepted on any Sweep channel (access socket or peer `ctl`). */
export const MAX_MESSAGE_BYTES = 16 * 1024;

/** Formats a zod failure as "path: problem; path: problem", naming each bad field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`)
    .join('; ');
}

/** Validates `data` against `schema`; throws SweepError INVALID_MESSAGE naming the field path. */
export function parseWith<S extends z.ZodType>(schema: S, data: unknown, what: string): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new SweepError('INVALID_MESSAGE', `${what}: ${describeIssues(result.error)}`);
  }
  return result.data;
}

/** Parses raw text as JSON with a size cap; never throws anything but SweepError. */
export function parseJsonText(text: string | Uint8Array | ArrayBuffer, what: string): unknown {
  // Counted without Buffer: this file also runs in browsers.
  const size = typeof text === 'string' ? utf8Length(text) : text.byteLength;
  if (size > MAX_MESSAGE_BYTES) {
    throw new SweepError('TOO_LARGE', `${what}: ${size} bytes, at most ${MAX_MESSAGE_BYTES} allowed`);
  }
  const str = typeof text === 'string' ? text : utf8.decode(text);
  try {
    return JSON.parse(str) as unknown;
  } catch {
    throw new SweepError('INVALID_MESSAGE', `${what}: not valid JSON`);
  }
}

const utf8 = new TextDecoder();

/**
 * The UTF-8 size of `text` as far as the cap needs it: a UTF-16 unit is at most 3 bytes, so text
 * that short cannot exceed the cap and is not encoded (its length is returned instead).
 */
function utf8Length(text: string): number {
  return text.length * 3 <= MAX_MESSAGE_BYTES ? text.length : new TextEncoder().encode(text).byteLength;
}
