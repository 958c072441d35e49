import t from 'tap';
import { alsaConfigPath, checkPcmName, fileCapturePcm, filePlaybackPcm, parseDeviceList, speexEchoCancelPcm } from '../../drivers/audio/alsa-devices.ts';
import { NoiseGateSource } from '../../drivers/audio/noise-gate.ts';
import { SimulatedToneSource } from '../../drivers/audio/simulated.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

void t.test('speexEchoCancelPcm for a USB card builds an echo-cancelling speex PCM over it', async (t) => {
  const text = speexEchoCancelPcm({ slave: 'plughw:CARD=Device,DEV=0' });
  t.equal(
    text,
    ['pcm.sweep_ec {', '  type speex', '  slave.pcm "plughw:CARD=Device,DEV=0"', '  frames 960', '  echo yes', '  filter_length 4800', '  denoise yes', '  agc no', '}'].join('\n'),
  );
  t.match(speexEchoCancelPcm({ name: 'door_ec', slave: 'hw:1,0', filterLength: 9600, agc: true }), /pcm\.door_ec \{[\s\S]*filter_length 9600[\s\S]*agc yes/);
});

void t.test('speexEchoCancelPcm with a bad slave or filter length throws INVALID_CONFIG naming it', async (t) => {
  t.throws(() => speexEchoCancelPcm({ slave: 'hw:1"0' }), { code: 'INVALID_CONFIG', message: /hw:1"0/ });
  t.throws(() => speexEchoCancelPcm({ slave: 'hw:1,0', filterLength: 10 }), { code: 'INVALID_CONFIG', message: /filterLength 10/ });
});

void t.test('fileCapturePcm and filePlaybackPcm build file-plugin PCMs', async (t) => {
  t.match(fileCapturePcm('cap', '/tmp/in.raw'), /type file[\s\S]*slave.pcm "null"[\s\S]*infile "\/tmp\/in.raw"/);
  t.match(filePlaybackPcm('play', '/tmp/out.raw'), /type file[\s\S]*file "\/tmp\/out.raw"/);
  t.throws(() => filePlaybackPcm('play', '/tmp/a"b'), { code: 'INVALID_CONFIG' });
  t.equal(alsaConfigPath('/x/asoundrc'), '/usr/share/alsa/alsa.conf:/x/asoundrc');
});

void t.test('checkPcmName with usual names accepts them and refuses shell-ish ones', async (t) => {
  for (const n of ['default', 'hw:1,0', 'plughw:CARD=Device,DEV=0', 'sweep_ec', 'sysdefault:CARD=sndrpihifiberry']) t.equal(checkPcmName(n, 'x'), n);
  t.throws(() => checkPcmName('hw:0; reboot', 'audio.sink.device'), { code: 'INVALID_CONFIG', message: /audio.sink.device: "hw:0; reboot"/ });
});

void t.test('parseDeviceList of aplay -L output yields names with descriptions', async (t) => {
  const text = 'null\n    Discard all samples (playback) or generate zero samples (capture)\ndefault:CARD=Device\n    USB Audio Device, USB Audio\n    Default Audio Device\n';
  t.same(parseDeviceList(text), [
    { name: 'null', description: 'Discard all samples (playback) or generate zero samples (capture)' },
    { name: 'default:CARD=Device', description: 'USB Audio Device, USB Audio — Default Audio Device' },
  ]);
});

void t.test('NoiseGateSource below the threshold sends silence after the hold and opens on speech', async (t) => {
  const clock = new FakeClock();
  const src = new SimulatedToneSource({ frequencyHz: 440, levelDbfs: -10, clock });
  const gate = new NoiseGateSource(src, { thresholdDbfs: -40, holdFrames: 2 });
  t.teardown(() => gate.close());
  const open: boolean[] = [];
  gate.onFrame((pcm) => open.push(Math.max(...pcm) > 0));
  await gate.start();
  clock.advance(40);
  src.levelDbfs = -50;
  clock.advance(100);
  t.same(open, [true, true, true, true, false, false, false], 'speech passes, two quiet frames of hold, then silence');
  src.levelDbfs = -10;
  clock.advance(20);
  t.equal(open.at(-1), true, 'a loud frame opens the gate at once');
  t.equal(gate.framesGated, 3);
  t.same({ ...gate.format }, { sampleRate: 48_000, channels: 1, frameSamples: 960 });
});
