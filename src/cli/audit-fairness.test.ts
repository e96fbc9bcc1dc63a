import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parse } from "csv-parse/sync";
import { loadManifest } from "../config/index.js";
import { encodePolicyAttribute, fairnessAudit } from "../fairness/index.js";
import { DEMO_XGB, HOLDOUT_CSV, tempDir } from "../testing/index.js";
import { main } from "./index.js";

const dir = tempDir("fairness-cli");
after(() => dir.remove());

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const manifest = loadManifest(DEMO_XGB);
const holdout = parse(readFileSync(HOLDOUT_CSV), { columns: true }) as Record<string, string>[];
/** The model's decisions on the holdout, from `warden predict` (NDJSON): an independent path to the same figures. */
let predictions: { decision: string; score: number }[];

before(async () => {
  const out = join(dir.path, "predictions.ndjson");
  const result = await run("predict", DEMO_XGB, HOLDOUT_CSV, "--out", out);
  assert.equal(result.code, 0, result.stderr);
  predictions = readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  assert.equal(predictions.length, holdout.length);
});

test("JSON: every attribute and their intersection, with the figures fairnessAudit gives on warden predict's decisions", async () => {
  const out = join(dir.path, "audit.json");
  const result = await run(
    "audit",
    "fairness",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--out",
    out,
    "--resamples",
    "40",
    "--seed",
    "9",
  );
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(report.data.rows, 891);
  assert.equal(report.data.label_column, "Status");
  assert.equal(report.favourable_label, "good");
  assert.deepEqual(
    report.audits.map((a: { attributes: string[] }) => a.attributes),
    [["Age"], ["Marital"], ["Age", "Marital"]],
  );
  // Independently: the groups from the CSV, y and ŷ from the label and predict's decisions, P(good) as score.
  const [age, marital] = manifest.fairness.attributes;
  const groups = [
    encodePolicyAttribute(
      age!,
      holdout.map((r) => Number(r.Age)),
    ),
    encodePolicyAttribute(
      marital!,
      holdout.map((r) => (r.Marital === "" || r.Marital === "NA" ? null : r.Marital)),
    ),
  ];
  const yTrue = holdout.map((r) => (r.Status === "good" ? 1 : 0));
  const yPred = predictions.map((p) => (p.decision === "good" ? 1 : 0));
  const scores = predictions.map((p) => 1 - p.score);
  const options = {
    reference: "largest" as const,
    minGroupSize: 30,
    smallGroups: "exclude" as const,
    alpha: 0.05,
    bootstrap: { resamples: 40, seed: 9 },
  };
  const expected = [[groups[0]!], [groups[1]!], groups].map((g) =>
    JSON.parse(JSON.stringify(fairnessAudit({ groups: g, yTrue, yPred, scores }, options))),
  );
  report.audits.forEach((section: { audit: unknown }, i: number) => {
    assert.deepEqual(section.audit, expected[i]);
  });
  // Verdicts follow the figures and the policy's thresholds.
  const ageSection = report.audits[0];
  const dp = ageSection.criteria.find((c: { criterion: string }) => c.criterion === "demographic_parity");
  assert.equal(dp.value, expected[0].criteria.demographicParity.ratio.value);
  assert.equal(dp.threshold, 0.8);
  assert.equal(dp.verdict, dp.value >= 0.8 ? "pass" : "fail");
  assert.deepEqual(
    dp.interval,
    expected[0].criteria.demographicParity.ratio.interval && {
      lower: expected[0].criteria.demographicParity.ratio.interval.lower,
      upper: expected[0].criteria.demographicParity.ratio.interval.upper,
    },
  );
  const verdicts = report.audits.flatMap((a: { criteria: { verdict: string }[] }) =>
    a.criteria.map((c) => c.verdict),
  );
  assert.equal(
    report.verdict,
    verdicts.includes("fail") ? "fail" : verdicts.includes("insufficient") ? "insufficient" : "pass",
  );
  // The verdict is printed, and the exit code is 0 whatever it is.
  assert.match(result.stderr, new RegExp(`verdict: ${report.verdict.toUpperCase()}`));
  assert.match(result.stderr, /Age: (PASS|FAIL)/);
  // Small Marital groups are flagged and left out of comparisons.
  const widow = report.audits[1].audit.groups.find(
    (g: { group: { label: string } }) => g.group.label === "widow",
  );
  assert.deepEqual(widow.flags, ["small", "excluded"]);
});

test("HTML: one self-contained page with the criteria and group tables and SVG plots with interval bars", async () => {
  const out = join(dir.path, "audit.html");
  const result = await run(
    "audit",
    "fairness",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--by",
    "Marital",
    "--out",
    out,
    "--resamples",
    "20",
  );
  assert.equal(result.code, 0, result.stderr);
  const html = readFileSync(out, "utf8");
  assert.match(html, /^<!DOCTYPE html>/);
  assert.match(html, /<h2>Marital <span class="(pass|fail|insufficient)">/);
  assert.match(html, /<th>criterion<\/th>/);
  assert.match(html, /<td>demographic_parity<\/td>/);
  assert.match(html, /<td>married<\/td><td>636<\/td>/);
  assert.equal((html.match(/<svg /g) ?? []).length, 2);
  // One estimate per non-empty group and plot, with interval bars.
  assert.equal((html.match(/class="estimate"/g) ?? []).length, 10);
  assert.ok((html.match(/class="interval"/g) ?? []).length >= 8);
  assert.doesNotMatch(html, /<script|src="http|href="http/);
});

test("--format json to standard output; --label names another column", async () => {
  const relabelled = join(dir.path, "relabelled.csv");
  writeFileSync(relabelled, readFileSync(HOLDOUT_CSV, "utf8").replace(/^"Status"/, '"Outcome"'));
  const result = await run(
    "audit",
    "fairness",
    DEMO_XGB,
    relabelled,
    "--label",
    "Outcome",
    "--by",
    "Age",
    "--resamples",
    "0",
  );
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.data.label_column, "Outcome");
  assert.equal(report.audits.length, 1);
  assert.equal(report.audits[0].audit.bootstrap, null);
  const missing = await run("audit", "fairness", DEMO_XGB, relabelled, "--by", "Age");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no column "Status"/);
});

test("flags are validated: exit 2 with the reason", async () => {
  const cases: [string[], RegExp][] = [
    [["--by", "Income"], /"Income" is not an audited sensitive attribute/],
    [["--by", "Age,Age"], /names an attribute twice/],
    [["--by", "Age,"], /separated by commas/],
    [["--format", "pdf"], /--format must be one of json, html/],
    [["--seed", "-1"], /--seed must be an integer/],
    [["--resamples", "many"], /--resamples must be an integer/],
  ];
  for (const [flags, message] of cases) {
    const result = await run("audit", "fairness", DEMO_XGB, HOLDOUT_CSV, ...flags);
    assert.equal(result.code, 2, `${flags.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  const mitigate = await run("fairness", "mitigate", DEMO_XGB, HOLDOUT_CSV, "--constraint", "parity");
  assert.equal(mitigate.code, 2);
  assert.match(mitigate.stderr, /--constraint must be one of demographic_parity, equal_opportunity/);
  const tolerance = await run(
    "fairness",
    "mitigate",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--constraint",
    "equal_opportunity",
    "--tolerance",
    "2",
  );
  assert.equal(tolerance.code, 2);
  const noOut = await run("fairness", "reweigh", DEMO_XGB, HOLDOUT_CSV);
  assert.equal(noOut.code, 2);
});

test("bad rows are named by line and field, and nothing is audited (exit 1)", async () => {
  const lines = readFileSync(HOLDOUT_CSV, "utf8").split("\n");
  lines[3] = lines[3]!.replace(/^"good"/, '"maybe"');
  lines[5] = lines[5]!.replace(/^"(good|bad)",\d+/, '"$1",-4');
  const bad = join(dir.path, "bad.csv");
  writeFileSync(bad, lines.join("\n"));
  const result = await run("audit", "fairness", DEMO_XGB, bad);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /2 bad rows/);
  assert.match(
    result.stderr,
    /line 4, Status: expected one of the model's labels \(good, bad\), found "maybe"/,
  );
  assert.match(result.stderr, /line 6, Seniority: expected/);
  assert.equal(result.stdout, "");
});

test("fairness mitigate: thresholds meet the tolerance on the holdout, with the accuracy cost and the warning", async () => {
  const out = join(dir.path, "thresholds.json");
  const args = [
    "fairness",
    "mitigate",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--by",
    "Age",
    "--constraint",
    "demographic_parity",
    "--tolerance",
    "0.03",
  ];
  const result = await run(...args, "--out", out);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /ECOA|Equal Credit Opportunity Act/);
  const report = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(report.applied, false);
  assert.match(report.warning, /disparate treatment/);
  // Apply the thresholds to predict's scores independently: decide bad when score ≥ the group's threshold.
  const age = manifest.fairness.attributes[0]!;
  const codes = encodePolicyAttribute(
    age,
    holdout.map((r) => Number(r.Age)),
  ).codes;
  const threshold = new Map(
    report.groups.map((g: { group: string; threshold: { after: number } }) => [g.group, g.threshold.after]),
  );
  const selected = [0, 0, 0, 0];
  const sizes = [0, 0, 0, 0];
  let correct = 0;
  predictions.forEach((p, i) => {
    const g = codes[i]!;
    const good = p.score < (threshold.get(age.levels[g]!) as number);
    sizes[g]!++;
    if (good) selected[g]!++;
    if (good === (holdout[i]!.Status === "good")) correct++;
  });
  const rates = selected.map((s, g) => s / sizes[g]!);
  assert.ok(Math.max(...rates) - Math.min(...rates) <= 0.03 + 1e-12, String(rates));
  assert.ok(Math.abs(report.accuracy.after - correct / holdout.length) < 1e-12);
  assert.ok(Math.abs(report.accuracy.cost - (report.accuracy.before - report.accuracy.after)) < 1e-12);
  report.groups.forEach((g: { after: { selection_rate: number } }, i: number) => {
    assert.ok(Math.abs(g.after.selection_rate - rates[i]!) < 1e-12);
  });
  // Deterministic: the same recommendation again.
  const again = await run(...args);
  assert.deepEqual(JSON.parse(again.stdout), report);
});

test("fairness reweigh: one weight per row; the weighted share of good is the same in every group", async () => {
  const out = join(dir.path, "weights.csv");
  const result = await run("fairness", "reweigh", DEMO_XGB, HOLDOUT_CSV, "--by", "Marital", "--out", out);
  assert.equal(result.code, 0, result.stderr);
  const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[];
  assert.equal(rows.length, holdout.length);
  assert.deepEqual(Object.keys(rows[0]!), ["line", "row", "Marital", "Status", "weight"]);
  assert.equal(rows[0]!.line, "2");
  const overall = holdout.filter((r) => r.Status === "good").length / holdout.length;
  const byGroup = new Map<string, { total: number; good: number }>();
  for (const r of rows) {
    const entry = byGroup.get(r.Marital!) ?? { total: 0, good: 0 };
    entry.total += Number(r.weight);
    if (r.Status === "good") entry.good += Number(r.weight);
    byGroup.set(r.Marital!, entry);
  }
  assert.equal(byGroup.size, 5);
  for (const [group, { total, good }] of byGroup) assert.ok(Math.abs(good / total - overall) < 1e-9, group);
});
