/**
 * Why a link's ICE found no working path, in words a resident or an installer can act on
 * (issue 17, docs/protocol.md L8). Built from what the transport gathered and tried; pure, so the
 * page (getStats) and the device can both feed it.
 */
export interface IceAttempt {
  /** The TURN servers this link was given (A13); 0 when the access server hands out none. */
  turnServers: number;
  /** Local candidates gathered: host, srflx, prflx or relay; relays with how they reach the TURN server. */
  local: Array<{ type: string; relayProtocol?: string | undefined }>;
  /** Connectivity checks sent and answered over all candidate pairs. */
  checksSent: number;
  responsesReceived: number;
}

/** A sentence for the link's failure reason, or undefined when there is nothing more to say. */
export function diagnoseIce(a: IceAttempt): string | undefined {
  const relays = a.local.filter((c) => c.type === 'relay');
  const overUdp = a.local.some((c) => c.type === 'srflx' || (c.type === 'relay' && (c.relayProtocol ?? 'udp') === 'udp'));
  if (a.turnServers > 0 && relays.length === 0) {
    return 'the TURN relay gave this phone no address (unreachable, or it refused the credentials)';
  }
  if (relays.length > 0 && !overUdp) {
    // libjuice answers a check carrying a zero ICE tie-breaker, as Chromium sends over TURN/TCP and
    // TURN/TLS, with 400 (paullouisageneau/libjuice#355), so the devices cannot take such a path yet.
    return 'this network lets calls out only over TURN/TCP or TLS (UDP is blocked), which the devices cannot answer yet';
  }
  if (a.checksSent > 0 && a.responsesReceived === 0) {
    return a.turnServers === 0 ? 'no direct path answered and no TURN relay is configured' : 'no path answered, not even through the TURN relay';
  }
  return undefined;
}
