import t from 'tap';
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ChildEndpoint } from '../../lab/child-endpoint.ts';

const CLI = fileURLToPath(new URL('../../runtime/cli.ts', import.meta.url));

function sweepCli(args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, ['--import', 'tsx', CLI, ...args], (err, stdout, stderr) => {
      if (err) reject(new Error(`sweep ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    child.stdin?.end(stdin ?? '');
  });
}

type Line = Record<string, unknown>;
const isEvent = (type: string, f: (l: Line) => boolean = () => true) => (l: Line) => l.event === type && f(l);
const callState = (l: Line) => (l.call as { state: string; peer: { endpointId: string } } | undefined);

void t.test('access server and three endpoint processes run a push and a pull sweep', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-mp-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const data = join(dir, 'server');
  const passwords = { alice: randomBytes(18).toString('base64url'), door: randomBytes(18).toString('base64url') };
  await sweepCli(['server', 'account', 'add', 'alice', '--display', 'Alice', '--password-stdin', '--data', data], passwords.alice);
  await sweepCli(['server', 'account', 'add', 'door', '--display', 'Front door', '--password-stdin', '--data', data], passwords.door);
  await sweepCli(['server', 'buddy', 'add', 'alice', 'door', '--data', data]);

  const server = spawn(process.execPath, ['--import', 'tsx', CLI, 'server', 'serve', '--data', data, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const serverExited = new Promise((r) => server.once('exit', r));
  t.teardown(async () => {
    server.kill('SIGTERM');
    await serverExited;
  });
  const { url, publicKey } = await new Promise<{ url: string; publicKey: string }>((resolve, reject) => {
    let url = '';
    const timer = setTimeout(() => reject(new Error('server did not print its url')), 20_000);
    createInterface({ input: server.stdout }).on('line', (line) => {
      const u = /listening on (\S+)/.exec(line);
      if (u) url = u[1]!;
      const k = /public key: (\S+)/.exec(line);
      if (k && url) {
        clearTimeout(timer);
        resolve({ url, publicKey: k[1]! });
      }
    });
  });

  const endpoint = (id: string, kind: 'intercom' | 'deskphone' | 'phone', account: 'alice' | 'door', frequencyHz: number, invites: 'auto' | 'ask') =>
    ChildEndpoint.start(
      {
        endpoint: { id, kind, label: id },
        access: { url, serverPublicKey: publicKey, username: account, password: passwords[account] },
        stateDir: join(dir, id),
        sweep: { timeoutMs: 3000, invites, pushTo: [] },
        audio: { source: { driver: 'simulated', frequencyHz }, sink: { driver: 'simulated' } },
        log: { level: 'warn' },
      },
      join(dir, `${id}.json`),
    );
  const [intercom, handset, phone] = await Promise.all([
    endpoint('intercom', 'intercom', 'door', 330, 'ask'),
    endpoint('handset', 'deskphone', 'alice', 550, 'ask'),
    endpoint('phone', 'phone', 'alice', 770, 'auto'),
  ]);
  t.teardown(() => Promise.all([intercom.close(), handset.close(), phone.close()]));

  await handset.waitFor(isEvent('link.state', (l) => l.peerId === 'phone' && l.up === true), 15_000, 'handset↔phone link');

  // The intercom rings the handset; the handset answers.
  await intercom.command({ cmd: 'call', to: 'handset', doorRights: true });
  await handset.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ringing'), 5000, 'ringing');
  await handset.command({ cmd: 'answer' });
  await phone.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === true), 10_000, 'phone linked to the intercom ahead of need');

  // Push: the handset's sweep button sends the call to the phone.
  await handset.command({ cmd: 'push', to: 'phone' });
  const pushed = await phone.waitFor(isEvent('sweep.finished', (l) => l.role === 'newcomer'), 10_000, 'push finished');
  t.equal(pushed.outcome, 'completed');
  await handset.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ended'), 5000, 'handset leg ended');
  let s = await intercom.command({ cmd: 'state' });
  t.equal(callState(s)?.state, 'active');
  t.equal(callState(s)?.peer.endpointId, 'phone', 'the intercom talks to the phone');

  // Pull: the handset takes the call back.
  const beforePull = phone.mark();
  await handset.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'phone' && l.call !== null), 5000, 'handset knows the phone call');
  await handset.command({ cmd: 'pull', from: 'phone' });
  await phone.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ended'), 5000, 'phone leg ended', beforePull);
  s = await intercom.command({ cmd: 'state' });
  t.equal(callState(s)?.peer.endpointId, 'handset', 'the intercom talks to the handset again');
  t.equal((callState(s) as unknown as { epoch: number }).epoch, 2);
  t.equal(callState(await handset.command({ cmd: 'state' }))?.state, 'active');
  t.equal(callState(await phone.command({ cmd: 'state' }))?.state, 'ended');

  const mark = handset.mark();
  await intercom.command({ cmd: 'hangup' });
  await handset.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ended'), 5000, 'handset hung up', mark);
  const codes = await Promise.all([intercom, handset, phone].map(async (e) => {
    await e.close();
    return e.exited;
  }));
  t.same(codes, [0, 0, 0], 'every endpoint process exits cleanly');
});
