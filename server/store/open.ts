import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, type LogEvent } from 'kysely';
import pg from 'pg';
import { SweepError } from '../../core/errors.ts';
import type { AccountStore } from '../store.ts';
import { preparedName } from './compiled-once.ts';
import { migrateToLatest, pendingMigrations } from './migrations.ts';
import type { SqlDialect, Tables } from './schema.ts';
import { SqlStore } from './sql-store.ts';
import { tuneSqlite, withStatementCache } from './sqlite-tuning.ts';

/** Where the store lives: `accounts.db` in the data dir (the default), or a PostgreSQL URL. */
export type StoreLocation = { kind: 'sqlite'; dataDir: string } | { kind: 'postgres'; url: string };

export interface OpenStoreOptions {
  /**
   * "apply": run pending migrations (the default for SQLite: `npm start` needs no step);
   * "require": refuse to open a database with pending ones (the default for PostgreSQL, where
   * `sweep server migrate` upgrades the schema once for every node).
   */
  migrations?: 'apply' | 'require';
  /** Errors of idle pooled connections (a PostgreSQL restart); without it they are ignored. */
  onPoolError?: (err: Error) => void;
  /** PostgreSQL: told the SQL of every statement the store sends (its round trips, for tests and diagnosis). */
  onQuery?: (sql: string) => void;
}

const PG_BIGINT = 20;

/** `--db`: a postgres:// URL, or nothing for SQLite in the data dir. */
export function storeLocation(db: string | undefined, dataDir: string): StoreLocation {
  if (db === undefined || db === 'sqlite') return { kind: 'sqlite', dataDir };
  if (/^postgres(ql)?:\/\//.test(db)) return { kind: 'postgres', url: db };
  throw new SweepError('INVALID_CONFIG', `--db: "${redactUrl(db)}" is not supported; allowed: sqlite (accounts.db in --data) or a postgres://user@host:port/db URL`);
}

/** A URL safe to log: its password replaced. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export async function openStore(location: StoreLocation, opts: OpenStoreOptions = {}): Promise<AccountStore> {
  const { db, dialect, release } = location.kind === 'sqlite' ? openSqlite(location.dataDir) : openPostgres(location.url, opts.onPoolError, opts.onQuery);
  try {
    const mode = opts.migrations ?? (dialect === 'sqlite' ? 'apply' : 'require');
    if (mode === 'apply') await migrateToLatest(db as Kysely<unknown>, dialect);
    else {
      const pending = await pendingMigrations(db as Kysely<unknown>, dialect);
      if (pending.length > 0) {
        throw new SweepError('BAD_STATE', `database schema is not current (pending: ${pending.join(', ')}); run "sweep server migrate --db URL" first`);
      }
    }
  } catch (err) {
    await release();
    if (err instanceof SweepError) throw err;
    const target = location.kind === 'sqlite' ? join(location.dataDir, 'accounts.db') : redactUrl(location.url);
    throw new SweepError('INTERNAL', `cannot open the store at ${target}: ${(err as Error).message}`, { cause: err });
  }
  return new SqlStore(db, dialect, release);
}

/** `sweep server migrate`: applies pending migrations; returns the names applied now. */
export async function migrateStore(location: StoreLocation): Promise<string[]> {
  const { db, dialect, release } = location.kind === 'sqlite' ? openSqlite(location.dataDir) : openPostgres(location.url);
  try {
    return await migrateToLatest(db as Kysely<unknown>, dialect);
  } finally {
    await release();
  }
}

interface Opened {
  db: Kysely<Tables>;
  dialect: SqlDialect;
  /** Ends this user of the engine (the last user of a shared SQLite file closes it). */
  release: () => Promise<void>;
}

/**
 * Stores opened on one SQLite file in one process share its connection: a second connection
 * would wait for the first's write lock with a blocking busy-wait while the first's transaction
 * waits for the event loop, and both would stall.
 */
const sqliteFiles = new Map<string, { db: Kysely<Tables>; users: number }>();

function openSqlite(dataDir: string): Opened {
  const file = resolve(dataDir, 'accounts.db');
  let shared = sqliteFiles.get(file);
  if (!shared) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const database = new Database(file);
    tuneSqlite(database);
    shared = { db: new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) }), users: 0 };
    sqliteFiles.set(file, shared);
  }
  const entry = shared;
  entry.users += 1;
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    entry.users -= 1;
    if (entry.users > 0) return;
    sqliteFiles.delete(file);
    await entry.db.destroy();
  };
  return { db: entry.db, dialect: 'sqlite', release };
}

function openPostgres(url: string, onPoolError?: (err: Error) => void, onQuery?: (sql: string) => void): Opened {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // An outage must fail queries in bounded time, not queue them for ever.
    connectionTimeoutMillis: 5_000,
    query_timeout: 10_000,
    // Millisecond timestamps are BIGINT: read them back as numbers (exact below 2^53).
    types: { getTypeParser: readBigintAsNumber as typeof pg.types.getTypeParser },
  });
  // An idle client's error (the server restarted) must not crash the node.
  pool.on('error', (err) => onPoolError?.(err));
  pool.on('connect', nameCompiledStatements);
  const log = onQuery && ((event: LogEvent): void => onQuery(event.query.sql));
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }), ...(log ? { log } : {}) });
  return { db, dialect: 'postgres', release: () => db.destroy() };
}

/**
 * Kysely sends every query unnamed, so PostgreSQL parses and plans it each time. A statement
 * compiled once (compiled-once.ts: those every login runs) goes out named instead: prepared once
 * per connection, and then only its values are sent.
 */
export function nameCompiledStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const named = (...args: unknown[]): unknown => {
    const [text, values] = args;
    const name = typeof text === 'string' && Array.isArray(values) ? preparedName(text) : undefined;
    return name === undefined ? query(...args) : query({ name, text, values });
  };
  Object.assign(client, { query: named });
}

function readBigintAsNumber(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid === PG_BIGINT) return (v) => Number(v);
  return pg.types.getTypeParser(oid, format) as (value: string) => unknown;
}
