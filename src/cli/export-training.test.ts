import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parse } from "csv-parse/sync";
import { sha256File } from "../config/index.js";
import { csvCell } from "../feedback/index.js";
import {
  DEMO_XGB,
  holdoutInstances,
  loadManifest,
  REPO_ROOT,
  startTestServer,
  tempDir,
} from "../testing/index.js";
import { main } from "./index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
const dir = tempDir("export-training");
const manifest = loadManifest(DEMO_XGB);
const holdout = holdoutInstances(manifest);
/** decision ids of the credit-demo decisions, in the order they were made. */
let ids: string[] = [];
let regressionId = "";
let correctionId = "";
let correctedAt = "";

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const post = async (url: string, payload: unknown, status: number) => {
  const response = await server.app.inject({ method: "POST", url, payload: payload as object });
  assert.equal(response.statusCode, status, response.body);
  return response.json();
};

function regressionManifest(): string {
  const artifact = join(REPO_ROOT, "fixtures/onnx/regression.onnx");
  const file = join(dir.path, "regression.yaml");
  writeFileSync(
    file,
    JSON.stringify({
      name: "reg-demo",
      version: "2",
      owner: "tests",
      intended_use: "training export tests",
      risk_tier: "minimal",
      task: "regression",
      artifact: { path: artifact, format: "onnx", sha256: sha256File(artifact) },
      features: ["x0", "x1", "x2", "x3"].map((name) => ({ name, type: "number" })),
    }),
  );
  return file;
}

/**
 * A ledger built through the real HTTP routes: six credit-demo decisions, of which 0 (corrected), 1 and 3
 * get outcomes, 2 only an appeal; a rejection; a regression decision with an outcome.
 */
before(async () => {
  server = await startTestServer({ models: [DEMO_XGB, regressionManifest()] });
  const { decisions } = await post(
    "/v1/models/credit-demo/decisions",
    { instances: holdout.slice(0, 6).map(({ features, subject }) => ({ features, subject })) },
    200,
  );
  ids = decisions.map((d: { decision_id: string }) => d.decision_id);
  await post("/v1/models/credit-demo/decisions", { features: { Seniority: -1 } }, 400);
  const outcome = (id: string, body: object) => post(`/v1/decisions/${id}/outcomes`, body, 201);
  await outcome(ids[0]!, { outcome: "good", source: "origination" });
  await outcome(ids[3]!, { outcome: "good", source: "origination" });
  await post(`/v1/decisions/${ids[2]}/appeals`, { reason: "please look again" }, 202);
  await outcome(ids[1]!, { outcome: "bad", source: "collections" });
  correctedAt = new Date().toISOString();
  correctionId = (await outcome(ids[0]!, { outcome: "bad", source: "collections", observed_at: correctedAt }))
    .outcome_id;
  const made = await post("/v1/models/reg-demo/decisions", { features: { x0: 1, x1: 2, x2: 3, x3: 4 } }, 200);
  regressionId = made.decision_id;
  await outcome(regressionId, { outcome: 12.5, source: "meter" });
  await server.writer.drain();
});
after(async () => {
  await server.stop();
  dir.remove();
});

test("CSV: one row per labelled decision, features in manifest order, the latest outcome as the label", async () => {
  const out = join(dir.path, "training.csv");
  const result = await run(
    "export",
    "training",
    "--model",
    "credit-demo",
    "--data-dir",
    server.dataDir,
    "--manifest",
    DEMO_XGB,
    "--out",
    out,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stderr,
    "exported 3 labelled decisions of credit-demo as csv (3 without an outcome left out)\n",
  );
  const text = readFileSync(out, "utf8");
  const header = parse(text, { to_line: 1 })[0] as string[];
  const features = manifest.modelFeatures.map((f) => f.name);
  assert.deepEqual(header, [
    "decision_id",
    "time",
    "version",
    ...features,
    "label",
    "label_source",
    "label_record_id",
    "label_observed_at",
  ]);
  assert.ok(!header.includes("Age") && !header.includes("Marital"), "sensitive attributes are not features");
  const rows = parse(text, { columns: true }) as Record<string, string>[];
  assert.deepEqual(
    rows.map((r) => [r.decision_id, r.label, r.label_source]),
    [
      [ids[0], "bad", "collections"],
      [ids[1], "bad", "collections"],
      [ids[3], "good", "origination"],
    ],
  );
  assert.equal(rows[0]!.label_record_id, correctionId);
  assert.equal(rows[0]!.label_observed_at, correctedAt);
  for (const row of rows) {
    const record = (await server.ledger.get(row.decision_id!))!;
    assert.equal(row.time, record.time);
    assert.equal(row.version, "1.0.0");
    const instance = holdout[ids.indexOf(row.decision_id!)]!;
    for (const name of features) assert.equal(row[name], csvCell(instance.features[name]), name);
  }
});

test("NDJSON without a manifest: features sorted by name; a regression model's label stays a number", async () => {
  const result = await run(
    "export",
    "training",
    "--model",
    "credit-demo",
    "--data-dir",
    server.dataDir,
    "--format",
    "ndjson",
  );
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  const names = manifest.modelFeatures.map((f) => f.name);
  assert.deepEqual(Object.keys(lines[0].features), [...names].sort());
  assert.deepEqual(lines[0].features, holdout[0]!.features);
  assert.deepEqual(Object.keys(lines[0]), [
    "decision_id",
    "time",
    "version",
    "features",
    "label",
    "label_source",
    "label_record_id",
    "label_observed_at",
  ]);

  const regression = await run(
    "export",
    "training",
    "--model",
    "reg-demo",
    "--data-dir",
    server.dataDir,
    "--out",
    join(dir.path, "r.jsonl"),
  );
  assert.equal(regression.code, 0, regression.stderr);
  const [row] = readFileSync(join(dir.path, "r.jsonl"), "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(row.decision_id, regressionId);
  assert.equal(row.label, 12.5);
  assert.deepEqual(row.features, { x0: 1, x1: 2, x2: 3, x3: 4 });
});

test("--since and --until select decisions by the time they were made", async () => {
  const time = (await server.ledger.get(ids[0]!))!.time;
  const later = new Date(Date.parse(time) + 3600_000).toISOString();
  const none = await run(
    "export",
    "training",
    "--model",
    "credit-demo",
    "--data-dir",
    server.dataDir,
    "--since",
    later,
  );
  assert.equal(none.code, 0, none.stderr);
  assert.deepEqual(parse(none.stdout), [
    ["decision_id", "time", "version", "label", "label_source", "label_record_id", "label_observed_at"],
  ]);
  const all = await run(
    "export",
    "training",
    "--model",
    "credit-demo",
    "--data-dir",
    server.dataDir,
    "--since",
    time,
    "--until",
    later,
  );
  assert.equal((parse(all.stdout, { columns: true }) as unknown[]).length, 3);
});

test("usage errors exit 2: no --model, a manifest of another model, a bad time or format", async () => {
  const base = ["export", "training", "--data-dir", server.dataDir];
  const cases: [string[], RegExp][] = [
    [[], /required option '--model <name>' not specified/],
    [["--model", "reg-demo", "--manifest", DEMO_XGB], /is for model "credit-demo", not --model "reg-demo"/],
    [["--model", "credit-demo", "--since", "2025-13-01"], /--since must be an ISO-8601/],
    [["--model", "credit-demo", "--format", "parquet"], /--format must be one of ndjson, csv/],
  ];
  for (const [flags, message] of cases) {
    const result = await run(...base, ...flags);
    assert.equal(result.code, 2, flags.join(" "));
    assert.match(result.stderr, message);
  }
  assert.equal((await run("export", "training", "--help")).code, 0);
});
