import type { z } from 'zod';
import type { AudioSinkConfig, AudioSourceConfig } from '../../firmware-config/endpoint-config.ts';
import type { Logger } from '../../runtime/util/log.ts';
import type { AudioSink, AudioSource } from './audio.ts';
import { AlsaSink } from './alsa-sink.ts';
import { AlsaSource } from './alsa-source.ts';
import { NoiseGateSource } from './noise-gate.ts';
import { SimulatedAnalysingSink, SimulatedToneSource } from './simulated.ts';

/**
 * The audio drivers a config names (`audio.source.driver`, `audio.sink.driver`). The ALSA source
 * is opened when the media engine starts it; the ALSA sink opens its device here (rejects
 * NOT_FOUND naming the device when it cannot).
 */
export function createAudioSource(config: z.output<typeof AudioSourceConfig>, deps: { log?: Logger } = {}): AudioSource {
  switch (config.driver) {
    case 'simulated':
      return new SimulatedToneSource({ frequencyHz: config.frequencyHz, levelDbfs: config.levelDbfs });
    case 'alsa': {
      const src = new AlsaSource({ device: config.device, periodFrames: config.periodFrames, ...(deps.log ? { log: deps.log } : {}) });
      return config.noiseGateDbfs === undefined ? src : new NoiseGateSource(src, { thresholdDbfs: config.noiseGateDbfs });
    }
  }
}

export async function createAudioSink(config: z.output<typeof AudioSinkConfig>, deps: { log?: Logger } = {}): Promise<AudioSink> {
  switch (config.driver) {
    case 'simulated':
      return new SimulatedAnalysingSink({});
    case 'alsa':
      return AlsaSink.open({ device: config.device, periodMs: config.periodMs, bufferMs: config.bufferMs, ...(deps.log ? { log: deps.log } : {}) });
  }
}
