import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

/**
 * A fake systemd notify socket: a python3 process bound to a unix datagram socket that prints each
 * message it receives. `messages` holds them (BARRIER=1 handshakes dropped); `close()` stops python
 * and removes the directory (idempotent).
 */
export class FakeNotifySocket {
  readonly messages: string[] = [];
  private waiters: Array<() => void> = [];
  private constructor(
    readonly dir: string,
    private readonly proc: ChildProcess,
  ) {}

  get path(): string {
    return join(this.dir, 'notify.sock');
  }

  static async start(): Promise<FakeNotifySocket> {
    const dir = await mkdtemp(join(tmpdir(), 'sweep-notify-'));
    const proc = spawn('python3', ['-c', RECEIVER, join(dir, 'notify.sock')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const sock = new FakeNotifySocket(dir, proc);
    await new Promise<void>((resolve, reject) => {
      proc.once('error', reject);
      proc.once('exit', (code) => reject(new Error(`python3 exited ${code}`)));
      const rl = createInterface({ input: proc.stdout });
      rl.on('line', (line) => {
        if (line === 'bound') return resolve();
        const msg = JSON.parse(line) as string;
        if (msg === 'BARRIER=1') return;
        sock.messages.push(msg);
        for (const w of sock.waiters.splice(0)) w();
      });
    });
    return sock;
  }

  /** Resolves when `pred` holds for the messages so far; rejects after `timeoutMs`. */
  async waitFor(pred: (messages: string[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`notify socket: condition not met; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill();
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
