import { Migrator, sql, type Kysely, type Migration, type CreateTableBuilder } from 'kysely';
import { SweepError } from '../../core/errors.ts';
import type { SqlDialect } from './schema.ts';

/**
 * The store's schema, one migration per step, for both dialects. Migration 001 is the schema the
 * single-file server always had (`CREATE … IF NOT EXISTS`), so an existing accounts.db adopts it
 * without a change. Kysely records applied migrations in `kysely_migration`, and takes a lock
 * (an advisory lock on PostgreSQL) so two nodes migrating at once apply each step once.
 */
export function migrations(dialect: SqlDialect): Record<string, Migration> {
  // STRICT tables allow only INTEGER for whole numbers; PostgreSQL needs BIGINT for ms timestamps.
  const time = dialect === 'sqlite' ? 'integer' : 'bigint';
  const strict = <T extends string, C extends string>(b: CreateTableBuilder<T, C>): CreateTableBuilder<T, C> => (dialect === 'sqlite' ? b.modifyEnd(sql`STRICT`) : b);
  return {
    '001_accounts': {
      async up(db: Kysely<unknown>): Promise<void> {
        await strict(
          db.schema
            .createTable('accounts')
            .ifNotExists()
            .addColumn('name', 'text', (c) => c.primaryKey())
            .addColumn('display_name', 'text', (c) => c.notNull())
            .addColumn('password_hash', 'text', (c) => c.notNull())
            .addColumn('created_at', time, (c) => c.notNull()),
        ).execute();
        await strict(
          db.schema
            .createTable('buddies')
            .ifNotExists()
            .addColumn('a', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addColumn('b', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addPrimaryKeyConstraint('buddies_pk', ['a', 'b'])
            .addCheckConstraint('buddies_ordered', sql`a < b`),
        ).execute();
        await db.schema.createIndex('buddies_b').ifNotExists().on('buddies').column('b').execute();
        await strict(
          db.schema
            .createTable('login_sessions')
            .ifNotExists()
            .addColumn('token_hash', 'text', (c) => c.primaryKey())
            .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addColumn('endpoint_id', 'text', (c) => c.notNull())
            .addColumn('expires_at', time, (c) => c.notNull()),
        ).execute();
        await db.schema.createIndex('login_sessions_endpoint').ifNotExists().on('login_sessions').columns(['account', 'endpoint_id']).execute();
        await strict(
          db.schema
            .createTable('provision_codes')
            .ifNotExists()
            .addColumn('code_hash', 'text', (c) => c.primaryKey())
            .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addColumn('endpoint_id', 'text', (c) => c.notNull())
            .addColumn('expires_at', time, (c) => c.notNull())
            .addColumn('created_at', time, (c) => c.notNull()),
        ).execute();
        await strict(
          db.schema
            .createTable('endpoint_credentials')
            .ifNotExists()
            .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addColumn('endpoint_id', 'text', (c) => c.notNull())
            .addColumn('password_hash', 'text', (c) => c.notNull())
            .addColumn('signing_key', 'text', (c) => c.notNull())
            .addColumn('created_at', time, (c) => c.notNull())
            .addPrimaryKeyConstraint('endpoint_credentials_pk', ['account', 'endpoint_id']),
        ).execute();
        await strict(
          db.schema
            .createTable('endpoint_bindings')
            .ifNotExists()
            .addColumn('endpoint_id', 'text', (c) => c.primaryKey())
            .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addColumn('bound_at', time, (c) => c.notNull()),
        ).execute();
        await db.schema.createIndex('endpoint_bindings_account').ifNotExists().on('endpoint_bindings').column('account').execute();
      },
    },
    '002_cluster': {
      async up(db: Kysely<unknown>): Promise<void> {
        // Not tied to accounts by a foreign key: a row outlives nothing, the reaper and logouts remove it.
        await strict(
          db.schema
            .createTable('online_endpoints')
            .addColumn('endpoint_id', 'text', (c) => c.primaryKey())
            .addColumn('account', 'text', (c) => c.notNull())
            .addColumn('kind', 'text', (c) => c.notNull())
            .addColumn('label', 'text', (c) => c.notNull())
            .addColumn('node_id', 'text', (c) => c.notNull())
            .addColumn('session_id', 'text', (c) => c.notNull())
            .addColumn('since', time, (c) => c.notNull()),
        ).execute();
        await db.schema.createIndex('online_endpoints_account').on('online_endpoints').column('account').execute();
        await db.schema.createIndex('online_endpoints_node').on('online_endpoints').column('node_id').execute();
        await strict(
          db.schema
            .createTable('node_leases')
            .addColumn('node_id', 'text', (c) => c.primaryKey())
            .addColumn('started_at', time, (c) => c.notNull())
            .addColumn('renewed_at', time, (c) => c.notNull())
            .addColumn('expires_at', time, (c) => c.notNull()),
        ).execute();
      },
    },
    '003_login_limits': {
      async up(db: Kysely<unknown>): Promise<void> {
        // A11 across nodes: rate-limiter-flexible's table (its own schema), kept in PostgreSQL.
        // SQLite is one node: its limits stay in the process.
        if (dialect !== 'postgres') return;
        await db.schema
          .createTable('login_limits')
          .ifNotExists()
          .addColumn('key', 'varchar(255)', (c) => c.primaryKey())
          .addColumn('points', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('expire', 'bigint')
          .execute();
      },
    },
    '004_call_history': {
      async up(db: Kysely<unknown>): Promise<void> {
        // A15: kept when an account goes, like a log; a report sent twice is stored once (the key).
        await strict(
          db.schema
            .createTable('call_history')
            .addColumn('door_endpoint', 'text', (c) => c.notNull())
            .addColumn('session_id', 'text', (c) => c.notNull())
            .addColumn('account', 'text', (c) => c.notNull())
            .addColumn('caller_account', 'text', (c) => c.notNull())
            .addColumn('started_at', time, (c) => c.notNull())
            .addColumn('record', 'text', (c) => c.notNull())
            .addPrimaryKeyConstraint('call_history_pk', ['door_endpoint', 'session_id']),
        ).execute();
        await db.schema.createIndex('call_history_account').on('call_history').columns(['account', 'started_at']).execute();
        await db.schema.createIndex('call_history_caller').on('call_history').columns(['caller_account', 'started_at']).execute();
      },
    },
    '005_push_subscriptions': {
      async up(db: Kysely<unknown>): Promise<void> {
        // A16: bound to the endpoint that subscribed; gone with its account.
        await strict(
          db.schema
            .createTable('push_subscriptions')
            .addColumn('endpoint_id', 'text', (c) => c.primaryKey())
            .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
            .addColumn('url', 'text', (c) => c.notNull())
            .addColumn('p256dh', 'text', (c) => c.notNull())
            .addColumn('auth', 'text', (c) => c.notNull())
            .addColumn('created_at', time, (c) => c.notNull()),
        ).execute();
        await db.schema.createIndex('push_subscriptions_account').on('push_subscriptions').column('account').execute();
      },
    },
    '006_resume_nonces': {
      async up(db: Kysely<unknown>): Promise<void> {
        // A14: a nonce is used once on any node; rows live as long as the nonce (60 s).
        await strict(
          db.schema
            .createTable('resume_nonces')
            .addColumn('nonce', 'text', (c) => c.primaryKey())
            .addColumn('expires_at', time, (c) => c.notNull()),
        ).execute();
        await db.schema.createIndex('resume_nonces_expires').on('resume_nonces').column('expires_at').execute();
      },
    },
    '007_login_sessions_expiry': {
      async up(db: Kysely<unknown>): Promise<void> {
        // A8: every resume deletes the expired tokens; without this each one read the whole table (one row per endpoint).
        await db.schema.createIndex('login_sessions_expires').on('login_sessions').column('expires_at').execute();
      },
    },
  };
}

function migrator(db: Kysely<unknown>, dialect: SqlDialect): Migrator {
  return new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrations(dialect)) } });
}

/** Applies every pending migration; returns the names applied now. */
export async function migrateToLatest(db: Kysely<unknown>, dialect: SqlDialect): Promise<string[]> {
  const { error, results } = await migrator(db, dialect).migrateToLatest();
  if (error) throw new SweepError('INTERNAL', `database migration failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** The migrations not yet applied to this database (empty when it is current). */
export async function pendingMigrations(db: Kysely<unknown>, dialect: SqlDialect): Promise<string[]> {
  const all = await migrator(db, dialect).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
