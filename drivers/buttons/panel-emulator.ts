import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import { SweepError } from '../../core/errors.ts';
import { formatPanel, LineDecoder, PROTOCOL_VERSION, SEQ_MODULO, toHostMessage, type ButtonAction, type HostMessage, type LedPattern } from './line-protocol.ts';

/**
 * The microcontroller's side of docs/serial-protocol.md in TypeScript, on a serial port path (the
 * far end of a socat pty pair): what the reference sketch does, for tests, the benchmark and the
 * lab. It answers the host's HELLO, sends button lines, and records LED and relay commands.
 */
export class PanelEmulator {
  readonly leds = new Map<string, LedPattern>();
  readonly ledHistory: Array<{ led: string; pattern: LedPattern; atMono: number }> = [];
  readonly relayPulses: Array<{ ms: number; atMono: number }> = [];
  readonly received: HostMessage[] = [];
  readonly decoder = new LineDecoder(toHostMessage);
  #seq = 0;
  #closed = false;
  readonly #waiters = new Set<() => void>();

  private constructor(
    private readonly port: SerialPort,
    readonly firmware: string,
  ) {
    port.on('data', (chunk: Buffer) => {
      for (const m of this.decoder.push(chunk)) this.#onMessage(m);
    });
    port.on('error', () => undefined);
  }

  static async open(path: string, opts: { baudRate?: number; firmware?: string } = {}): Promise<PanelEmulator> {
    const port = new SerialPort({ path, baudRate: opts.baudRate ?? 115_200, autoOpen: false });
    await new Promise<void>((resolve, reject) =>
      port.open((err) => (err ? reject(new SweepError('OFFLINE', `panel emulator: cannot open ${path}: ${err.message}`)) : resolve())),
    );
    const emulator = new PanelEmulator(port, opts.firmware ?? 'emulator-1.0');
    // Like the sketch's setup(): a panel says hello when it starts (H2: the host replays the LEDs).
    await emulator.#hello();
    return emulator;
  }

  get isOpen(): boolean {
    return !this.#closed && this.port.isOpen;
  }

  /** Sends one button line; resolves with performance.now() just before it was written. */
  async press(button: string, action: ButtonAction = 'down'): Promise<number> {
    const line = formatPanel({ type: 'button', seq: this.#nextSeq(), button, action });
    const at = performance.now();
    await this.writeRaw(line);
    return at;
  }

  async heartbeat(): Promise<void> {
    await this.writeRaw(formatPanel({ type: 'heartbeat', seq: this.#nextSeq() }));
  }

  /** Raw bytes onto the wire: noise, split lines, anything. */
  writeRaw(data: string | Uint8Array): Promise<void> {
    if (!this.isOpen) return Promise.reject(new SweepError('CLOSED', 'panel emulator closed'));
    return new Promise<void>((resolve, reject) =>
      this.port.write(data, (err) => (err ? reject(new SweepError('OFFLINE', `panel emulator: write failed: ${err.message}`)) : resolve())),
    );
  }

  /** Resolves when `cond` holds after some command arrived (or now), rejects after `ms`. */
  waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new SweepError('TIMEOUT', `panel emulator: ${what} not seen within ${ms} ms`));
      }, ms);
      this.#waiters.add(check);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.port.removeAllListeners('data');
    if (this.port.isOpen) await new Promise<void>((resolve) => this.port.close(() => resolve()));
  }

  #hello(): Promise<void> {
    return this.writeRaw(formatPanel({ type: 'hello', seq: this.#nextSeq(), firmware: this.firmware, protocol: PROTOCOL_VERSION }));
  }

  #nextSeq(): number {
    const s = this.#seq;
    this.#seq = (s + 1) % SEQ_MODULO;
    return s;
  }

  #onMessage(m: HostMessage): void {
    this.received.push(m);
    const at = performance.now();
    switch (m.type) {
      case 'hello':
        this.#hello().catch(() => undefined);
        break;
      case 'led':
        this.leds.set(m.led, m.pattern);
        this.ledHistory.push({ led: m.led, pattern: m.pattern, atMono: at });
        break;
      case 'relay':
        this.relayPulses.push({ ms: m.ms, atMono: at });
        break;
      case 'heartbeat':
        break;
    }
    for (const w of [...this.#waiters]) w();
  }
}
