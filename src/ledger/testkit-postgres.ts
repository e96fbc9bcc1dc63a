/** Helpers for tests against the PostgreSQL server on this machine (127.0.0.1:5432, trust auth). */
import pg from "pg";

/** The test database: `WARDEN_TEST_POSTGRES_URL`, else the local server's `test` database. */
export const TEST_POSTGRES_URL =
  process.env.WARDEN_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

let next = 0;

/** A schema name no other test (or test process) uses. */
export function uniqueSchema(prefix = "warden_test"): string {
  next += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${next}`;
}

/** Run SQL on the test database with a short-lived connection. */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Drop a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}
