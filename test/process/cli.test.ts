import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../tools/cli.ts', import.meta.url));

function sweep(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

void t.test('sweep lab --demo runs the story unattended and ends with its JSON summary', async (t) => {
  const { code, stdout, stderr } = await sweep(['lab', '--demo']);
  t.equal(code, 0, stderr.slice(-2000));
  const last = stdout.trim().split('\n').at(-1)!;
  const summary = JSON.parse(last) as { sweeps: number; maxAudioGapMs: number; maxLoopStallMs: number; failures: number };
  t.equal(summary.sweeps, 2);
  t.equal(summary.failures, 0);
  t.ok(summary.maxLoopStallMs >= 0, `the lab's event loop stalled up to ${summary.maxLoopStallMs} ms`);
  // Make-before-break: at most three frame periods, plus what host load stalled the lab's loop.
  t.ok(summary.maxAudioGapMs > 0 && summary.maxAudioGapMs <= 60 + summary.maxLoopStallMs, `max audio gap ${summary.maxAudioGapMs} ms`);
  t.match(stdout, /phone\s+call active\s+with intercom/, 'the story shows the call on the phone');
  // H1, H2, H11: the bell's fan-out and the cancel of the endpoint that did not answer, with their ms.
  t.match(stdout, /intercom\s+ring alice: fan-out to (handset, phone|phone, handset)/);
  t.match(stdout, /intercom\s+ring handset\s+ringing\s+\+[\d.]+ms/);
  t.match(stdout, /intercom\s+ring handset\s+cancelled\s+\+[\d.]+ms \(answered\)/);
  t.match(stdout, /handset\s+call ended\s+with intercom \(answered on Smartphone \(simulated\)\)/);
  t.notMatch(stdout + stderr, /password"?\s*[:=]\s*"?[A-Za-z0-9_-]{10,}/, 'no password is printed');
});

void t.test('sweep with an unknown command or bad flag exits 2 with usage', async (t) => {
  const unknown = await sweep(['fly']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command "fly"/);
  const badPort = await sweep(['lab', '--port', 'x']);
  t.equal(badPort.code, 2);
  t.match(badPort.stderr, /--port: x is not a port/);
  const version = await sweep(['--version']);
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

void t.test('sweep endpoint with a bad config names the file, the field and what was allowed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'bad.json');
  await writeFile(
    file,
    JSON.stringify({
      endpoint: { id: 'handset', kind: 'toaster', label: 'x' },
      access: { url: 'ws://127.0.0.1:1/access', serverPublicKey: 'A'.repeat(43), username: 'alice', password: 'p' },
      stateDir: dir,
      colour: 'blue',
    }),
  );
  const res = await sweep(['endpoint', '--config', file]);
  t.equal(res.code, 2);
  t.match(res.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}: `));
  t.match(res.stderr, /endpoint\.kind: .*"deskphone"/, 'names the field and the allowed values');
  t.match(res.stderr, /colour/, 'an unknown key is refused');
});
