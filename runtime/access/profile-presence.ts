import type { LoginResult } from '../../core/protocol/access.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';

/** Keeps the login's profile current with a presence note: a sibling or a buddy's endpoint came or went. */
export function applyPresence(profile: LoginResult['profile'], endpoint: EndpointInfo): void {
  const upsert = (list: EndpointInfo[]): EndpointInfo[] => {
    const rest = list.filter((e) => e.endpointId !== endpoint.endpointId);
    return endpoint.online ? [...rest, endpoint] : rest;
  };
  if (endpoint.account === profile.account) {
    profile.siblings = upsert(profile.siblings);
    return;
  }
  let buddy = profile.buddies.find((b) => b.account === endpoint.account);
  if (!buddy) {
    // A buddy added while we were online: the server only tells us about related accounts.
    buddy = { account: endpoint.account, displayName: endpoint.account, endpoints: [] };
    profile.buddies.push(buddy);
  }
  buddy.endpoints = upsert(buddy.endpoints);
}
