import t from 'tap';
import { InProcessBus } from '../../server/bus/in-process-bus.ts';
import { isRoutineBusStatus, NatsBus } from '../../server/bus/nats-bus.ts';
import { startNats } from '../helpers/nats.ts';
import { busContract } from './bus.contract.ts';

void t.test('in-process bus', async (t) => {
  busContract(t, (t) => {
    const bus = new InProcessBus();
    t.teardown(() => bus.close());
    return Promise.resolve([bus, bus]);
  });
});

void t.test('NATS bus', async (t) => {
  const nats = await startNats(t);
  busContract(t, async (t) => {
    const a = await NatsBus.connect({ url: nats.url, name: 'node-a' });
    const b = await NatsBus.connect({ url: nats.url, name: 'node-b' });
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    return [a, b];
  });

  void t.test('a bus whose NATS server restarts reconnects and tells its listeners', async (t) => {
    const bus = await NatsBus.connect({ url: nats.url, name: 'node-r' });
    t.teardown(() => bus.close());
    const reconnected = new Promise<void>((resolve) => bus.onReconnect(resolve));
    await nats.stop();
    await nats.start();
    await reconnected;
    t.ok(bus.connected);
    const sub = bus.subscribe('sweep.test.back', (m) => m.respond('back'));
    t.teardown(() => sub.unsubscribe());
    t.equal(await bus.request('sweep.test.back', '', 5000), 'back');
  });

  void t.test('connect to a URL that is not nats:// rejects INVALID_CONFIG naming it', async (t) => {
    await t.rejects(NatsBus.connect({ url: 'http://127.0.0.1:1', name: 'x' }), { code: 'INVALID_CONFIG', message: /"http:\/\/127.0.0.1:1" is not a nats:\/\/host:port URL/ });
  });
});

void t.test("the NATS client's ping every 2 s is routine (debug), a lost or regained bus is news (info)", async (t) => {
  // A node logged 'bus status' pingTimer at info every 2 s: half of an idle node's log.
  t.ok(isRoutineBusStatus('pingTimer'));
  t.ok(isRoutineBusStatus('reconnecting'));
  t.notOk(isRoutineBusStatus('disconnect'));
  t.notOk(isRoutineBusStatus('reconnect'));
  t.notOk(isRoutineBusStatus('error'));
});
