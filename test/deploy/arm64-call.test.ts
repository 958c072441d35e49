import t from 'tap';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FRAME_SAMPLES } from '../../drivers/audio/audio.ts';
import { filePlaybackPcm } from '../../drivers/audio/alsa-devices.ts';
import { dominantFrequency, rmsDbfsOf } from '../../drivers/audio/simulated.ts';
import { PanelEmulator } from '../../drivers/buttons/panel-emulator.ts';
import type { EndpointConfigInput } from '../../firmware-config/endpoint-config.ts';
import { ChildEndpoint } from '../../lab/child-endpoint.ts';
import { silentLogger } from '../../platform/log.ts';
import { AccessServer } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { createAlsaFixture, hasAlsaTools, readRaw, tone } from '../helpers/alsa.ts';
import { SocatPair } from '../helpers/socat.ts';
import { arm64Bundle, arm64Missing, cleanup, qemu, unpack, which } from './arm64-helpers.ts';

/**
 * Issue 13, "a real call on arm64": the artefact a device runs (the arm64 bundle's own Node under
 * qemu-aarch64, its arm64 node-datachannel, Opus, serialport and alsa-capture) as the intercom,
 * configured from firmware-config/profiles/intercom.json with only the installer's edits (access
 * fields, ALSA device names, the serial port). ALSA capture through a file-plugin device fed in
 * real time (arm64 libasound2 from multiarch), playback through aplay into a file device, the
 * panel on a socat pty pair. It logs in to an access server on loopback, rings the x86 handset
 * when its bell is pressed, the handset answers, pushes the call to the phone and pulls it back,
 * the tone is heard both ways on every leg, and the handset's door button pulses the relay.
 */
const PROFILE = fileURLToPath(new URL('../../firmware-config/profiles/intercom.json', import.meta.url));
const missing = [arm64Missing(), ...((await hasAlsaTools()) ? [] : ['aplay, arecord, mkfifo (apt-get install alsa-utils)']), ...(which('socat') ? [] : ['socat'])].filter(Boolean);
// Building the bundle (when its inputs changed), starting arm64 Node under qemu and a call with two sweeps.
t.setTimeout(900_000);

const HZ = { intercom: 1000, handset: 550, phone: 770 } as const;
type Line = Record<string, unknown>;
const isEvent = (type: string, f: (l: Line) => boolean = () => true) => (l: Line) => l.event === type && f(l);
const call = (l: Line) => l.call as { state: string; peer: { endpointId: string } } | null | undefined;

/** 20 ms frames of `pcm` whose dominant frequency is each of `hz` (frames quieter than -40 dBFS are silence). */
function framesAt(pcm: Int16Array, hz: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = Object.fromEntries(hz.map((h) => [h, 0]));
  const candidates = Array.from({ length: 79 }, (_, i) => 100 + 50 * i).concat([550, 770]);
  for (let i = 0; (i + 1) * FRAME_SAMPLES <= pcm.length; i++) {
    const frame = pcm.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES);
    if (rmsDbfsOf(frame) < -40) continue;
    const f = dominantFrequency(frame, candidates);
    const near = hz.find((h) => f !== null && Math.abs(f - h) <= 25);
    if (near !== undefined) counts[near]!++;
  }
  return counts;
}

void t.test('the arm64 bundle under qemu as the intercom: ALSA both ways, rings the x86 handset, swept to the phone and back, tone both ways, door relay pulsed', { skip: missing.length ? missing.join('; ') : false }, async (t) => {
  const t0 = performance.now();
  const bundle = await arm64Bundle();
  if ('skip' in bundle) {
    t.pass('arm64 call', { skip: bundle.skip });
    return;
  }
  if (bundle.buildMs !== null) t.comment(`arm64 bundle built in ${(bundle.buildMs / 1000).toFixed(1)} s`);
  const dir = await mkdtemp(join(tmpdir(), 'sweep-arm64-call-'));
  t.teardown(() => cleanup(dir));
  const root = await unpack(bundle.tarball, join(dir, 'opt'));

  // The access server on loopback: the door's account, alice's (handset and phone), buddies.
  const passwords = { door: randomBytes(18).toString('base64url'), alice: randomBytes(18).toString('base64url') };
  const server = await AccessServer.start({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, log: silentLogger() });
  t.teardown(() => server.close());
  await server.store.createAccount('door', 'Front door', await hashPassword(passwords.door));
  await server.store.createAccount('alice', 'Alice', await hashPassword(passwords.alice));
  await server.store.addBuddies('door', 'alice');

  // ALSA file-plugin devices: the intercom's microphone hears a 1 kHz tone fed in real time; every
  // endpoint's speaker writes into a file of its own.
  const fx = await createAlsaFixture(tone(HZ.intercom, 1));
  t.teardown(() => fx.close());
  const pacer = fx.pacer(tone(HZ.intercom, 1));
  t.teardown(() => pacer.close());
  const heard = { intercom: join(fx.dir, 'intercom.raw'), handset: join(fx.dir, 'handset.raw'), phone: join(fx.dir, 'phone.raw') };
  await appendFile(fx.configPath, Object.entries(heard).map(([who, file]) => filePlaybackPcm(`sweep_spk_${who}`, file)).join('\n') + '\n');

  // The panels: the intercom's (bell, relay) and the handset's (door button), each on a socat pair.
  const intercomWire = await SocatPair.create();
  t.teardown(() => intercomWire.close());
  const handsetWire = await SocatPair.create();
  t.teardown(() => handsetWire.close());
  const intercomPanel = await PanelEmulator.open(intercomWire.b);
  t.teardown(() => intercomPanel.close());
  const handsetPanel = await PanelEmulator.open(handsetWire.b);
  t.teardown(() => handsetPanel.close());

  const x86 = (id: string, kind: 'deskphone' | 'phone', frequencyHz: number, invites: 'auto' | 'ask', panel?: EndpointConfigInput['panel']) =>
    ChildEndpoint.start(
      {
        endpoint: { id, kind, label: id },
        access: { url: server.url, serverPublicKey: server.publicKeyRaw, username: 'alice', password: passwords.alice },
        stateDir: join(dir, id),
        network: { bindAddress: '127.0.0.1' },
        sweep: { timeoutMs: 5000, invites, pushTo: [] },
        audio: { source: { driver: 'simulated', frequencyHz }, sink: { driver: 'alsa', device: `sweep_spk_${kind === 'phone' ? 'phone' : 'handset'}` } },
        log: { level: 'warn' },
        ...(panel ? { panel } : {}),
      },
      join(dir, `${id}.json`),
      { timeoutMs: 60_000 },
    );
  const [handset, phone] = await Promise.all([
    x86('handset-1', 'deskphone', HZ.handset, 'ask', { device: { driver: 'serial', path: handsetWire.a }, buttons: [{ button: 'door', action: 'door' }] }),
    x86('phone', 'phone', HZ.phone, 'auto'),
  ]);
  t.teardown(() => Promise.all([handset.close(), phone.close()]));

  // The intercom: the shipped profile, with only what an installer edits.
  const profile = JSON.parse(await readFile(PROFILE, 'utf8')) as Record<string, Record<string, unknown>>;
  const etc = join(dir, 'etc');
  await mkdir(etc, { recursive: true });
  await writeFile(join(etc, 'secrets.json'), JSON.stringify({ password: passwords.door }), { mode: 0o600 });
  const intercomConfig = {
    ...profile,
    access: { ...profile.access, url: server.url, serverPublicKey: server.publicKeyRaw },
    stateDir: join(dir, 'var-lib-sweep'),
    network: { bindAddress: '127.0.0.1' },
    audio: { source: { ...profile.audio!.source as object, device: 'sweep_cap_paced' }, sink: { ...profile.audio!.sink as object, device: 'sweep_spk_intercom' } },
    panel: { ...profile.panel, device: { ...(profile.panel!.device as object), path: intercomWire.a } },
  };
  const tStart = performance.now();
  const intercom = await ChildEndpoint.start(intercomConfig as unknown as EndpointConfigInput, join(etc, 'sweep.json'), {
    timeoutMs: 240_000,
    command: { file: qemu!, args: [join(root, 'bin', 'node'), join(root, 'dist', 'sweep.mjs')] },
  });
  t.teardown(() => intercom.close(15_000));
  const startedMs = performance.now() - tStart;
  t.comment(`arm64 intercom up (keys made, logged in) in ${(startedMs / 1000).toFixed(1)} s under qemu`);
  t.equal((await intercom.command({ cmd: 'state' }, 60_000)).call, null, 'the arm64 intercom is logged in and idle');
  t.notMatch(intercom.stderr, /SIMULATED DRIVER/, 'no simulated driver on the device');

  // A visitor presses the bell: the intercom's panel (arm64 serialport) rings handset-1.
  await intercomPanel.waitFor(() => intercomPanel.received.length > 0, 60_000, 'the intercom talking to its panel');
  await intercomPanel.press('bell');
  await handset.waitFor(isEvent('call.state', (l) => call(l)?.state === 'ringing'), 60_000, 'the handset ringing');
  await handset.command({ cmd: 'answer' }, 60_000);
  await intercom.waitFor(isEvent('call.state', (l) => call(l)?.state === 'active'), 60_000, 'the intercom in the call');
  await new Promise((r) => setTimeout(r, 4000));

  // Push to the phone, talk, pull back, talk.
  await phone.waitFor(isEvent('link.state', (l) => l.peerId === 'door-1' && l.up === true), 60_000, 'the phone linked to the intercom ahead of need');
  await handset.command({ cmd: 'push', to: 'phone' }, 60_000);
  const pushed = await phone.waitFor(isEvent('sweep.finished', (l) => l.role === 'newcomer'), 60_000, 'push finished');
  t.equal(pushed.outcome, 'completed', 'swept to the phone');
  t.equal(call(await intercom.command({ cmd: 'state' }, 60_000))?.peer.endpointId, 'phone', 'the intercom talks to the phone');
  await new Promise((r) => setTimeout(r, 4000));
  const beforePull = phone.mark();
  await handset.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'phone' && l.call !== null), 30_000, 'the handset knows the phone call');
  await handset.command({ cmd: 'pull', from: 'phone' }, 60_000);
  await phone.waitFor(isEvent('call.state', (l) => call(l)?.state === 'ended'), 60_000, 'the phone leg ended', beforePull);
  t.equal(call(await intercom.command({ cmd: 'state' }, 60_000))?.peer.endpointId, 'handset-1', 'back on the handset');
  await new Promise((r) => setTimeout(r, 3000));

  // The handset's door button: the intercom pulses its relay (the profile's 500 ms).
  await handsetPanel.waitFor(() => handsetPanel.received.length > 0, 30_000, 'the handset talking to its panel');
  await handsetPanel.press('door');
  await intercomPanel.waitFor(() => intercomPanel.relayPulses.length > 0, 60_000, 'a relay pulse');
  t.same(intercomPanel.relayPulses.map((p) => p.ms), [500], 'the door relay pulsed once, 500 ms');

  const mark = handset.mark();
  await intercom.command({ cmd: 'hangup' }, 60_000);
  await handset.waitFor(isEvent('call.state', (l) => call(l)?.state === 'ended'), 60_000, 'the handset hung up', mark);
  await Promise.all([intercom.close(15_000), handset.close(), phone.close()]);
  t.equal(await intercom.exited, 0, 'the arm64 intercom exits cleanly');

  // What each speaker played: the intercom heard the handset, then the phone, then the handset
  // again; the handset and the phone heard the intercom's microphone.
  const [atIntercom, atHandset, atPhone] = await Promise.all([readRaw(heard.intercom), readRaw(heard.handset), readRaw(heard.phone)]);
  const i = framesAt(atIntercom, [HZ.handset, HZ.phone]);
  const h = framesAt(atHandset, [HZ.intercom]);
  const p = framesAt(atPhone, [HZ.intercom]);
  t.comment(`frames heard: intercom ${JSON.stringify(i)}, handset ${JSON.stringify(h)}, phone ${JSON.stringify(p)}`);
  t.ok(i[HZ.handset]! >= 50, `the intercom (arm64, ALSA playback) heard the handset's ${HZ.handset} Hz: ${i[HZ.handset]} frames`);
  t.ok(i[HZ.phone]! >= 50, `the intercom heard the phone's ${HZ.phone} Hz: ${i[HZ.phone]} frames`);
  t.ok(h[HZ.intercom]! >= 50, `the handset heard the intercom's ALSA microphone (${HZ.intercom} Hz): ${h[HZ.intercom]} frames`);
  t.ok(p[HZ.intercom]! >= 50, `the phone heard the intercom's ALSA microphone: ${p[HZ.intercom]} frames`);
  t.comment(`arm64 full call test: ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
});
