/**
 * The "ledger" suite (`npm run bench -- ledger`): how fast decisions are recorded and verified, on SQLite
 * and on PostgreSQL, next to a baseline from the same run that stores the same rows without the ledger's
 * work (plain INSERTs of the same text in the same batch sizes: no canonical JSON, hash chain or journal).
 *
 *   SQLite: 1M entries through the real writer (journal on the calling thread, hash chain and commit on the
 *   ledger thread), counted from the first write until the last entry is committed; the same rows as
 *   plain inserts; then `verifyLedger` over the 1M records.
 *   PostgreSQL: the same number of entries split over 1, 2 and 4 writer processes (each with its own journal
 *   and ledger thread) appending to one ledger at once; plain UNNEST inserts as the baseline; verification.
 *
 * `WARDEN_BENCH_RECORDS` sets the count (default 1,000,000). PostgreSQL runs against
 * `WARDEN_BENCH_POSTGRES_URL` (default the local `test` database) in a schema of its own, dropped after.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import pg from "pg";
import {
  type LedgerEntry,
  startLedgerThread,
  verifyLedgerAt,
  verifyLedgerParallel,
} from "../ledger/index.js";
import { sampleEntry } from "../ledger/testkit.js";
import { tempDir } from "../testing/index.js";
import { type BenchSuite, BenchUsageError, describeMachine, formatTable, progress } from "./suite.js";

const DEFAULT_RECORDS = 1_000_000;
const WRITER_COUNTS = [1, 2, 4] as const;
const BATCH = 512;
const POSTGRES_URL = process.env.WARDEN_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const CHILD = fileURLToPath(new URL("./ledger-child.js", import.meta.url));

function recordCount(): number {
  const raw = process.env.WARDEN_BENCH_RECORDS;
  if (raw === undefined || raw.trim() === "") return DEFAULT_RECORDS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1000 || n > 10_000_000) {
    throw new BenchUsageError(
      `WARDEN_BENCH_RECORDS must be an integer from 1000 to 10000000, not ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const count = (v: number) => Math.round(v).toLocaleString("en-US");

/**
 * Write `n` entries (`entry(1)` … `entry(n)`, sampleEntry by default) through the threaded writer into `dir`;
 * returns seconds until all are committed. The fairness suite writes its decisions with it too.
 */
export async function sqliteWriter(
  dir: string,
  n: number,
  entry: (i: number) => LedgerEntry = sampleEntry,
): Promise<number> {
  const writer = await startLedgerThread(dir);
  const started = process.hrtime.bigint();
  for (let from = 1; from <= n; from += 10_000) {
    const writes: Promise<void>[] = [];
    for (let i = from; i < Math.min(from + 10_000, n + 1); i++) writes.push(writer.write(entry(i)));
    await Promise.all(writes);
  }
  await writer.drain();
  const elapsed = seconds(started);
  await writer.close();
  return elapsed;
}

/** The baseline: the same rows (text prepared beforehand) as plain SQLite inserts in batches. */
function sqlitePlain(dir: string, n: number): number {
  const db = new Database(`${dir}/plain.sqlite`);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(
    "CREATE TABLE records (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT, time TEXT, model TEXT, version TEXT, entry TEXT)",
  );
  const insert = db.prepare("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)");
  const started = process.hrtime.bigint();
  const many = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const e = sampleEntry(i);
      insert.run(i, e.id, e.kind, e.time, e.model, e.version, JSON.stringify(e.body));
    }
  });
  for (let from = 1; from <= n; from += BATCH) many(from, Math.min(from + BATCH, n + 1));
  const elapsed = seconds(started);
  db.close();
  return elapsed;
}

/** Run `writers` child processes that append `n` entries in all to one PostgreSQL ledger; returns seconds. */
async function postgresWriters(schema: string, writers: number, n: number, offset: number): Promise<number> {
  const per = Math.ceil(n / writers);
  const children = Array.from({ length: writers }, () =>
    fork(CHILD, [], { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] }),
  );
  const ready = children.map((c) => new Promise<void>((resolve) => c.once("message", () => resolve())));
  children.forEach((c, w) => {
    c.send({
      url: POSTGRES_URL,
      schema,
      from: offset + w * per + 1,
      count: Math.min(per, n - w * per),
      writer: `bench-${w + 1}`,
    });
  });
  await Promise.all(ready);
  const started = process.hrtime.bigint();
  const done = children.map(
    (c) =>
      new Promise<void>((resolve, reject) => {
        c.once("message", (m: { error?: string }) => (m.error ? reject(new Error(m.error)) : resolve()));
        c.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))));
      }),
  );
  for (const c of children) c.send("go");
  await Promise.all(done);
  return seconds(started);
}

async function postgresPlain(n: number): Promise<number> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  const table = `warden_bench_plain_${process.pid}`;
  await client.query(
    `CREATE TABLE ${table} (seq BIGINT PRIMARY KEY, id TEXT UNIQUE, kind TEXT, time TEXT, model TEXT, version TEXT, entry TEXT)`,
  );
  try {
    const started = process.hrtime.bigint();
    for (let from = 1; from <= n; from += BATCH) {
      const cols: string[][] = [[], [], [], [], [], [], []];
      for (let i = from; i < Math.min(from + BATCH, n + 1); i++) {
        const e = sampleEntry(i);
        const values = [String(i), e.id, e.kind, e.time, e.model, e.version, JSON.stringify(e.body)];
        for (let c = 0; c < 7; c++) cols[c]!.push(values[c]!);
      }
      await client.query(
        `INSERT INTO ${table} SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
        cols,
      );
    }
    return seconds(started);
  } finally {
    await client.query(`DROP TABLE ${table}`);
    await client.end();
  }
}

export const ledgerSuite: BenchSuite = {
  async run() {
    const n = recordCount();
    const rows: string[][] = [];
    const lines = [
      "Warden benchmark: ledger",
      `machine: ${describeMachine()}`,
      `records: ${count(n)} decision entries of about 750 bytes each`,
      "",
    ];
    let passed = true;

    const dir = tempDir("bench-ledger");
    try {
      progress(`SQLite: ${count(n)} entries through the writer (journal, hash chain, group commit)`);
      const w = await sqliteWriter(dir.path, n);
      progress("SQLite: the same rows as plain inserts");
      const p = sqlitePlain(dir.path, n);
      rows.push(["SQLite", "1", count(n / w), count(n / p), (p / w).toFixed(2)]);
      progress(`SQLite: verify ${count(n)} records`);
      const started = process.hrtime.bigint();
      const result = await verifyLedgerParallel(dir.path);
      const v = seconds(started);
      const perMillion = (v * 1_000_000) / n;
      passed &&= result.ok && result.count === n;
      lines.push(
        `SQLite verify: ${count(result.count)} records in ${v.toFixed(2)} s (${count(result.count / v)} records/s) — ${result.ok && result.count === n ? "ok" : "FAILED"}; target < 10 s for 1M: ${perMillion.toFixed(2)} s per million — ${perMillion < 10 ? "met" : "MISSED"}`,
      );
    } finally {
      dir.remove();
    }

    const schema = `warden_bench_${process.pid}`;
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      progress("PostgreSQL: plain inserts (baseline)");
      const plain = await postgresPlain(n);
      let written = 0;
      for (const writers of WRITER_COUNTS) {
        progress(
          `PostgreSQL: ${count(n)} entries from ${writers} writer process${writers === 1 ? "" : "es"}`,
        );
        const s = await postgresWriters(schema, writers, n, written);
        written += n;
        rows.push(["PostgreSQL", String(writers), count(n / s), count(n / plain), (plain / s).toFixed(2)]);
      }
      progress(`PostgreSQL: verify ${count(written)} records`);
      const started = process.hrtime.bigint();
      const result = await verifyLedgerAt({ kind: "postgres", url: POSTGRES_URL, schema });
      const v = seconds(started);
      passed &&= result.ok && result.count === written;
      lines.push(
        `PostgreSQL verify: ${count(result.count)} records (written by all the runs above) in ${v.toFixed(2)} s (${count(result.count / v)} records/s) — ${result.ok && result.count === written ? "ok" : "FAILED"}`,
      );
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
    lines.splice(
      4,
      0,
      formatTable(["store", "writers", "appends/s", "plain inserts/s", "ratio"], rows),
      "",
      "SQLite target: ≥ 20,000 appends/s sustained",
      "",
    );
    process.stdout.write(`${lines.join("\n")}\n`);
    return passed ? 0 : 1;
  },
};
