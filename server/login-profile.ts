import type { Profile } from '../core/protocol/access.ts';
import { EndpointKind, type EndpointInfo } from '../core/protocol/common.ts';
import type { OnlineEndpoint } from './registry.ts';
import type { OnlineRow } from './store.ts';

/**
 * A4: a login's profile from the online rows of its account and its buddies, as read from the
 * store after the login subscribed to their presence (so a change after the read arrives as a
 * presence note, sent after the profile, A12).
 */
export function profileFrom(entry: OnlineEndpoint, displayName: string, rows: readonly OnlineRow[]): Profile {
  const byAccount = new Map<string, EndpointInfo[]>();
  for (const row of rows) {
    const kind = EndpointKind.safeParse(row.kind);
    if (!kind.success || row.endpointId === entry.info.endpointId) continue;
    const list = byAccount.get(row.account) ?? [];
    list.push({ endpointId: row.endpointId, account: row.account, kind: kind.data, label: row.label, online: true });
    byAccount.set(row.account, list);
  }
  return {
    account: entry.account,
    displayName,
    endpointId: entry.info.endpointId,
    siblings: byAccount.get(entry.account) ?? [],
    buddies: entry.buddies.map((b) => ({ account: b.name, displayName: b.displayName, endpoints: byAccount.get(b.name) ?? [] })),
  };
}
