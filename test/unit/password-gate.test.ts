import t from 'tap';
import { defaultPasswordConcurrency, PasswordGate } from '../../server/password-gate.ts';
import { ClientAddresses } from '../../server/client-address.ts';
import { SweepError } from '../../core/errors.ts';

/** A verify that waits until the test lets it finish. */
function controlled(): { check: (h: string, p: string) => Promise<boolean>; finish: () => void; started: () => number } {
  const waiting: Array<() => void> = [];
  let started = 0;
  return {
    check: (h, p) => {
      started += 1;
      return new Promise((resolve) => waiting.push(() => resolve(h === p)));
    },
    finish: () => waiting.shift()?.(),
    started: () => started,
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

void t.test('verify beyond concurrency waits its turn and beyond the queue throws RATE_LIMITED server busy (issue 12, A11)', async (t) => {
  const c = controlled();
  const gate = new PasswordGate({ concurrency: 2, queue: 1, random: () => 0 }, c.check);
  const runs = [gate.verify('a', 'a'), gate.verify('b', 'x'), gate.verify('c', 'c')];
  // A17: the three checks in hand, 50 ms each until one is timed, on two slots.
  await t.rejects(gate.verify('d', 'd'), { code: 'RATE_LIMITED', message: /server busy: 3 password checks in progress \(at most 2 at once, 1 waiting\); retry after 1 s/, retryAfterMs: 75 });
  await tick();
  t.equal(c.started(), 2, 'two run, one waits');
  c.finish();
  await tick();
  t.equal(c.started(), 3, 'the waiting one takes the freed slot');
  c.finish();
  c.finish();
  t.same(await Promise.all(runs), [true, false, true]);
  t.equal(gate.checked, 3);
  t.equal(gate.refusedBusy, 1);
  const later = gate.verify('e', 'e');
  await tick();
  t.equal(c.started(), 4, 'no slot leaked: a later check starts at once');
  c.finish();
  t.equal(await later, true);
});

void t.test('verify whose turn comes while cheaper logins need the cores rejects with their refusal, runs no check and hands its slot on (A11, issue 16)', async (t) => {
  const c = controlled();
  let busy: SweepError | undefined;
  const gate = new PasswordGate({ concurrency: 1, queue: 4, random: () => 0, yieldTo: () => busy }, c.check);
  const first = gate.verify('a', 'a');
  const queued = gate.verify('b', 'b');
  await tick();
  // Admitted while the node was quiet; then a storm's crowd took every login slot.
  busy = new SweepError('RATE_LIMITED', 'server busy with logins (32 in progress, 900 waiting, none longer than 5 s); retry after 3 s', { retryAfterMs: 2600 });
  c.finish();
  t.equal(await first, true, 'the check already running ends as usual');
  await t.rejects(queued, { code: 'RATE_LIMITED', retryAfterMs: 2600 });
  t.equal(c.started(), 1, 'the queued check did not run');
  busy = undefined;
  const later = gate.verify('c', 'c');
  await tick();
  t.equal(c.started(), 2, 'its slot was handed on');
  c.finish();
  t.equal(await later, true);
});

void t.test('PasswordGate with a bad concurrency throws INVALID_CONFIG naming the option', async (t) => {
  t.throws(() => new PasswordGate({ concurrency: 0 }), { code: 'INVALID_CONFIG', message: /passwordChecks\.concurrency: 0/ });
  t.throws(() => new PasswordGate({ queue: -1 }), { code: 'INVALID_CONFIG', message: /passwordChecks\.queue/ });
});

void t.test('resolve with X-Forwarded-For uses it only from a trusted proxy, rightmost untrusted hop (A11)', async (t) => {
  const a = new ClientAddresses(['10.0.0.2', '192.168.0.0/16', '::1']);
  t.equal(a.resolve('::ffff:10.0.0.2', '203.0.113.9'), '203.0.113.9');
  t.equal(a.resolve('10.0.0.2', '198.51.100.1, 203.0.113.9, 192.168.4.4'), '203.0.113.9', 'trusted hops are skipped');
  t.equal(a.resolve('::1', ['198.51.100.1', '2001:db8::7']), '2001:db8::7', 'several headers are one list');
  t.equal(a.resolve('10.0.0.3', '203.0.113.9'), '10.0.0.3', 'an untrusted peer is the client');
  t.equal(a.resolve('10.0.0.2', undefined), '10.0.0.2');
  t.equal(a.resolve('10.0.0.2', 'not-an-ip'), '10.0.0.2', 'garbage is not believed');
  t.equal(new ClientAddresses().resolve('127.0.0.1', '203.0.113.9'), '127.0.0.1', 'no proxies configured: the header is ignored');
});

void t.test('ClientAddresses with a malformed entry throws INVALID_CONFIG naming it', async (t) => {
  t.throws(() => new ClientAddresses(['10.0.0.1', 'proxy.local']), { code: 'INVALID_CONFIG', message: /trustedProxies\[1\]: "proxy.local" is not an IP address or CIDR range/ });
  t.throws(() => new ClientAddresses(['10.0.0.0/33']), { code: 'INVALID_CONFIG' });
});

void t.test('defaultPasswordConcurrency leaves one core to the event loop: cores - 1, at least 1, at most 2 (A11)', async (t) => {
  t.same([1, 2, 3, 4, 16].map((cores) => defaultPasswordConcurrency(cores)), [1, 1, 2, 2, 2]);
});
