import { isIP } from 'node:net';
import { candidateAddress } from '../../core/wire/sdp.ts';

function isLoopback(addr: string): boolean {
  return addr === '::1' || (isIP(addr) === 4 && addr.startsWith('127.'));
}

/**
 * Which remote candidates a link may aim ICE checks at: all of them, except that a link bound to
 * loopback (the lab, tests) never aims anywhere but loopback.
 */
export class CandidateFilter {
  constructor(
    private readonly bindAddress: string,
    private readonly onDropped: (addr: string | undefined) => void,
  ) {}

  allows(candidate: string): boolean {
    if (!isLoopback(this.bindAddress)) return true;
    const addr = candidateAddress(candidate);
    const ok = addr !== undefined && isLoopback(addr);
    if (!ok) this.onDropped(addr);
    return ok;
  }

  /** The SDP without the candidate lines this link may not use. */
  sdp(sdp: string): string {
    return sdp
      .split(/\r?\n/)
      .filter((line) => !line.startsWith('a=candidate:') || this.allows(line))
      .join('\r\n');
  }
}
