import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import Database from "better-sqlite3";
import { parse } from "csv-parse/sync";
import { sha256File } from "../config/index.js";
import {
  DEMO_XGB,
  HOLDOUT_CSV,
  REPO_ROOT,
  startTestServer,
  tempDir,
  xgboostHoldoutReference,
} from "../testing/index.js";
import { main } from "./index.js";
import { DEMO_REQUEST } from "./paths.js";

const dir = tempDir("cli");
const DEMO_FEATURES = DEMO_REQUEST.features;
after(() => dir.remove());

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

test("--help works on every command and exits 0; no command or a bad flag exits 2", async () => {
  for (const argv of [
    ["--help"],
    ["serve", "--help"],
    ["predict", "--help"],
    ["ledger", "--help"],
    ["ledger", "verify", "--help"],
  ]) {
    const result = await run(...argv);
    assert.equal(result.code, 0, argv.join(" "));
    assert.match(result.stdout, /Usage: warden/, argv.join(" "));
  }
  assert.equal((await run()).code, 2);
  const unknown = await run("serve", "--colour", "red");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--colour'/);
  const port = await run("serve", "--port", "99999");
  assert.equal(port.code, 2);
  assert.match(port.stderr, /--port must be an integer from 0 to 65535; got "99999"/);
  const missing = await run("predict", DEMO_XGB);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing required argument 'input'/);
  const format = await run("predict", DEMO_XGB, HOLDOUT_CSV, "--format", "xml");
  assert.equal(format.code, 2);
  assert.match(format.stderr, /--format must be one of csv, ndjson/);
  const extension = await run("predict", DEMO_XGB, join(dir.path, "rows.txt"));
  assert.equal(extension.code, 2);
});

test("predict scores the holdout CSV like XGBoost, one output row per input row, in order", async () => {
  const out = join(dir.path, "scores.csv");
  const result = await run("predict", DEMO_XGB, HOLDOUT_CSV, "--out", out);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /note: ignoring columns that are not features: Status/);
  assert.match(result.stderr, /scored 891 of 891 rows/);
  const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[];
  const reference = xgboostHoldoutReference();
  assert.equal(rows.length, reference.length);
  rows.forEach((row, i) => {
    assert.equal(Number(row.row), i + 1);
    assert.ok(Math.abs(Number(row.score) - reference[i]!) < 1e-6, `row ${i + 1}`);
    assert.ok(Math.abs(Number(row.p_bad) - reference[i]!) < 1e-6);
    assert.equal(row.decision, reference[i]! >= 0.5 ? "bad" : "good");
    assert.equal(row.error, "");
  });
});

test("predict reports bad rows with row number and field, keeps going, and exits 1", async () => {
  const lines = readFileSync(HOLDOUT_CSV, "utf8").trimEnd().split("\n").slice(0, 5);
  const header = lines[0]!.split(",");
  const income = header.indexOf('"Income"');
  const bad = lines[2]!.split(",");
  bad[income] = "lots";
  lines[2] = bad.join(",");
  lines[4] = lines[4]!.replace('"rent"', '"castle"').replace('"owner"', '"castle"');
  const input = join(dir.path, "bad.csv");
  writeFileSync(input, `${lines.join("\n")}\n`);
  const result = await run("predict", DEMO_XGB, input, "--format", "ndjson");
  assert.equal(result.code, 1);
  const out = result.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(out.length, 4);
  assert.deepEqual(
    out.map((o) => o.row),
    [1, 2, 3, 4],
  );
  assert.equal(out[1].error[0].field, "features.Income");
  assert.equal(out[1].error[0].found, '"lots" (string)');
  assert.equal(out[3].error[0].field, "features.Home");
  assert.ok(typeof out[0].score === "number" && typeof out[2].score === "number");
  assert.match(
    result.stderr,
    /row 2: features\.Income: expected a finite number between 0 and 10000, or null, found "lots"/,
  );
});

test("serve with a data folder that cannot be made fails at once, naming it (exit 1)", async () => {
  const file = join(dir.path, "not-a-folder");
  writeFileSync(file, "x");
  const result = await run("serve", "--data-dir", join(file, "data"), "--port", "0");
  assert.equal(result.code, 1);
  assert.match(result.stderr, /data_dir: .*not-a-folder is a regular file, not a folder/);
});

test("predict refuses a CSV it cannot read as rows of the model: empty, a header naming no feature, a column named twice", async () => {
  const header = readFileSync(HOLDOUT_CSV, "utf8").split("\n")[0]!;
  for (const [name, text, message] of [
    ["empty.csv", "", /the file is empty: expected a header row naming the features/],
    ["other.csv", "a,b\n1,2\n", /the header names none of credit-demo's features \(Seniority, Home/],
    ["twice.csv", "Seniority,Home,Seniority\n1,rent,2\n", /the header names column "Seniority" twice/],
  ] as const) {
    const input = join(dir.path, name);
    writeFileSync(input, text);
    const result = await run("predict", DEMO_XGB, input);
    assert.equal(result.code, 1, name);
    assert.match(result.stderr, message);
  }
  // A header alone is a file of no rows: nothing to score, nothing wrong.
  const none = join(dir.path, "header-only.csv");
  writeFileSync(none, `${header}\n`);
  const empty = await run("predict", DEMO_XGB, none);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stderr, /scored 0 of 0 rows/);
});

test("predict reads NDJSON (flat or {features, subject}) and reports unparsable lines", async () => {
  const input = join(dir.path, "rows.ndjson");
  const features = DEMO_FEATURES;
  writeFileSync(
    input,
    `${JSON.stringify({ ...features, Age: 30 })}\n{oops\n${JSON.stringify({ features, subject: { Age: 30 } })}\n`,
  );
  const result = await run("predict", DEMO_XGB, input, "--format", "csv");
  assert.equal(result.code, 1);
  const rows = parse(result.stdout, { columns: true }) as Record<string, string>[];
  assert.equal(rows.length, 3);
  assert.ok(Math.abs(Number(rows[0]!.score) - xgboostHoldoutReference()[0]!) < 1e-6);
  assert.equal(rows[0]!.score, rows[2]!.score);
  assert.match(rows[1]!.error ?? "", /line: expected one JSON object per line/);
});

test("--device cuda fails with a clear error where the CUDA provider is not installed; a bad device is a usage error", async () => {
  const onnx = join(REPO_ROOT, "models/credit-demo-onnx/manifest.yaml");
  const cuda = await run("predict", onnx, HOLDOUT_CSV, "--device", "cuda");
  assert.equal(cuda.code, 1);
  assert.match(cuda.stderr, /CUDA/);
  assert.match(cuda.stderr, /device: cpu|--device cpu/);
  const bad = await run("serve", "--device", "tpu");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--device must be one of cpu, cuda; got "tpu"/);
});

test("predict fails clearly on a missing input file or an invalid manifest", async () => {
  const missing = await run("predict", DEMO_XGB, join(dir.path, "none.csv"));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist/);
  const manifest = join(dir.path, "bad.yaml");
  writeFileSync(manifest, "name: x\n");
  const invalid = await run("predict", manifest, HOLDOUT_CSV);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /invalid manifest/);
  assert.match(invalid.stderr, /\/version: expected a string \(required\), found missing — add it/);
});

test("predict names the file and line of input that cannot be read, and exits 1", async () => {
  const header = readFileSync(HOLDOUT_CSV, "utf8").split("\n", 2);
  const input = join(dir.path, "unclosed.csv");
  writeFileSync(input, `${header[0]}\n${header[1]}\n"good,9,rent,60\n`);
  const unclosed = await run("predict", DEMO_XGB, input);
  assert.equal(unclosed.code, 1);
  assert.match(unclosed.stderr, /^warden: cannot read .*unclosed\.csv, line 3: Quote Not Closed/m);
  assert.doesNotMatch(unclosed.stderr, /\n\s+at /, "no stack trace");
  const folder = join(dir.path, "folder.ndjson");
  mkdirSync(folder);
  const unreadable = await run("predict", DEMO_XGB, folder);
  assert.equal(unreadable.code, 1);
  assert.match(unreadable.stderr, /^warden: input file .*folder\.ndjson is a directory$/m);
  if (process.platform === "linux") {
    // A device would be read without end: refused before reading.
    const device = await run("predict", DEMO_XGB, "/dev/zero", "--input-format", "csv");
    assert.equal(device.code, 1);
    assert.match(device.stderr, /^warden: input file \/dev\/zero is a device$/m);
  }
  // A file without line ends is not rows: the record's length is bounded, not the memory it may take.
  const endless = join(dir.path, "endless.csv");
  writeFileSync(endless, `${header[0]}\n${"9".repeat(1_200_000)}`);
  const long = await run("predict", DEMO_XGB, endless);
  assert.equal(long.code, 1);
  assert.match(long.stderr, /^warden: cannot read .*endless\.csv, line 2: Max Record Size/m);
});

test("predict fails in one line, before scoring, when --out cannot be written", async () => {
  const out = join(dir.path, "missing", "scores.csv");
  const result = await run("predict", DEMO_XGB, HOLDOUT_CSV, "--out", out);
  assert.equal(result.code, 1);
  assert.equal(result.stderr, `warden: cannot write results to ${out}: ENOENT: no such file or directory\n`);
  assert.equal(result.stdout, "");
});

test("predict reports a write that fails while scoring as an output failure, not an input one", {
  skip: !existsSync("/dev/full") && "no /dev/full here",
}, async () => {
  // /dev/full opens fine and fails every write with ENOSPC, like a disk that fills up mid-run.
  const result = await run("predict", DEMO_XGB, HOLDOUT_CSV, "--out", "/dev/full");
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^warden: cannot write results to \/dev\/full: ENOSPC/m);
  assert.doesNotMatch(result.stderr, /cannot read|scored/);
});

test("predict to standard output leaves process.stdout's listeners as it found them", async () => {
  const before = process.stdout.listenerCount("error");
  const input = join(dir.path, "one.ndjson");
  writeFileSync(input, `${JSON.stringify({ ...DEMO_FEATURES, Age: 30 })}\n`);
  const result = await run("predict", DEMO_XGB, input);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(process.stdout.listenerCount("error"), before);
});

test("predict stops quietly, exit 0, when the reader of its standard output closes it", async () => {
  // Far more output than a pipe holds, so the CLI is still writing when the reader goes away (EPIPE).
  const [header, ...rows] = readFileSync(HOLDOUT_CSV, "utf8").trimEnd().split("\n");
  const input = join(dir.path, "long.csv");
  writeFileSync(input, `${[header, ...Array.from({ length: 30 }, () => rows).flat()].join("\n")}\n`);
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/warden.js"), "predict", DEMO_XGB, input], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, "exit");
  await once(child.stdout, "data");
  child.stdout.destroy();
  const [code, signal] = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /Error|\n\s+at |scored/);
});

test("ledger verify: ok N records, then the first tampered record after an edit", async () => {
  const server = await startTestServer();
  const body = { features: DEMO_FEATURES, subject: { Age: 30 } };
  // Record 1 is the demo model's start-up registration (a `deployment` record); 2–5 are decisions.
  for (let i = 0; i < 4; i++) {
    const response = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      payload: body,
    });
    assert.equal(response.statusCode, 200);
  }
  await server.close();
  const copy = tempDir("verify");
  try {
    copyFileSync(join(server.dataDir, "ledger.sqlite"), join(copy.path, "ledger.sqlite"));
    const ok = await run("ledger", "verify", "--data-dir", copy.path);
    assert.equal(ok.code, 0);
    // The server signed a checkpoint over its records when it stopped; this copy has no public key beside it.
    assert.equal(
      ok.stdout,
      "ok 5 records\n1 signed checkpoint verified (the latest covers 5 records); signatures NOT checked: no public key (pass --public-key)\n",
    );
    const signed = await run(
      "ledger",
      "verify",
      "--data-dir",
      copy.path,
      "--public-key",
      join(server.dataDir, "keys", "ledger-ed25519.pem.pub"),
    );
    assert.match(signed.stdout, /^ok 5 records\n1 signed checkpoint verified .*signatures checked with /);
    // Journaled entries a killed server did not commit are reported (one already in the ledger is not).
    const stored = new Database(join(copy.path, "ledger.sqlite"), { readonly: true });
    const line = stored
      .prepare("SELECT id, kind, time, model, version, entry FROM records WHERE seq = 5")
      .get() as Record<string, string>;
    stored.close();
    const journal = join(copy.path, "ledger-journal");
    mkdirSync(journal);
    const storedLine = `${line.id}\t${line.kind}\t${line.time}\t${line.model}\t${line.version}\t${line.entry}\n`;
    const pending = storedLine.replaceAll(line.id!, "0190c9a2-7b3e-7def-8abc-000000000001");
    writeFileSync(join(journal, "0000000001.log"), storedLine + pending);
    const waiting = await run("ledger", "verify", "--data-dir", copy.path);
    assert.equal(waiting.code, 0);
    assert.match(waiting.stdout, /^ok 5 records\n.*\n1 acknowledged record waits in the journal/);
    rmSync(journal, { recursive: true });
    // A head kept elsewhere catches a cut-off tail, which a chain alone cannot.
    const verified = new Database(join(copy.path, "ledger.sqlite"), { readonly: true });
    const head = verified.prepare("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").get() as {
      seq: number;
      hash: string;
    };
    verified.close();
    const anchored = await run(
      "ledger",
      "verify",
      "--data-dir",
      copy.path,
      "--anchor-seq",
      String(head.seq),
      "--anchor-hash",
      head.hash,
    );
    assert.equal(anchored.code, 0, anchored.stdout + anchored.stderr);
    const cut = tempDir("verify-cut");
    copyFileSync(join(copy.path, "ledger.sqlite"), join(cut.path, "ledger.sqlite"));
    const truncated = new Database(join(cut.path, "ledger.sqlite"));
    truncated.prepare("DELETE FROM records WHERE seq = 5").run();
    // The checkpoint signed when the server stopped covers 5 records: the cut tail is caught.
    const byCheckpoint = await run("ledger", "verify", "--data-dir", cut.path);
    assert.equal(byCheckpoint.code, 1);
    assert.match(byCheckpoint.stdout, /^FAILED: checkpoint 5: truncated/);
    // Without checkpoints, a chain alone misses it; a head kept elsewhere (an anchor) does not.
    truncated.prepare("DELETE FROM checkpoints").run();
    truncated.close();
    assert.equal(
      (await run("ledger", "verify", "--data-dir", cut.path)).code,
      0,
      "a chain alone misses a cut tail",
    );
    const caught = await run(
      "ledger",
      "verify",
      "--data-dir",
      cut.path,
      "--anchor-seq",
      "5",
      "--anchor-hash",
      head.hash,
    );
    assert.equal(caught.code, 1);
    cut.remove();
    assert.equal((await run("ledger", "verify", "--anchor-seq", "5")).code, 2);
    const db = new Database(join(copy.path, "ledger.sqlite"));
    db.prepare(
      'UPDATE records SET entry = replace(entry, \'"decision":"good"\', \'"decision":"bad"\') WHERE seq = 3',
    ).run();
    db.close();
    const bad = await run("ledger", "verify", "--data-dir", copy.path);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^FAILED: record 3 \(/);
    const none = await run("ledger", "verify", "--data-dir", join(copy.path, "nowhere"));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /ledger/);
  } finally {
    copy.remove();
    await server.stop();
  }
});

test("serve on a port already in use fails with one clear line and exit 1", async () => {
  const { createServer } = await import("node:net");
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const port = (blocker.address() as { port: number }).port;
  const data = tempDir("busy-port");
  try {
    const result = await run(
      "serve",
      "--port",
      String(port),
      "--data-dir",
      data.path,
      "--log-level",
      "silent",
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`),
    );
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  } finally {
    blocker.close();
    data.remove();
  }
});

test("predict reports a row the model answers with NaN as that row's error and scores the others", async () => {
  // multiclass.onnx propagates a missing value (NaN) to its output; the features are nullable.
  const folder = join(dir.path, "nan-model");
  mkdirSync(folder, { recursive: true });
  copyFileSync(join(REPO_ROOT, "fixtures/onnx/multiclass.onnx"), join(folder, "model.onnx"));
  const manifest = join(folder, "manifest.yaml");
  writeFileSync(
    manifest,
    JSON.stringify({
      name: "nan-model",
      version: "1",
      owner: "tests",
      intended_use: "a model that gives NaN for a missing value",
      risk_tier: "minimal",
      task: "multiclass",
      artifact: { path: "model.onnx", format: "onnx", sha256: sha256File(join(folder, "model.onnx")) },
      features: ["a", "b", "c", "d"].map((name) => ({ name, type: "number", nullable: true })),
      output: { labels: ["x", "y", "z"] },
    }),
  );
  const input = join(folder, "rows.csv");
  writeFileSync(input, "a,b,c,d\n1,2,3,4\n,2,3,4\n0.5,1,-1,2\n");
  const result = await run("predict", manifest, input);
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.row),
    [1, 2, 3],
  );
  assert.ok(lines[0].decision !== undefined && lines[2].decision !== undefined, "the other rows are scored");
  assert.equal(lines[1].error[0].field, "output");
  assert.match(lines[1].error[0].found, /non-finite output/);
  assert.match(result.stderr, /^row 2: .*non-finite output/m);
});
