import type Database from 'better-sqlite3';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * The connection settings of accounts.db. WAL lets readers (the CLI beside a running server)
 * work during writes. `synchronous = NORMAL` syncs the WAL at checkpoints instead of at every
 * commit: a login commits three or four times, and an fsync costs ~0.3 ms here, more than the
 * rest of the login's SQL. A crashed or killed server loses nothing (the WAL is in the OS's
 * hands); a power cut may lose the last commits but never corrupts the file, and what those held
 * (an online row, a session token, a binding) is made again when the endpoint logs in again.
 */
export function tuneSqlite(database: Database.Database): void {
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  // Another process (the CLI beside a running server) may hold the write lock for a moment.
  database.pragma('busy_timeout = 5000');
}

/**
 * Kysely's SQLite driver prepares every query anew (tens of µs each, and a login runs about ten):
 * the same SQL text reuses its prepared statement. Bounded, least recently used out first, since
 * texts with variable IN lists come and go. Sharing a statement is safe: Kysely's single
 * connection runs one query at a time, and `all`/`run` finish before they return.
 */
export function withStatementCache(database: Pick<Database.Database, 'prepare' | 'close'>, max = 256): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => void database.close(),
    prepare: (sql) => {
      let statement = cache.get(sql);
      if (statement) cache.delete(sql);
      else statement = database.prepare(sql);
      cache.set(sql, statement);
      if (cache.size > max) {
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      return statement;
    },
  };
}
