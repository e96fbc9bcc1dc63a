import assert from "node:assert/strict";
import { test } from "node:test";
import { type FeatureSpec, loadManifest, type Manifest, parseManifest } from "../config/index.js";
import { checkValue, encodeValue } from "../decision/index.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV } from "../testing/index.js";
import {
  type CounterfactualOption,
  type CounterfactualResult,
  findCounterfactuals,
} from "./counterfactuals.js";
import {
  computeReferenceStats,
  type NumericStats,
  type ReferenceStats,
  readReferenceRows,
} from "./reference-stats.js";
import type { BatchScorer } from "./types.js";

const demo = loadManifest(DEMO_XGB);
const reference = readReferenceRows(demo, HOLDOUT_CSV);
const demoScorer = xgboostScorer(demo);
const referenceScores = await demoScorer.score(reference.input, reference.rows);
const demoStats = computeReferenceStats(demo, reference, referenceScores);
const WIDTH = demo.modelFeatures.length;
const rowOf = (r: number) => reference.input.slice(r * WIDTH, (r + 1) * WIDTH);
// Denied holdout rows (P(bad) ≥ 0.5), spread over the holdout and over the range of scores.
const denied = Array.from({ length: reference.rows }, (_, r) => r).filter((r) => referenceScores[r]! >= 0.5);

/** The instance with an option's changes applied, encoded as the model sees it. */
function applied(manifest: Manifest, row: Float32Array, option: CounterfactualOption): Float32Array {
  const out = Float32Array.from(row);
  for (const change of option.changes) {
    const j = manifest.modelFeatures.findIndex((f) => f.name === change.feature);
    out[j] = encodeValue(manifest.modelFeatures[j]!, change.to);
  }
  return out;
}

async function scoreOf(scorer: BatchScorer, row: Float32Array): Promise<number> {
  return (await scorer(row, 1))[0]!;
}

/** Distance as documented, worked out from the statistics: |Δ| / spread, 1 per category, 0.5 per change. */
function expectedDistance(manifest: Manifest, stats: ReferenceStats, option: CounterfactualOption): number {
  let sum = 0;
  for (const { feature, from, to } of option.changes) {
    const spec = manifest.modelFeatures.find((f) => f.name === feature)!;
    const s = stats.features.find((f) => f.name === feature)!;
    if (spec.type === "number" || spec.type === "integer") {
      const { scale, median } = (s as NumericStats).all;
      sum +=
        from === null
          ? 1 + Math.abs((to as number) - median!) / scale
          : Math.abs((to as number) - (from as number)) / scale;
    } else sum += 1;
    sum += 0.5;
  }
  return sum;
}

/** Every property a result must have, checked against the scorer and the manifest. */
async function checkResult(
  manifest: Manifest,
  stats: ReferenceStats,
  row: Float32Array,
  scorer: BatchScorer,
  result: CounterfactualResult,
  favourable: (score: number) => boolean,
): Promise<void> {
  assert.equal(result.found, result.options.length > 0);
  const specs = new Map<string, FeatureSpec>(manifest.modelFeatures.map((f) => [f.name, f]));
  const sets = result.options.map((o) => new Set(o.changes.map((c) => c.feature)));
  for (const [i, option] of result.options.entries()) {
    assert.ok(option.changes.length > 0);
    const changedRow = applied(manifest, row, option);
    // It flips: scored again here, independently of the search's own scoring.
    const score = await scoreOf(scorer, changedRow);
    assert.equal(score, option.score);
    assert.ok(favourable(score), `option ${i} scores ${score}`);
    assert.equal(option.decision, result.target);
    for (const { feature, from, to } of option.changes) {
      const spec = specs.get(feature)!;
      assert.ok(!spec.immutable && !spec.sensitive, `${feature} is immutable`);
      assert.notDeepEqual(from, to);
      assert.notEqual(to, null, "a value is never withdrawn");
      // In range, whole for integers, a known category: what validation of a request would accept.
      assert.equal(checkValue(spec, to, feature), undefined, `${feature} → ${to}`);
      if (from !== null && spec.monotone === "increase_only")
        assert.ok((to as number) > (from as number), feature);
      if (from !== null && spec.monotone === "decrease_only")
        assert.ok((to as number) < (from as number), feature);
    }
    assert.ok(Math.abs(option.distance - expectedDistance(manifest, stats, option)) < 1e-9, `distance ${i}`);
    // Minimal: undoing any single change loses the flip.
    for (const undone of option.changes) {
      const back = applied(manifest, row, { ...option, changes: option.changes.filter((c) => c !== undone) });
      assert.ok(!favourable(await scoreOf(scorer, back)), `option ${i} does not need ${undone.feature}`);
    }
    // Diverse: no option changes every feature another one changes.
    for (const [k, other] of sets.entries()) {
      if (k !== i) assert.ok(![...other].every((f) => sets[i]!.has(f)), `option ${i} contains option ${k}`);
    }
  }
  for (let i = 1; i < result.options.length; i++) {
    assert.ok(result.options[i]!.distance >= result.options[i - 1]!.distance, "closest first");
  }
}

test("demo: options for denied applicants flip the decision within every constraint, minimal and diverse", async () => {
  const picks = [0, 0.2, 0.4, 0.6, 0.8, 0.99].map((q) => denied[Math.floor(q * denied.length)]!);
  let options = 0;
  for (const r of picks) {
    const row = rowOf(r);
    const before = demoScorer.rows();
    const result = await findCounterfactuals(demo, demoStats, row, demoScorer.score, { seed: 7 });
    assert.equal(result.decision, "bad");
    assert.equal(result.target, "good");
    assert.equal(result.score, referenceScores[r]);
    assert.ok(result.found, `row ${r}: ${result.reason}`);
    assert.equal(demoScorer.rows() - before, result.evaluations, "every scored row is counted");
    assert.ok(result.evaluations <= demo.explanations.counterfactuals.maxEvaluations);
    assert.ok(result.options.length <= 3);
    await checkResult(demo, demoStats, row, demoScorer.score, result, (s) => s < 0.5);
    options += result.options.length;
  }
  // Three per applicant where the model allows: fewer would mean the diversity rule found no other way.
  assert.ok(options >= 15, `${options} options for 6 applicants`);
});

test("demo: a missing income may be given, never a given value withdrawn", async () => {
  // Holdout row 43: Income not provided, P(bad) 0.83.
  const row = rowOf(43);
  assert.ok(Number.isNaN(row[demo.modelFeatures.findIndex((f) => f.name === "Income")]!));
  const result = await findCounterfactuals(demo, demoStats, row, demoScorer.score);
  await checkResult(demo, demoStats, row, demoScorer.score, result, (s) => s < 0.5);
  const income = result.options.flatMap((o) => o.changes).find((c) => c.feature === "Income");
  assert.ok(income !== undefined, "giving the income is one way out");
  assert.equal(income.from, null);
  assert.equal(typeof income.to, "number");
});

test("demo: the same seed gives the same options; another seed gives valid ones too", async () => {
  const row = rowOf(denied[3]!);
  const a = await findCounterfactuals(demo, demoStats, row, demoScorer.score, { seed: 11 });
  const b = await findCounterfactuals(demo, demoStats, row, demoScorer.score, { seed: 11 });
  assert.deepEqual(a, b);
  assert.equal(a.seed, 11);
  const c = await findCounterfactuals(demo, demoStats, row, demoScorer.score, { seed: 12 });
  await checkResult(demo, demoStats, row, demoScorer.score, c, (s) => s < 0.5);
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a.options[0]!.changes[0]));
});

test("demo: the evaluation budget is kept, and an exhausted one is reported", async () => {
  const row = rowOf(denied[5]!);
  const counted = xgboostScorer(demo);
  const small = await findCounterfactuals(demo, demoStats, row, counted.score, {
    maxEvaluations: 400,
    batchSize: 64,
  });
  assert.ok(counted.rows() <= 400, `${counted.rows()} rows scored`);
  assert.equal(small.evaluations, counted.rows());
  await checkResult(demo, demoStats, row, counted.score, small, (s) => s < 0.5);
  // A model that never changes its mind.
  const stubborn: BatchScorer = async (_input, rows) => new Float64Array(rows).fill(0.9);
  const none = await findCounterfactuals(demo, demoStats, row, stubborn, { maxEvaluations: 2000 });
  assert.equal(none.found, false);
  assert.deepEqual(none.options, []);
  assert.match(none.reason!, /within 2000 scored rows/);
  assert.ok(none.evaluations <= 2000);
});

/**
 * A linear model whose cheapest flip is known in closed form. Margin = b + w·x (category `kind` adds its
 * own weight); P(approved) = sigmoid(margin); the instance scores margin −1 (declined).
 */
function linearModel(options: { allImmutable?: boolean } = {}) {
  const immutable = options.allImmutable === true;
  const manifest = parseManifest(
    {
      name: "linear",
      version: "1",
      owner: "t",
      intended_use: "t",
      risk_tier: "limited",
      task: "binary",
      artifact: { path: "m.json", format: "xgboost-json", sha256: "0".repeat(64) },
      features: [
        { name: "x1", type: "number", min: 0, max: 200, immutable },
        {
          name: "x2",
          type: "number",
          min: -10,
          max: 10,
          monotone: immutable ? undefined : "decrease_only",
          immutable,
        },
        { name: "x3", type: "integer", min: 0, max: 100, immutable },
        { name: "flag", type: "boolean", immutable },
        { name: "kind", type: "category", categories: ["a", "b", "c"], immutable },
        { name: "fixed", type: "number", immutable: true },
      ],
      output: { labels: ["declined", "approved"], positive_label: "approved", favorable_label: "approved" },
    },
    "/models/linear/manifest.yaml",
  );
  const w = [0.02, -0.5, 0.1, 0.3, 0, 5];
  const kindWeight = [0, 0.4, 0.2];
  const bias = -1 - (0.02 * 50 - 0.5 * 3 + 0.1 * 20);
  const scorer: BatchScorer = async (input, rows) => {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let margin = bias;
      for (let j = 0; j < 6; j++) if (j !== 4) margin += w[j]! * input[r * 6 + j]!;
      margin += kindWeight[input[r * 6 + 4]!]!;
      out[r] = 1 / (1 + Math.exp(-margin));
    }
    return out;
  };
  // Reference rows whose spreads (MAD) are 10, 1 and 4 for x1, x2, x3.
  const k = [-2, -1, 0, 1, 2];
  const rows = k.map((d, i) => [50 + 10 * d, 3 + d, 20 + 4 * d, i % 2, i % 3, 0]);
  const instance = Float32Array.from([50, 3, 20, 0, 0, 0]);
  return { manifest, scorer, rows, instance };
}

test("linear model: the cheapest flip found is the analytic optimum, within the grid", async () => {
  const { manifest, scorer, rows, instance } = linearModel();
  const input = new Float32Array(rows.flat());
  const stats = computeReferenceStats(
    manifest,
    { input, rows: rows.length },
    await scorer(input, rows.length),
  );
  assert.deepEqual(
    stats.features.slice(0, 3).map((f) => (f as NumericStats).all.scale),
    [10, 1, 4],
  );
  // Needed: +1 of margin. Per unit of distance x1 gives 0.02·10 = 0.2, x2 0.5·1 = 0.5 (decreasing), x3
  // 0.1·4 = 0.4, flag 0.3 and kind at most 0.4 per change, which alone cannot flip; fixed is immutable.
  // Cheapest: x2 alone, Δ = −1 / 0.5 = −2, distance 2 + 0.5.
  const result = await findCounterfactuals(manifest, stats, instance, scorer, { seed: 3 });
  assert.equal(result.decision, "declined");
  assert.equal(result.target, "approved");
  assert.ok(result.found);
  const best = result.options[0]!;
  assert.deepEqual(
    best.changes.map((c) => c.feature),
    ["x2"],
  );
  assert.equal(best.changes[0]!.from, 3);
  assert.ok(Math.abs((best.changes[0]!.to as number) - 1) <= 0.01, `x2 → ${best.changes[0]!.to}`);
  assert.ok(Math.abs(best.distance - 2.5) <= 0.011, `distance ${best.distance}`);
  await checkResult(manifest, stats, instance, scorer, result, (s) => s >= 0.5);
  assert.ok(result.options.every((o) => o.changes.every((c) => c.feature !== "fixed")));
  // The next best ways avoid x2: x3 alone (+10, distance 3) is the cheapest of them.
  const second = result.options[1]!;
  assert.deepEqual(
    second.changes.map((c) => [c.feature, c.to]),
    [["x3", 30]],
  );
  assert.ok(Math.abs(second.distance - 3) < 1e-9, `second distance ${second.distance}`);
  // Without x2 and x3: x1 must give at least 0.3 of the margin with flag and kind, or 0.6 with kind b
  // (Δx1 = 15 or 30, distance 5 either way); x1 alone would cost 50 / 10 + 0.5.
  const third = result.options[2]!;
  assert.ok(third.changes.every((c) => c.feature !== "x2" && c.feature !== "x3"));
  assert.ok(Math.abs(third.distance - 5) <= 0.011, `third distance ${third.distance}`);
});

test("nothing may change: found is false, with the reason", async () => {
  const { manifest, scorer, rows, instance } = linearModel({ allImmutable: true });
  const input = new Float32Array(rows.flat());
  const stats = computeReferenceStats(
    manifest,
    { input, rows: rows.length },
    await scorer(input, rows.length),
  );
  const result = await findCounterfactuals(manifest, stats, instance, scorer);
  assert.equal(result.found, false);
  assert.match(result.reason!, /no feature may change/);
  assert.equal(result.evaluations, 1);
});

test("mistakes by the caller are refused", async () => {
  await assert.rejects(
    findCounterfactuals(demo, demoStats, new Float32Array(3), demoScorer.score),
    /the model has 11/,
  );
  const short: BatchScorer = async () => new Float64Array(0);
  await assert.rejects(
    findCounterfactuals(demo, demoStats, rowOf(denied[0]!), short),
    /returned 0 scores for 1 rows/,
  );
  const broken: BatchScorer = async (_input, rows) => new Float64Array(rows).fill(Number.NaN);
  await assert.rejects(
    findCounterfactuals(demo, demoStats, rowOf(denied[0]!), broken),
    /scored the instance NaN/,
  );
});
