/**
 * Pure SDP helpers shared by the device's node-datachannel links and the phone page's WebRTC
 * links (docs/protocol.md P3, L2).
 */

/** "sha-256 AB:CD:…" from an SDP: the algorithm lower-cased, the hex upper-cased, as certified (A3). */
export function fingerprintFromSdp(sdp: string): string | undefined {
  const m = /^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/m.exec(sdp);
  return m ? `${m[1]!.toLowerCase()} ${m[2]!.toUpperCase()}` : undefined;
}

/** The audio section's mid and Opus payload type, which the answerer's own track must reuse (L1). */
export function audioOfOffer(sdp: string): { mid: string; pt: number } | undefined {
  const section = /^m=audio [^]*?(?=^m=|(?![^]))/m.exec(sdp)?.[0];
  if (!section) return undefined;
  const mid = /^a=mid:(\S+)/m.exec(section)?.[1];
  const pt = /^a=rtpmap:(\d+) opus\/48000/im.exec(section)?.[1];
  if (mid === undefined || pt === undefined) return undefined;
  return { mid, pt: Number(pt) };
}

/** The connection address of an ICE candidate line, or undefined when it has none. */
export function candidateAddress(candidate: string): string | undefined {
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
  return candidate.replace(/^a=/, '').split(' ')[4];
}
