import type { Test } from 'tap';
import type { Bus } from '../../server/bus/bus.ts';

/** The bus contract (server/bus/bus.ts), run against the in-process bus and NATS. `open` gives two nodes' buses on one medium. */
export function busContract(t: Test, open: (t: Test) => Promise<[Bus, Bus]>): void {
  void t.test('publish reaches every subscriber of the subject asynchronously and in order', async (t) => {
    const [a, b] = await open(t);
    const got: string[] = [];
    const done = new Promise<void>((resolve) => {
      b.subscribe('sweep.test.x', (m) => {
        got.push(m.data);
        if (got.length === 100) resolve();
      });
    });
    await settle(b);
    for (let i = 0; i < 100; i++) a.publish('sweep.test.x', String(i));
    t.same(got, [], 'nothing is delivered inside publish');
    await done;
    t.same(got, Array.from({ length: 100 }, (_, i) => String(i)));
  });

  void t.test('request resolves with the reply of a subscriber on another node', async (t) => {
    const [a, b] = await open(t);
    b.subscribe('sweep.test.echo', (m) => m.respond(`re:${m.data}`));
    await settle(b);
    t.equal(await a.request('sweep.test.echo', 'hi', 5000), 're:hi');
  });

  void t.test('request with no subscriber rejects OFFLINE (no responders, A5)', async (t) => {
    const [a, b] = await open(t);
    await t.rejects(a.request('sweep.test.nobody', 'hi', 5000), { code: 'OFFLINE' });
    const sub = b.subscribe('sweep.test.gone', (m) => m.respond('x'));
    await settle(b);
    sub.unsubscribe();
    sub.unsubscribe();
    await settle(b);
    await t.rejects(a.request('sweep.test.gone', 'hi', 5000), { code: 'OFFLINE' }, 'after unsubscribe');
  });

  void t.test('request that nobody answers rejects TIMEOUT; close rejects pending requests', async (t) => {
    const [a, b] = await open(t);
    b.subscribe('sweep.test.silent', () => undefined);
    await settle(b);
    await t.rejects(a.request('sweep.test.silent', 'hi', 200), { code: 'TIMEOUT' });
    const pending = a.request('sweep.test.silent', 'hi', 10_000);
    await a.close();
    await t.rejects(pending, { code: /CLOSED|TIMEOUT/ });
    await t.rejects(a.request('sweep.test.silent', 'hi', 100), { code: 'CLOSED' });
    await a.close();
  });

  void t.test('flush resolves once every subscription made before it is live, for each of many callers in one turn (A4)', async (t) => {
    const [a, b] = await open(t);
    const subjects = Array.from({ length: 200 }, (_, i) => `sweep.test.f${i}`);
    const got = new Set<string>();
    const flushes: Array<Promise<void>> = [];
    // As a storm's logins do: each subscribes, then flushes before reading the store.
    for (const subject of subjects) {
      b.subscribe(subject, () => void got.add(subject));
      flushes.push(b.flush());
    }
    await Promise.all(flushes);
    for (const subject of subjects) a.publish(subject, 'x');
    await settle(a);
    await settle(b);
    t.equal(got.size, subjects.length, 'every subscription received what was published after its flush');
  });

  void t.test('a throwing subscriber does not stop delivery to the others', async (t) => {
    const [a, b] = await open(t);
    b.subscribe('sweep.test.t', () => {
      throw new Error('boom');
    });
    const got = new Promise<string>((resolve) => b.subscribe('sweep.test.t', (m) => resolve(m.data)));
    await settle(b);
    a.publish('sweep.test.t', 'ok');
    t.equal(await got, 'ok');
  });
}

/** Lets a subscription reach the server (NATS) before publishing to it: a request to itself round-trips. */
async function settle(bus: Bus): Promise<void> {
  const sub = bus.subscribe('sweep.test.settle', (m) => m.respond(''));
  await bus.request('sweep.test.settle', '', 5000);
  sub.unsubscribe();
}
