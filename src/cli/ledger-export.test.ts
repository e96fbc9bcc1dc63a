import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parse } from "csv-parse/sync";
import { csvCell, flattenBody } from "../feedback/index.js";
import { type LedgerRecord, openSqliteLedger } from "../ledger/index.js";
import { sampleEntry } from "../ledger/testkit.js";
import {
  collect,
  DEMO_XGB,
  holdoutInstances,
  loadManifest,
  startTestServer,
  tempDir,
} from "../testing/index.js";
import { main } from "./index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
let records: LedgerRecord[];
const dir = tempDir("ledger-export");
const holdout = holdoutInstances(loadManifest(DEMO_XGB));

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const post = async (url: string, payload: unknown) => {
  const response = await server.app.inject({ method: "POST", url, payload: payload as object });
  assert.ok(response.statusCode < 300 || response.statusCode === 400, response.body);
  return response.json();
};

/** A ledger written through the real routes: decisions, a rejection, outcomes (one corrected) and an appeal. */
before(async () => {
  server = await startTestServer();
  const { decisions } = await post("/v1/models/credit-demo/decisions", {
    instances: holdout.slice(0, 6).map(({ features, subject }) => ({ features, subject })),
  });
  await post("/v1/models/credit-demo/decisions", { features: { Seniority: "x" } });
  await post(`/v1/decisions/${decisions[0].decision_id}/outcomes`, {
    outcome: "good",
    source: "origination",
  });
  await post(`/v1/decisions/${decisions[1].decision_id}/outcomes`, {
    outcome: "bad",
    source: "collections",
    note: 'says "late", twice,\nthen paid',
  });
  await post(`/v1/decisions/${decisions[0].decision_id}/outcomes`, { outcome: "bad", source: "collections" });
  await post(`/v1/decisions/${decisions[2].decision_id}/appeals`, { reason: "wrong", contact: "ref-1" });
  await server.writer.drain();
  records = await collect(server.ledger.scan());
  // The server's start records one deployment (the demo model going into production), then the above.
  assert.equal(records.length, 1 + 6 + 1 + 3 + 1);
  assert.equal(records[0]!.kind, "deployment");
});
after(async () => {
  await server.stop();
  dir.remove();
});

test("NDJSON: one full record per line, in sequence order, exactly as the ledger holds it", async () => {
  const result = await run("ledger", "export", "--data-dir", server.dataDir);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, `exported ${records.length} records as ndjson\n`);
  const lines = result.stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, records.length);
  lines.forEach((line, i) => {
    const record = records[i]!;
    assert.deepEqual(Object.keys(line), [
      "seq",
      "id",
      "kind",
      "time",
      "model",
      "version",
      "artifact_sha256",
      "body",
      "prev_hash",
      "hash",
    ]);
    assert.deepEqual(line, { ...record });
  });
});

test("CSV: fixed columns, flattened inputs/subject/outputs, one row per record that matches its record", async () => {
  const out = join(dir.path, "ledger.csv");
  const result = await run("ledger", "export", "--data-dir", server.dataDir, "--out", out);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "");
  const text = readFileSync(out, "utf8");
  const header = parse(text, { to_line: 1 })[0] as string[];
  assert.deepEqual(header.slice(0, 17), [
    "seq",
    "id",
    "kind",
    "time",
    "model",
    "version",
    "decision_id",
    "decision",
    "outputs.score",
    "threshold",
    "outcome",
    "source",
    "observed_at",
    "note",
    "reason",
    "contact",
    "requested_action",
  ]);
  assert.deepEqual(header.slice(-3), ["artifact_sha256", "prev_hash", "hash"]);
  // The demo model is high-risk: its subjects are recorded as commitments (docs/manifest.md#retention-and-privacy).
  assert.ok(header.includes("inputs.Income") && header.includes("subject.Age.commitment"));
  assert.ok(header.includes("outputs.probabilities.bad") && header.includes("error.code"));
  assert.ok(header.indexOf("inputs.Income") < header.indexOf("subject.Age.commitment"));
  const rows = parse(text, { columns: true }) as Record<string, string>[];
  assert.equal(rows.length, records.length);
  rows.forEach((row, i) => {
    const record = records[i]!;
    assert.equal(row.seq, String(record.seq));
    assert.equal(row.id, record.id);
    assert.equal(row.kind, record.kind);
    assert.equal(row.time, record.time);
    assert.equal(row.hash, record.hash);
    assert.equal(row.prev_hash, record.prev_hash);
    // Every body field is in its column, and nothing else is filled in.
    const flat = flattenBody(record.body);
    for (const column of header.slice(6, -3)) assert.equal(row[column], csvCell(flat.get(column)), column);
    if (record.kind === "decision") {
      const inputs = record.body.inputs as Record<string, unknown>;
      assert.equal(row["inputs.Income"], csvCell(inputs.Income));
      assert.equal(Number(row["outputs.score"]), (record.body.outputs as { score: number }).score);
      assert.equal(row.decision, record.body.decision);
    }
  });
  const corrected = rows.filter((r) => r.kind === "outcome");
  assert.deepEqual(
    corrected.map((r) => [r.outcome, r.source]),
    [
      ["good", "origination"],
      ["bad", "collections"],
      ["bad", "collections"],
    ],
  );
  assert.equal(corrected[1]!.note, 'says "late", twice,\nthen paid');
  assert.equal(rows.find((r) => r.kind === "rejection")!["error.code"], "WARDEN_ERR_VALIDATION");
});

test("filters: --kind (repeated or several values), --model, --since and --until", async () => {
  const kinds = async (...flags: string[]) => {
    const result = await run("ledger", "export", "--data-dir", server.dataDir, ...flags);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout
      .trimEnd()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as LedgerRecord);
  };
  assert.deepEqual(
    (await kinds("--kind", "outcome", "--kind", "appeal")).map((r) => r.kind),
    ["outcome", "outcome", "outcome", "appeal"],
  );
  assert.equal((await kinds("--kind", "decision", "rejection")).length, 7);
  assert.equal((await kinds("--model", "credit-demo")).length, records.length);
  assert.equal((await kinds("--model", "other")).length, 0);
  const cut = records[7]!.time;
  const since = await kinds("--since", cut);
  assert.deepEqual(
    since.map((r) => r.id),
    records.filter((r) => r.time >= cut).map((r) => r.id),
  );
  const until = await kinds("--until", cut, "--format", "ndjson");
  assert.deepEqual(
    until.map((r) => r.id),
    records.filter((r) => r.time < cut).map((r) => r.id),
  );
});

test("bad flags are usage errors (exit 2) with a clear message; a missing ledger fails (exit 1)", async () => {
  const cases: [string[], RegExp][] = [
    [["--format", "xml"], /--format must be one of ndjson, csv; got "xml"/],
    [
      ["--kind", "verdict"],
      /--kind must be one of decision, rejection, outcome, appeal, deployment, shadow, retention, review, breaker, access; got "verdict"/,
    ],
    [["--since", "yesterday"], /--since must be an ISO-8601 date .*; got "yesterday"/],
    [["--until", "2025-01-01T10:00:00"], /--until must be an ISO-8601/],
    [["--since", "2025-02-01", "--until", "2025-01-01"], /--since .* must be earlier than --until/],
    [["--colour", "red"], /unknown option '--colour'/],
  ];
  for (const [flags, message] of cases) {
    const result = await run("ledger", "export", "--data-dir", server.dataDir, ...flags);
    assert.equal(result.code, 2, flags.join(" "));
    assert.match(result.stderr, message, flags.join(" "));
    assert.equal(result.stdout, "");
  }
  const missing = await run("ledger", "export", "--data-dir", join(dir.path, "nowhere"));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read the ledger/);
  const unwritable = await run(
    "ledger",
    "export",
    "--data-dir",
    server.dataDir,
    "--out",
    join(dir.path, "no/such/file"),
  );
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.stderr, /cannot write to .*no\/such\/file/);
  assert.equal((await run("ledger", "export", "--help")).code, 0);
});

test("memory stays bounded: exporting 50,000 records grows the heap by a small fraction of the output", async () => {
  const big = tempDir("ledger-export-big");
  try {
    const store = openSqliteLedger(big.path);
    for (let n = 0; n < 50_000; n += 1000) {
      store.append(Array.from({ length: 1000 }, (_, i) => sampleEntry(n + i)));
    }
    store.close();
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    for (const format of ["ndjson", "csv"]) {
      gc();
      const baseline = process.memoryUsage().heapUsed;
      let peak = baseline;
      let bytes = 0;
      let writes = 0;
      // Standard output here is a sink that keeps nothing. Every 32 writes it collects garbage and looks at
      // what is still alive mid-export: an export that held its records would show them there.
      const code = await main(["ledger", "export", "--data-dir", big.path, "--format", format], {
        stdout: (text) => {
          bytes += text.length;
          if (++writes % 32 === 0) {
            gc();
            peak = Math.max(peak, process.memoryUsage().heapUsed);
          }
        },
        stderr: () => {},
      });
      assert.equal(code, 0);
      const grown = peak - baseline;
      assert.ok(bytes > 20_000_000, `${format}: exported ${bytes} characters`);
      assert.ok(writes >= 64, `${format}: ${writes} writes`);
      assert.ok(
        grown < bytes / 10,
        `${format}: the heap grew by ${(grown / 1e6).toFixed(1)} MB while exporting ${(bytes / 1e6).toFixed(1)} MB`,
      );
    }
  } finally {
    big.remove();
  }
});
