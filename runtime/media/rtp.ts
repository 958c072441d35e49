/**
 * RTP (RFC 3550) header parsing for received audio. A pure function: every malformed packet
 * yields `undefined` instead of throwing, because it runs on bytes straight off the network.
 */
export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  csrcs: number[];
  /** The RFC 8285 header extension block's profile id and data, when the X bit is set. */
  extension?: { profile: number; data: Uint8Array };
  /** A view into the packet (not a copy), padding removed. */
  payload: Uint8Array;
}

const FIXED_HEADER = 12;

/** RTCP shares the port (rtcp-mux): packet types 192-223 land on payload types 64-95 (RFC 5761). */
export function isRtcp(buf: Uint8Array): boolean {
  const pt = buf[1];
  return buf.length >= 2 && pt !== undefined && (pt & 0x7f) >= 64 && (pt & 0x7f) <= 95;
}

/**
 * Runs for every received audio packet (50 a second per stream): reads bytes directly, and
 * allocates only the result and its payload view.
 */
export function parseRtp(buf: Uint8Array): RtpPacket | undefined {
  if (buf.length < FIXED_HEADER) return undefined;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  if (b0 >> 6 !== 2) return undefined;
  const padding = (b0 & 0x20) !== 0;
  const hasExtension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  let offset = FIXED_HEADER + 4 * csrcCount;
  if (offset > buf.length) return undefined;
  const csrcs: number[] = [];
  for (let i = 0; i < csrcCount; i++) csrcs.push(u32(buf, FIXED_HEADER + 4 * i));

  let extension: RtpPacket['extension'];
  if (hasExtension) {
    if (offset + 4 > buf.length) return undefined;
    const profile = u16(buf, offset);
    const words = u16(buf, offset + 2);
    const start = offset + 4;
    offset = start + 4 * words;
    if (offset > buf.length) return undefined;
    extension = { profile, data: buf.subarray(start, offset) };
  }

  let end = buf.length;
  if (padding) {
    const padCount = buf[buf.length - 1]!;
    // The count includes itself, so 0 is invalid, and padding cannot eat into the header.
    if (padCount === 0 || end - padCount < offset) return undefined;
    end -= padCount;
  }

  const packet: RtpPacket = {
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequence: u16(buf, 2),
    timestamp: u32(buf, 4),
    ssrc: u32(buf, 8),
    csrcs,
    payload: buf.subarray(offset, end),
  };
  if (extension) packet.extension = extension;
  return packet;
}

function u16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

export interface RtpBuildFields {
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  marker?: boolean;
  csrcs?: number[];
  extension?: { profile: number; data: Uint8Array };
  padding?: number;
}

/** Builds a packet; for tests and tools (the native packetizer builds what we send). */
export function buildRtp(fields: RtpBuildFields, payload: Uint8Array): Uint8Array {
  const csrcs = fields.csrcs ?? [];
  const ext = fields.extension;
  const extLen = ext ? 4 + Math.ceil(ext.data.length / 4) * 4 : 0;
  const pad = fields.padding ?? 0;
  const out = new Uint8Array(FIXED_HEADER + 4 * csrcs.length + extLen + payload.length + pad);
  const view = new DataView(out.buffer);
  view.setUint8(0, 0x80 | (pad > 0 ? 0x20 : 0) | (ext ? 0x10 : 0) | (csrcs.length & 0x0f));
  view.setUint8(1, (fields.marker ? 0x80 : 0) | (fields.payloadType & 0x7f));
  view.setUint16(2, fields.sequence & 0xffff);
  view.setUint32(4, fields.timestamp >>> 0);
  view.setUint32(8, fields.ssrc >>> 0);
  let offset = FIXED_HEADER;
  for (const c of csrcs) {
    view.setUint32(offset, c >>> 0);
    offset += 4;
  }
  if (ext) {
    view.setUint16(offset, ext.profile);
    view.setUint16(offset + 2, Math.ceil(ext.data.length / 4));
    out.set(ext.data, offset + 4);
    offset += extLen;
  }
  out.set(payload, offset);
  if (pad > 0) view.setUint8(out.length - 1, pad);
  return out;
}

/** Signed distance from `a` to `b` in 16-bit sequence space (positive when b is newer). */
export function seqDelta(a: number, b: number): number {
  const d = (b - a) & 0xffff;
  return d >= 0x8000 ? d - 0x10000 : d;
}
