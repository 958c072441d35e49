import t, { type Test } from 'tap';
import { commandSuite, operatorKey, rig, startDevice, startOperator, startOperatorAsDevice, type SuiteBroker } from '../helpers/diagnostics-suite.ts';
import { FakeEndpoint } from '../helpers/fake-endpoint.ts';
import { mosquittoSkip, startMosquitto, startProxy, type Mosquitto } from '../helpers/mqtt-brokers.ts';

/** mosquitto 2 with TLS (throwaway CA), per-device passwords and the deploy/ ACL; MQTT 5. */
function suiteBroker(m: Mosquitto, url = m.url): SuiteBroker {
  return {
    name: 'mosquitto',
    protocolVersion: 5,
    device: (id) => ({ url, username: m.users[id]!.username, passwordFile: m.users[id]!.passwordFile, tls: { caFile: m.caFile } }),
    operator: () => ({ url: m.url, protocolVersion: 5, username: 'operator', passwordFile: m.users.operator!.passwordFile, tls: { caFile: m.caFile } }),
  };
}

async function mosquitto(t: Test): Promise<SuiteBroker> {
  return suiteBroker(await startMosquitto(t, ['intercom', 'handset']));
}

void t.test('diagnostics over mosquitto 2 (TLS, passwords, ACL, MQTT 5 response topic and correlation data)', { skip: mosquittoSkip }, async (t) => {
  commandSuite(t, mosquitto);

  void t.test('request with an MQTT 5 response topic is answered there with the correlation data (Q3)', async (t) => {
    const r = await rig(t, await mosquitto(t));
    r.seen.clear();
    const res = await r.op.request('intercom', 'ping');
    t.equal(res.status, 'ok');
    const m = r.seen.seen.find((x) => x.topic.startsWith('sweep/intercom/res/'));
    t.ok(m, `answered on the operator's response topic (${m?.topic})`);
    t.equal(m?.correlationData, res.correlationId, 'correlation data echoed');
  });

  void t.test('abrupt disconnect makes the broker publish the will lost; the device comes back online with a newer session (Q4)', async (t) => {
    const m = await startMosquitto(t, ['intercom']);
    const proxy = await startProxy(t, m.port);
    const broker = suiteBroker(m, proxy.url('mqtts'));
    const r = await rig(t, broker);
    const first = r.diag.session;
    r.seen.clear();
    proxy.dropAll();
    const lost = await r.seen.next((x) => x.topic === 'sweep/intercom/state' && x.json().state === 'lost', 5000, 'will');
    t.equal(lost.json().session, first, 'the will carries the dropped connection’s session');
    // (MQTT.js may first resend the old session's unacknowledged online: watchers order by session.)
    const online = await r.seen.next((x) => x.topic === 'sweep/intercom/state' && x.json().state === 'online' && (x.json().session as number) > first, 5000, 'online with a newer session');
    t.ok(online.retain === false && online.json().session === r.diag.session, 'the current session');
    const { op: late, seen: lateSeen } = await startOperator(t, broker, 'late');
    await late.subscribe(['sweep/intercom/state']);
    const retained = await lateSeen.next((x) => x.topic === 'sweep/intercom/state', 3000, 'retained');
    t.match(retained.json(), { state: 'online', session: r.diag.session }, 'retained state is the newest online');
  });

  void t.test('device publishing to another device’s topics is denied by the ACL', async (t) => {
    const m = await startMosquitto(t, ['intercom', 'handset']);
    const broker = suiteBroker(m);
    const { op: watcher, seen } = await startOperator(t, broker, 'watcher');
    await watcher.subscribe(['sweep/#']);
    const { op: rogue } = await startOperatorAsDevice(t, broker, 'intercom');
    const denied = await rogue.client.publishAsync('sweep/handset/state', JSON.stringify({ state: 'lost', session: 9e15, at: 0 }), { qos: 1, retain: true }).then(
      () => undefined,
      (err: Error) => err,
    );
    t.match(denied, { message: /[Nn]ot authori[sz]ed/ }, 'PUBACK reason: not authorized');
    await rogue.client.publishAsync('sweep/intercom/event/test', '{}', { qos: 1 });
    await seen.next((x) => x.topic === 'sweep/intercom/event/test', 3000, 'own topic delivered');
    t.notOk(seen.seen.some((x) => x.topic === 'sweep/handset/state'), 'nothing reached sweep/handset/state');
    // Nor may a device send commands to another.
    const cmd = await rogue.client.publishAsync('sweep/handset/cmd', '{}', { qos: 1 }).then(() => undefined, (err: Error) => err);
    t.ok(cmd instanceof Error, 'command to another device refused');
  });

  void t.test('homeAssistant enabled publishes retained discovery configs the ACL allows (Q14)', async (t) => {
    const m = await startMosquitto(t, ['intercom']);
    const broker = suiteBroker(m);
    const { op, seen } = await startOperator(t, broker, 'ha');
    await op.subscribe(['homeassistant/#']);
    await startDevice(t, broker, { config: { homeAssistant: { enabled: true } } });
    const cfg = await seen.next((x) => x.topic === 'homeassistant/sensor/intercom/call_state/config', 5000, 'discovery');
    t.match(cfg.json(), { unique_id: 'sweep_intercom_call_state', state_topic: 'sweep/intercom/telemetry', availability_topic: 'sweep/intercom/state' });
  });

  void t.test('broker restart: events while it is down are kept and delivered after reconnect', async (t) => {
    const m = await startMosquitto(t, ['intercom']);
    const proxy = await startProxy(t, m.port);
    const endpoint = new FakeEndpoint();
    const { diag } = await startDevice(t, suiteBroker(m, proxy.url('mqtts')), { endpoint, operatorKeys: [operatorKey().publicKeyRaw] });
    const deadline = Date.now() + 5000;
    while (!diag.connected && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    t.ok(diag.connected, 'connected at first');
    proxy.setBlocked(true);
    await m.stop();
    while (diag.connected) await new Promise((res) => setTimeout(res, 20));
    for (let i = 0; i < 3; i++) endpoint.bus.emit('access.state', { connected: i % 2 === 0 });
    t.equal(diag.outboxSize, 3, 'three events kept');
    t.ok(endpoint.calls.snapshot() === null && endpoint.bus.listenerCount() > 0, 'endpoint unaffected');
    await m.start();
    const { op, seen } = await startOperator(t, suiteBroker(m), 'after');
    await op.subscribe(['sweep/intercom/#']);
    proxy.setBlocked(false);
    const third = await seen.next((x) => x.topic === 'sweep/intercom/event/access.connected' && x.json().seq === 3, 8000, 'third event');
    t.ok(third);
    t.same(
      seen.seen.filter((x) => x.topic.includes('/event/access.')).map((x) => x.json().seq),
      [1, 2, 3],
      'all events, in order',
    );
    t.equal(diag.outboxSize, 0);
  });
});
