import type { DestinationStream, Logger } from 'pino';

/**
 * A pino destination that keeps the last `capacity` log lines in memory (already redacted by the
 * logger), for `getLogs` over diagnostics. Lines longer than `maxLineBytes` are cut.
 */
export class LogRing implements DestinationStream {
  private readonly buf: string[] = [];
  private next = 0;

  constructor(
    readonly capacity = 500,
    private readonly maxLineBytes = 2048,
  ) {}

  write(line: string): void {
    const text = line.endsWith('\n') ? line.slice(0, -1) : line;
    const kept = text.length > this.maxLineBytes ? `${text.slice(0, this.maxLineBytes)}…` : text;
    if (this.buf.length < this.capacity) this.buf.push(kept);
    else this.buf[this.next] = kept;
    this.next = (this.next + 1) % this.capacity;
  }

  /** The last `n` lines, oldest first. */
  lines(n = this.capacity): string[] {
    const ordered = this.buf.length < this.capacity ? this.buf : [...this.buf.slice(this.next), ...this.buf.slice(0, this.next)];
    return ordered.slice(Math.max(0, ordered.length - n));
  }
}

/** Writes every line to both destinations (the console and a LogRing). */
export function teeDestination(a: DestinationStream, b: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      a.write(line);
      b.write(line);
    },
  };
}

/**
 * Changing a pino logger's level does not reach the children made from it before. `trackLevels`
 * remembers every child made from `root` from now on, so `set(level)` changes them all.
 */
export class LevelControl {
  private readonly children: Array<WeakRef<Logger>> = [];
  constructor(private readonly root: Logger) {
    const previous = root.onChild;
    root.onChild = (child: Logger) => {
      previous(child);
      this.children.push(new WeakRef(child));
      if (this.children.length % 256 === 0) this.prune();
    };
  }
  get level(): string {
    return this.root.level;
  }
  set(level: string): void {
    this.root.level = level;
    this.prune();
    for (const ref of this.children) {
      const child = ref.deref();
      if (child) child.level = level;
    }
  }
  private prune(): void {
    for (let i = this.children.length - 1; i >= 0; i--) if (!this.children[i]!.deref()) this.children.splice(i, 1);
  }
}
