import { CompiledQuery, type Compilable, type Kysely } from 'kysely';
import { SweepError } from '../../core/errors.ts';

/** The text of each statement compiled once, and the name PostgreSQL prepares it under. */
const statementNames = new Map<string, string>();

/**
 * The name to prepare `text` under, if it is a statement compiled once: PostgreSQL then parses
 * and plans it once per connection (open.ts names them), not on every login.
 */
export function preparedName(text: string): string | undefined {
  return statementNames.get(text);
}

/**
 * A statement whose SQL text is compiled once. Kysely builds and compiles a query on every call,
 * and for the large WITH statement of a login that was a good part of a restart storm's time on
 * the node's event loop. The text is the same for the same shape, so the first call builds the
 * query with a marker in place of each parameter, notes which parameter each placeholder holds,
 * and every call after that only orders the values. `build` must take every value from its
 * argument (a value it makes up itself would be frozen into the text): one it does not take is
 * an error at the first call.
 */
export function compiledOnce<DB, P extends object, R>(build: (db: Kysely<DB>, p: P) => Compilable<R>): (db: Kysely<DB>, p: P) => Promise<R[]> {
  let text: string | undefined;
  let order: Array<keyof P> = [];
  return async (db, p) => {
    if (text === undefined) {
      const names = Object.keys(p) as Array<keyof P>;
      const marker = (name: keyof P): string => `\u0000sweep-param:${String(name)}`;
      const markers = Object.fromEntries(names.map((n) => [n, marker(n)])) as unknown as P;
      const compiled = build(db, markers).compile();
      order = compiled.parameters.map((value, i) => {
        const name = names.find((n) => marker(n) === value);
        if (name === undefined) throw new SweepError('INTERNAL', `compiledOnce: parameter $${i + 1} (${JSON.stringify(value)}) is not taken from the statement's argument`);
        return name;
      });
      text = compiled.sql;
      statementNames.set(text, `sweep_${statementNames.size + 1}`);
    }
    const result = await db.executeQuery<R>(CompiledQuery.raw(text, order.map((n) => p[n] as unknown)));
    return result.rows;
  };
}
