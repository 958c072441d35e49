import { Decoder, Encoder } from '@evan/opus';
import { FRAME_SAMPLES, SAMPLE_RATE } from '../../drivers/audio/audio.ts';
import { SweepError } from '../../core/errors.ts';

/**
 * Opus at 48 kHz mono in 20 ms frames over @evan/opus (native, 210 ms CPU per minute encode +
 * decode here; FINDINGS). The library returns views into one reused buffer: every result is
 * copied before it leaves this module.
 */
export interface OpusEncoderOptions {
  /** bit/s; 32 kbit/s carries wideband voice with room for in-band FEC. */
  bitrate?: number;
  /** 0-10; lower saves CPU on a Pi at some quality cost. */
  complexity?: number;
  /** Expected loss in percent; in-band FEC only spends bits when this is above 0. */
  expectedLossPercent?: number;
}

function checkFrame(pcm: Int16Array): void {
  if (pcm.length !== FRAME_SAMPLES) {
    throw new SweepError('INVALID_MESSAGE', `a PCM frame has ${pcm.length} samples, expected ${FRAME_SAMPLES}`);
  }
}

export class OpusEncoder {
  readonly #enc: Encoder;

  constructor(opts: OpusEncoderOptions = {}) {
    this.#enc = new Encoder({ channels: 1, sample_rate: SAMPLE_RATE, application: 'voip' });
    this.#enc.bitrate = opts.bitrate ?? 32_000;
    this.#enc.inband_fec = true;
    this.#enc.packet_loss = opts.expectedLossPercent ?? 5;
    if (opts.complexity !== undefined) {
      const c = opts.complexity;
      if (!Number.isInteger(c) || c < 0 || c > 10) {
        throw new SweepError('INVALID_CONFIG', `Opus complexity ${c} is not an integer 0-10`);
      }
      this.#enc.complexity = c as Encoder['complexity'];
    }
  }

  /** One 20 ms frame (960 samples) to one Opus packet, a fresh copy. */
  encode(pcm: Int16Array): Uint8Array {
    return this.encodeShared(pcm).slice();
  }

  /**
   * As `encode`, but the packet is the library's own buffer, valid until the next call: for a
   * caller that hands it on at once (the send path; transports copy what they send).
   */
  encodeShared(pcm: Int16Array): Uint8Array {
    checkFrame(pcm);
    return this.#enc.encode(pcm);
  }

  reset(): void {
    this.#enc.reset();
  }
}

export class OpusDecoder {
  readonly #dec: Decoder;
  /** TOC byte of the last good packet: a TOC-only packet of the same mode asks for 20 ms of PLC. */
  #lastToc: number | undefined;
  #out = new Int16Array(960);

  constructor() {
    this.#dec = new Decoder({ channels: 1, sample_rate: SAMPLE_RATE });
  }

  /**
   * Decodes one packet; throws SweepError INVALID_MESSAGE for a corrupt packet. The result is the
   * decoder's own buffer, valid until the next decode or conceal: copy to keep.
   */
  decode(opus: Uint8Array): Int16Array {
    if (opus.length === 0) throw new SweepError('INVALID_MESSAGE', 'an empty Opus packet');
    let bytes: Uint8Array;
    try {
      bytes = this.#dec.decode(opus);
    } catch (err) {
      throw new SweepError('INVALID_MESSAGE', `an Opus packet of ${opus.length} bytes did not decode`, { cause: err });
    }
    this.#lastToc = opus[0];
    return this.#toPcm(bytes);
  }

  /**
   * Packet loss concealment for one missing 20 ms frame. A packet holding only a TOC byte (frame
   * code 0, zero-length frame) is what RFC 6716 §3.2.1 calls a lost frame: the decoder runs PLC
   * for that frame's duration. (@evan/opus exposes no decode_fec flag and rejects empty input.)
   */
  conceal(): Int16Array {
    const toc = (this.#lastToc ?? 0x78) & 0xfc;
    return this.#toPcm(this.#dec.decode(Uint8Array.of(toc)));
  }

  reset(): void {
    this.#dec.reset();
    this.#lastToc = undefined;
  }

  /** Copies the library's reused byte buffer into ours, aligned for Int16 (no allocation per frame). */
  #toPcm(bytes: Uint8Array): Int16Array {
    const samples = bytes.length >> 1;
    if (samples !== this.#out.length) this.#out = new Int16Array(samples);
    new Uint8Array(this.#out.buffer).set(bytes.subarray(0, samples * 2));
    return this.#out;
  }
}
