import t, { type Test } from 'tap';
import { commandSuite, type SuiteBroker } from '../helpers/diagnostics-suite.ts';
import { startAedes } from '../helpers/mqtt-brokers.ts';

async function aedes(t: Test): Promise<SuiteBroker> {
  const b = await startAedes(t);
  return { name: 'aedes', protocolVersion: 4, device: () => ({ url: b.url }), operator: () => ({ url: b.url, protocolVersion: 4 }) };
}

void t.test('diagnostics over aedes (MQTT 3.1.1, correlation id in the payload)', async (t) => {
  commandSuite(t, aedes);
});
