import { BlockList, isIP } from 'node:net';
import { SweepError } from '../core/errors.ts';

/** "::ffff:192.0.2.1" (an IPv4 peer on a dual-stack socket) → "192.0.2.1". */
function plain(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m?.[1] ?? address;
}

function familyOf(address: string): 'ipv4' | 'ipv6' | undefined {
  const v = isIP(address);
  return v === 4 ? 'ipv4' : v === 6 ? 'ipv6' : undefined;
}

/** Addresses whose trust is remembered, at most (then forgotten all at once). */
const KNOWN_ADDRESSES = 4096;

/**
 * A11: the client address the per-address login limit counts. A socket's peer is the client,
 * unless the peer is one of the configured trusted proxies: then the address its
 * X-Forwarded-For names is used (the rightmost hop that is not itself a trusted proxy). The
 * header from any other peer is ignored, so a client cannot pick its own address.
 */
export class ClientAddresses {
  private readonly trusted = new BlockList();
  private readonly known = new Map<string, boolean>();
  readonly count: number;

  /** `trustedProxies`: addresses ("10.0.0.2", "::1") or CIDR ranges ("10.0.0.0/8"). */
  constructor(trustedProxies: readonly string[] = []) {
    trustedProxies.forEach((entry, i) => {
      const [address = '', bits, extra] = entry.trim().split('/');
      const family = familyOf(address);
      const prefix = bits === undefined ? undefined : Number(bits);
      const max = family === 'ipv4' ? 32 : 128;
      if (!family || extra !== undefined || (prefix !== undefined && (!/^\d+$/.test(bits ?? '') || prefix > max))) {
        throw new SweepError('INVALID_CONFIG', `trustedProxies[${i}]: "${entry}" is not an IP address or CIDR range (e.g. 10.0.0.2 or 10.0.0.0/8)`);
      }
      if (prefix === undefined) this.trusted.addAddress(address, family);
      else this.trusted.addSubnet(address, prefix, family);
    });
    this.count = trustedProxies.length;
  }

  isTrusted(address: string): boolean {
    // Remembered: every handshake asks, and BlockList.check builds a SocketAddress each time
    // (a tenth of a handshake's cost during a restart storm, when handshakes fill the loop).
    let trusted = this.known.get(address);
    if (trusted === undefined) {
      const a = plain(address);
      const family = familyOf(a);
      trusted = family !== undefined && this.trusted.check(a, family);
      if (this.known.size >= KNOWN_ADDRESSES) this.known.clear();
      this.known.set(address, trusted);
    }
    return trusted;
  }

  /** The client's address for a request from `peer` carrying `forwardedFor` (the X-Forwarded-For header). */
  resolve(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    let client = plain(peer ?? 'unknown');
    if (this.count === 0 || forwardedFor === undefined || !this.isTrusted(client)) return client;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((h) => plain(h.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] ?? '';
      if (!familyOf(hop)) break; // garbage: keep the last address we could vouch for
      client = hop;
      if (!this.isTrusted(hop)) break;
    }
    return client;
  }
}
