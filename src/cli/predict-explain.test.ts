import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import {
  DEMO_ONNX,
  DEMO_XGB,
  demoCopy,
  HOLDOUT_CSV,
  loadManifest,
  REPO_ROOT,
  tempDir,
} from "../testing/index.js";
import { main } from "./index.js";

const dir = tempDir("predict-explain");
after(() => dir.remove());

/** The real CLI in a child process. */
async function warden(...argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/warden.js"), ...argv], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

/** The CLI in this process, for the quick refusals. */
async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const logit = (p: number) => Math.log(p / (1 - p));

/**
 * Shapley values of credit-demo rows (scripts/fixtures/make_shap_fixtures.py): encoded inputs, XGBoost's own
 * pred_contribs (float32) and the exact values from their definition (float64), bias last.
 */
interface ShapFixture {
  readonly inputs: (number | null)[][];
  readonly contribs: number[][];
  readonly exact: number[][];
}

/**
 * How far a row's contributions plus base may sit from the logit of the probability written. The engine
 * reproduces XGBoost's arithmetic: leaves summed into a float32 margin, the probability rounded to float32.
 * TreeSHAP works in float64, so it adds up to the float64 margin (checked to 1e-9 against the exact values
 * below); over 150 trees the float32 margin drifts from it by up to 2.2e-6 on the holdout.
 */
const FLOAT32_MARGIN = 5e-6;

/** The first `rows` rows of the demo holdout as a CSV file. */
function holdoutHead(name: string, rows: number): string {
  const lines = readFileSync(HOLDOUT_CSV, "utf8").trimEnd().split("\n");
  const path = join(dir.path, name);
  writeFileSync(path, `${lines.slice(0, rows + 1).join("\n")}\n`);
  return path;
}

test("predict --explain (XGBoost): TreeSHAP columns equal XGBoost's pred_contribs and the exact values, and add up to each row's margin", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const features = manifest.modelFeatures;
  const fixture = JSON.parse(
    readFileSync(join(REPO_ROOT, "fixtures/shap/credit-demo.json"), "utf8"),
  ) as ShapFixture;
  // The fixture's rows are encoded for the model: decode them into the values a CSV holds.
  const decoded = fixture.inputs.map((row) =>
    features.map((f, j) => {
      const v = row[j];
      if (v === null || v === undefined || Number.isNaN(v)) return "";
      if (f.type === "category") return f.categories![v]!;
      if (f.type === "boolean") return v === 1 ? "yes" : "no";
      return String(v);
    }),
  );
  const input = join(dir.path, "shap-rows.csv");
  writeFileSync(input, stringify([features.map((f) => f.name), ...decoded]));
  const result = await warden("predict", DEMO_XGB, input, "--explain", "--format", "csv");
  assert.equal(result.code, 0, result.stderr);
  const rows = parse(result.stdout, { columns: true }) as Record<string, string>[];
  assert.equal(rows.length, fixture.inputs.length);
  assert.deepEqual(Object.keys(rows[0]!), [
    "row",
    "decision",
    "score",
    "p_good",
    "p_bad",
    ...features.map((f) => `contribution_${f.name}`),
    "base",
    "reasons",
    "reason_codes",
    "error",
  ]);
  const codes = new Set([...features.map((f) => f.name), ...features.flatMap((f) => f.group ?? [])]);
  let adverse = 0;
  rows.forEach((row, i) => {
    const contributions = features.map((f) => Number(row[`contribution_${f.name}`]));
    const base = Number(row.base);
    const sum = contributions.reduce((a, b) => a + b, base);
    const exact = fixture.exact[i]!;
    const margin = exact.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - margin) < 1e-9, `row ${i + 1}: ${sum} vs float64 margin ${margin}`);
    assert.ok(Math.abs(sum - logit(Number(row.p_bad))) < FLOAT32_MARGIN, `row ${i + 1}: ${sum} vs margin`);
    // XGBoost computes in float32: its values are within a few float32 roundings of the exact ones.
    const theirs = fixture.contribs[i]!;
    [...contributions, base].forEach((c, j) => {
      const what = `row ${i + 1} ${features[j]?.name ?? "base"}`;
      assert.ok(Math.abs(c - theirs[j]!) < 1e-6, `${what}: ${c} vs XGBoost's ${theirs[j]}`);
      assert.ok(Math.abs(c - exact[j]!) < 1e-9, `${what}: ${c} vs exact ${exact[j]}`);
    });
    // Reasons are given toward the adverse outcome, one code per text.
    const texts = row.reasons === "" ? [] : row.reasons!.split(" | ");
    const rowCodes = row.reason_codes === "" ? [] : row.reason_codes!.split("|");
    assert.equal(texts.length, rowCodes.length, `row ${i + 1}`);
    assert.ok(rowCodes.length <= manifest.explanations.maxReasons);
    for (const code of rowCodes) assert.ok(codes.has(code), `row ${i + 1}: code ${code}`);
    if (row.decision === "bad") {
      adverse++;
      assert.ok(texts.length > 0, `row ${i + 1}: an adverse decision without reasons`);
    }
  });
  assert.ok(adverse > 0, "the fixture has adverse decisions");
});

test("predict --explain (XGBoost, NDJSON): every holdout row carries its explanation record", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const result = await warden("predict", DEMO_XGB, HOLDOUT_CSV, "--explain");
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 891);
  const names = manifest.modelFeatures.map((f) => f.name).sort();
  for (const line of lines) {
    const e = line.explanation;
    assert.equal(e.method, "treeshap");
    assert.equal(e.output, "log-odds of bad");
    assert.equal(e.adverse, line.decision === "bad");
    assert.deepEqual(Object.keys(e.contributions), names);
    const sum = Object.values(e.contributions as Record<string, number>).reduce((a, b) => a + b, e.base);
    assert.ok(Math.abs(sum - logit(line.probabilities.bad)) < FLOAT32_MARGIN, `row ${line.row}`);
    assert.match(e.reference_sha256, /^[0-9a-f]{64}$/);
  }
});

test("predict --explain (ONNX): KernelSHAP values add up to the explained log-odds minus the base, per seed", async () => {
  const manifest = loadManifest(DEMO_ONNX);
  const features = manifest.modelFeatures;
  const input = holdoutHead("onnx-rows.csv", 12);
  const explain = async (...flags: string[]) => {
    const result = await warden("predict", DEMO_ONNX, input, "--explain", "--format", "csv", ...flags);
    assert.equal(result.code, 0, result.stderr);
    return parse(result.stdout, { columns: true }) as Record<string, string>[];
  };
  const first = await explain();
  assert.equal(first.length, 12);
  const contributionsOf = (row: Record<string, string>) =>
    features.map((f) => Number(row[`contribution_${f.name}`]));
  for (const row of first) {
    const sum = contributionsOf(row).reduce((a, b) => a + b, 0);
    assert.ok(
      Math.abs(sum - (logit(Number(row.p_bad)) - Number(row.base))) < 1e-6,
      `row ${row.row}: ${sum} vs ${logit(Number(row.p_bad)) - Number(row.base)}`,
    );
    assert.equal(row.reasons!.split(" | ").length, row.reason_codes!.split("|").length);
  }
  // The default seed is 0; another seed samples other coalitions, and still adds up.
  const again = await explain("--explain-seed", "0");
  assert.deepEqual(again, first);
  const other = await explain("--explain-seed", "7", "--explain-samples", "300");
  assert.notDeepEqual(other.map(contributionsOf), first.map(contributionsOf));
  for (const row of other) {
    const sum = contributionsOf(row).reduce((a, b) => a + b, Number(row.base));
    assert.ok(Math.abs(sum - logit(Number(row.p_bad))) < 1e-6, `row ${row.row}`);
  }
});

test("predict --explain is refused for a model whose policy says never; bad flag combinations exit 2", async () => {
  const never = demoCopy(dir.path, { version: "1.0.0-never", policy: { explanations: { when: "never" } } });
  const input = holdoutHead("three.csv", 3);
  const refused = await run("predict", never, input, "--explain");
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /gives no explanations \(policy\.explanations\.when: never\)/);
  assert.match(refused.stderr, /leave out --explain/);
  assert.equal(refused.stdout, "");
  // Without --explain the same model scores as before.
  assert.equal((await run("predict", never, input)).code, 0);

  for (const [argv, message] of [
    [
      [DEMO_XGB, input, "--explain-samples", "500"],
      /--explain-samples applies to explanations: add --explain/,
    ],
    [[DEMO_ONNX, input, "--explain-seed", "3"], /--explain-seed applies to explanations: add --explain/],
    [[DEMO_XGB, input, "--explain", "--explain-seed", "3"], /applies to KernelSHAP; .* exact TreeSHAP/],
    [[DEMO_ONNX, input, "--explain", "--explain-samples", "5"], /--explain-samples must be at least 22/],
    [[DEMO_ONNX, input, "--explain", "--explain-samples", "many"], /--explain-samples must be an integer/],
  ] as const) {
    const result = await run("predict", ...argv);
    assert.equal(result.code, 2, `${argv.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stdout, "");
  }

  // An invalid row keeps its place, with empty explanation cells and its error.
  const lines = readFileSync(input, "utf8").trimEnd().split("\n");
  const mixed = join(dir.path, "mixed.csv");
  writeFileSync(
    mixed,
    `${[lines[0], lines[1], lines[2]!.replace('"rent"', '"castle"').replace('"owner"', '"castle"'), lines[3]].join("\n")}\n`,
  );
  const partly = await run("predict", DEMO_XGB, mixed, "--explain", "--format", "csv");
  assert.equal(partly.code, 1);
  const scored = parse(partly.stdout, { columns: true }) as Record<string, string>[];
  assert.deepEqual(
    scored.map((r) => [r.row, r.base === "", r.contribution_Income === "", r.error === ""]),
    [
      ["1", false, false, true],
      ["2", true, true, false],
      ["3", false, false, true],
    ],
  );
  assert.match(scored[1]!.error!, /features\.Home/);

  const help = await run("predict", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--explain /);
  assert.match(help.stdout, /contribution_<feature>/);
  assert.match(help.stdout, /reason_codes/);
  assert.match(help.stdout, /--explain-samples <n>/);
  assert.match(help.stdout, /--explain-seed <n>/);
});
