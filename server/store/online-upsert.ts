import type { OnConflictBuilder, OnConflictUpdateBuilder, OnConflictDatabase, OnConflictTables } from 'kysely';
import type { Tables } from './schema.ts';

/** A4: the online row of a newer login of an endpoint, on any node, replaces the older one's. */
export function newerLoginTakesOver(oc: OnConflictBuilder<Tables, 'online_endpoints'>): OnConflictUpdateBuilder<OnConflictDatabase<Tables, 'online_endpoints'>, OnConflictTables<'online_endpoints'>> {
  return oc.column('endpoint_id').doUpdateSet((eb) => ({
    account: eb.ref('excluded.account'),
    kind: eb.ref('excluded.kind'),
    label: eb.ref('excluded.label'),
    node_id: eb.ref('excluded.node_id'),
    session_id: eb.ref('excluded.session_id'),
    since: eb.ref('excluded.since'),
  }));
}
