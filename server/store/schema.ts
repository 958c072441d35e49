/**
 * The tables of the store as Kysely sees them (one definition for SQLite and PostgreSQL).
 * Times are milliseconds since the epoch: INTEGER in SQLite, BIGINT in PostgreSQL (read back as
 * numbers, see open.ts). Buddy pairs are stored once, with a < b, so the relation is symmetric.
 */
export interface AccountsTable {
  name: string;
  display_name: string;
  password_hash: string;
  created_at: number;
}

export interface BuddiesTable {
  a: string;
  b: string;
}

export interface LoginSessionsTable {
  token_hash: string;
  account: string;
  endpoint_id: string;
  expires_at: number;
}

export interface ProvisionCodesTable {
  code_hash: string;
  account: string;
  endpoint_id: string;
  expires_at: number;
  created_at: number;
}

export interface EndpointCredentialsTable {
  account: string;
  endpoint_id: string;
  password_hash: string;
  signing_key: string;
  created_at: number;
}

export interface EndpointBindingsTable {
  endpoint_id: string;
  account: string;
  bound_at: number;
}

/** Which endpoint is online on which node, under which login (session id: a newer login wins). */
export interface OnlineEndpointsTable {
  endpoint_id: string;
  account: string;
  kind: string;
  label: string;
  node_id: string;
  session_id: string;
  since: number;
}

/** A node's lease: renewed every few seconds; a node whose lease expired is dead (its sessions are reaped). */
export interface NodeLeasesTable {
  node_id: string;
  /** When this unbroken lease began: a lease renewed after it lapsed starts again. */
  started_at: number;
  renewed_at: number;
  expires_at: number;
}

/** A15: one household call, as the endpoint that rang reported it (the record itself as JSON text). */
export interface CallHistoryTable {
  door_endpoint: string;
  session_id: string;
  /** The household rung. */
  account: string;
  /** The account of the endpoint that rang (the household itself or a buddy of it). */
  caller_account: string;
  started_at: number;
  record: string;
}

/** A16: one browser endpoint's Web Push subscription (at most one per endpoint). */
export interface PushSubscriptionsTable {
  endpoint_id: string;
  account: string;
  url: string;
  p256dh: string;
  auth: string;
  created_at: number;
}

/** A14: a resume-proof nonce used once, kept until it expires (one row per nonce, on every node). */
export interface ResumeNoncesTable {
  nonce: string;
  expires_at: number;
}

export interface Tables {
  accounts: AccountsTable;
  buddies: BuddiesTable;
  login_sessions: LoginSessionsTable;
  provision_codes: ProvisionCodesTable;
  endpoint_credentials: EndpointCredentialsTable;
  endpoint_bindings: EndpointBindingsTable;
  online_endpoints: OnlineEndpointsTable;
  node_leases: NodeLeasesTable;
  call_history: CallHistoryTable;
  push_subscriptions: PushSubscriptionsTable;
  resume_nonces: ResumeNoncesTable;
}

export type SqlDialect = 'sqlite' | 'postgres';
