import type { IceServer as NdcIceServer, RtcConfig } from 'node-datachannel';
import { parseIceUrl, type IceConfig } from '../../core/protocol/ice.ts';

/**
 * A13 for node-datachannel: the access server's STUN/TURN URLs as libdatachannel's server
 * objects (its URL strings cannot carry a TURN REST username, which holds a colon), and the
 * relay policy.
 */
export function iceRtcConfig(ice: IceConfig | undefined): Pick<RtcConfig, 'iceServers' | 'iceTransportPolicy'> {
  if (!ice) return { iceServers: [] };
  const iceServers: NdcIceServer[] = [];
  for (const server of ice.servers) {
    for (const url of server.urls) {
      const u = parseIceUrl(url);
      if (u.scheme === 'stun') {
        iceServers.push({ hostname: u.host, port: u.port });
        continue;
      }
      iceServers.push({
        hostname: u.host,
        port: u.port,
        username: server.username ?? '',
        password: server.credential ?? '',
        relayType: u.scheme === 'turns' ? 'TurnTls' : u.transport === 'tcp' ? 'TurnTcp' : 'TurnUdp',
      });
    }
  }
  return { iceServers, iceTransportPolicy: ice.policy };
}
