import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { z } from 'zod';
import type { Logger } from '../../platform/log.ts';

/**
 * A small JSON document in the device's state dir that outlives a restart. Written to a temp file,
 * synced, then renamed over the old one, so a power cut leaves the old document or the new one,
 * never half of one. One that cannot be read or does not match its schema is renamed aside
 * (`<file>.unreadable`, for a look) and named in the log: the device starts as if none was kept.
 */
export class StateFile<T> {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly schema: z.ZodType<T>,
    private readonly log: Logger,
  ) {}

  /** The kept value; undefined when none was kept or it was unreadable. Synchronous: read once at start. */
  read(): T | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.setAside(`cannot be read: ${(err as Error).message}`);
      return undefined;
    }
    let parsed: z.ZodSafeParseResult<T>;
    try {
      parsed = this.schema.safeParse(JSON.parse(text));
    } catch (err) {
      this.setAside(`is not JSON: ${(err as Error).message}`);
      return undefined;
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.setAside(`${issue?.path.join('.') || 'the document'}: ${issue?.message ?? 'does not match'}`);
      return undefined;
    }
    return parsed.data;
  }

  /**
   * Replaces the kept value. Synchronous on purpose: the documents are a few hundred bytes, and a
   * write that returns has reached the disk, so a crash right after loses nothing.
   */
  write(value: T): void {
    if (this.closed) return;
    const temp = `${this.path}.tmp`;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      const fd = openSync(temp, 'w', 0o600);
      try {
        writeSync(fd, JSON.stringify(value));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.path);
    } catch (err) {
      // A full or read-only disk must not stop calls: the value lives on in memory until the next write.
      this.log.warn({ file: this.path, err: (err as Error).message }, 'state not kept on disk');
    }
  }

  /** No writes after this (an endpoint closing). */
  close(): void {
    this.closed = true;
  }

  private setAside(why: string): void {
    const aside = `${this.path}.unreadable`;
    try {
      renameSync(this.path, aside);
    } catch {
      // Nothing to keep, or nowhere to keep it: the warning below still says what happened.
    }
    this.log.warn({ file: this.path, keptAs: aside, why }, 'kept state unreadable; starting without it');
  }
}
