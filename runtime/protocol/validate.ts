import type { z } from 'zod';
import { SweepError } from '../util/errors.ts';

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
export function parseJsonText(text: string | Buffer | ArrayBuffer, what: string): unknown {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  if (size > MAX_MESSAGE_BYTES) {
    throw new SweepError('TOO_LARGE', `${what}: ${size} bytes, at most ${MAX_MESSAGE_BYTES} allowed`);
  }
  const str = typeof text === 'string' ? text : Buffer.from(text as ArrayBuffer).toString('utf8');
  try {
    return JSON.parse(str) as unknown;
  } catch {
    throw new SweepError('INVALID_MESSAGE', `${what}: not valid JSON`);
  }
}
