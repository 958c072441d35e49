import { EndpointKind, type EndpointInfo } from '../core/protocol/common.ts';
import type { OnlineRow } from './store.ts';

/**
 * What this node last told its endpoints about the accounts they follow: the online endpoints
 * per followed account. After a bus outage (presence messages may be lost) the node reads the
 * store again and tells its endpoints only what differs (A4).
 */
export class PresenceMirror {
  private readonly known = new Map<string, Map<string, EndpointInfo>>();

  /** A presence message went out to this node's followers. */
  note(endpoint: EndpointInfo): void {
    const mine = this.known.get(endpoint.account);
    if (endpoint.online) {
      if (mine) mine.set(endpoint.endpointId, endpoint);
      else this.known.set(endpoint.account, new Map([[endpoint.endpointId, endpoint]]));
    } else mine?.delete(endpoint.endpointId);
  }

  /** The online rows of a followed account read from the store (a login's profile). */
  seed(rows: readonly OnlineRow[]): void {
    for (const row of rows) {
      const info = toInfo(row, true);
      if (info) this.note(info);
    }
  }

  /** No local endpoint follows `account` any more. */
  forget(account: string): void {
    this.known.delete(account);
  }

  /** The presence notes that turn what followers were told into what the store says now about `accounts`. */
  reconcile(accounts: readonly string[], rows: readonly OnlineRow[]): EndpointInfo[] {
    const now = new Map<string, Map<string, EndpointInfo>>();
    for (const row of rows) {
      const info = toInfo(row, true);
      if (!info) continue;
      const list = now.get(row.account) ?? new Map<string, EndpointInfo>();
      list.set(row.endpointId, info);
      now.set(row.account, list);
    }
    const changes: EndpointInfo[] = [];
    for (const account of accounts) {
      const before = this.known.get(account) ?? new Map<string, EndpointInfo>();
      const after = now.get(account) ?? new Map<string, EndpointInfo>();
      for (const [id, info] of before) if (!after.has(id)) changes.push({ ...info, online: false });
      for (const [id, info] of after) {
        const was = before.get(id);
        if (!was || was.kind !== info.kind || was.label !== info.label) changes.push(info);
      }
      this.known.set(account, after);
    }
    return changes;
  }
}

function toInfo(row: OnlineRow, online: boolean): EndpointInfo | undefined {
  const kind = EndpointKind.safeParse(row.kind);
  return kind.success ? { endpointId: row.endpointId, account: row.account, kind: kind.data, label: row.label, online } : undefined;
}
