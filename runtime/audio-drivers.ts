import type { z } from 'zod';
import type { AudioSinkConfig, AudioSourceConfig } from '../firmware-config/endpoint-config.ts';
import type { Logger } from '../core/log.ts';
import type { DriverStateEvent } from '../core/session/events.ts';
import type { AudioSink, AudioSource } from '../drivers/audio/audio.ts';
import { AlsaSink } from '../drivers/audio/alsa-sink.ts';
import { AlsaSource } from '../drivers/audio/alsa-source.ts';
import { NoiseGateSource } from '../drivers/audio/noise-gate.ts';
import { SimulatedAnalysingSink, SimulatedToneSource } from '../drivers/audio/simulated.ts';

/**
 * The audio drivers a config names (`audio.source.driver`, `audio.sink.driver`). The ALSA source
 * is opened when the media engine starts it; the ALSA sink opens its device here. Both keep
 * trying when their device is missing (an endpoint comes up without its USB card and recovers
 * when it is plugged in): `watchAudioDrivers` reports their failures and recoveries.
 */
export function createAudioSource(config: z.output<typeof AudioSourceConfig>, deps: { log?: Logger } = {}): AudioSource {
  switch (config.driver) {
    case 'simulated':
      return new SimulatedToneSource({ frequencyHz: config.frequencyHz, levelDbfs: config.levelDbfs });
    case 'alsa': {
      const src = new AlsaSource({ device: config.device, periodFrames: config.periodFrames, keepTrying: true, ...(deps.log ? { log: deps.log } : {}) });
      return config.noiseGateDbfs === undefined ? src : new NoiseGateSource(src, { thresholdDbfs: config.noiseGateDbfs });
    }
  }
}

export async function createAudioSink(config: z.output<typeof AudioSinkConfig>, deps: { log?: Logger } = {}): Promise<AudioSink> {
  switch (config.driver) {
    case 'simulated':
      return new SimulatedAnalysingSink({});
    case 'alsa':
      return AlsaSink.openOrRetry({ device: config.device, periodMs: config.periodMs, bufferMs: config.bufferMs, ...(deps.log ? { log: deps.log } : {}) });
  }
}

/** Reports ALSA driver failures and recoveries as `driver.state` events (diagnostics, Q15). */
export function watchAudioDrivers(source: AudioSource, sink: AudioSink, emit: (e: DriverStateEvent) => void): void {
  const inner = source instanceof NoiseGateSource ? source.inner : source;
  if (inner instanceof AlsaSource) {
    inner.onEvent((e) => {
      if (e.type === 'error') emit({ driver: 'audio.source', device: e.device, state: 'failed', message: e.message, counters: { ...countersOf(inner.stats()) } });
      else if (e.type === 'recovered') emit({ driver: 'audio.source', device: e.device, state: 'recovered', counters: { ...countersOf(inner.stats()) } });
    });
  }
  if (sink instanceof AlsaSink) {
    sink.onEvent((e) => {
      if (e.type === 'error') emit({ driver: 'audio.sink', device: e.device, state: 'failed', message: e.message, counters: { ...sink.stats() } });
      else if (e.type === 'recovered') emit({ driver: 'audio.sink', device: e.device, state: 'recovered', counters: { ...sink.stats() } });
    });
  }
}

function countersOf(st: ReturnType<AlsaSource['stats']>): Record<string, number> {
  return { framesDelivered: st.framesDelivered, xruns: st.xruns, shortReads: st.shortReads, readErrors: st.readErrors, reopens: st.reopens };
}
