import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { encodeValue, type FeatureValue } from "../decision/input.js";
import { readXGBoostModel, type XGBoostModel } from "../runtime/xgboost/model.js";
import { computeMargins } from "../runtime/xgboost/predict.js";
import { DEMO_XGB, holdoutInstances, loadManifest, REPO_ROOT } from "../testing/index.js";
import { sampleBackground, weightedBackground } from "./background.js";
import { attributionOf, interventionalTreeShap } from "./interventional.js";
import { coalitionDesign, createKernelExplainer, kernelShap } from "./kernelshap.js";
import { seededRandom } from "./random.js";
import { binomial, exactInterventionalShapley } from "./shapley.js";

/** A nonlinear model with interactions and a missing-value branch, over any number of features. */
function nonlinear(m: number) {
  return (input: Float32Array, rows: number): Float64Array =>
    Float64Array.from({ length: rows }, (_, r) => {
      const x = (j: number) => {
        const v = input[r * m + (j % m)]!;
        return Number.isNaN(v) ? 0.7 - j / 10 : v;
      };
      return (
        0.5 * x(0) - x(1) + x(0) * x(1) - Math.sin(x(2) * x(3)) + Math.max(x(4), x(5)) * x(6) + x(7) ** 2 / 3
      );
    });
}

function marginScorer(model: XGBoostModel, group = 0) {
  return (input: Float32Array, rows: number): Float64Array => {
    const all = new Float64Array(rows * model.groups);
    computeMargins(model, input, rows, all);
    return Float64Array.from({ length: rows }, (_, r) => all[r * model.groups + group]!);
  };
}

function creditDemoRows(): { model: XGBoostModel; rows: Float32Array; count: number; features: number } {
  const manifest = loadManifest(DEMO_XGB);
  const encoded = holdoutInstances(manifest).map(({ features }) =>
    manifest.modelFeatures.map((f) => encodeValue(f, (features[f.name] ?? null) as FeatureValue)),
  );
  return {
    model: readXGBoostModel(manifest.artifact.absolutePath),
    rows: Float32Array.from(encoded.flat()),
    count: encoded.length,
    features: manifest.modelFeatures.length,
  };
}

function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let j = 0; j < expected.length; j++) {
    num += (actual[j]! - expected[j]!) ** 2;
    den += expected[j]! ** 2;
  }
  return Math.sqrt(num / den);
}

test("every coalition within the budget (2 to 10 features): exact Shapley values to 1e-8", async () => {
  for (let m = 2; m <= 10; m++) {
    const random = seededRandom(m);
    const n = 8;
    const data = Float32Array.from({ length: n * m }, () =>
      random.next() < 0.1 ? Number.NaN : random.normal(),
    );
    const background = weightedBackground(
      data,
      n,
      m,
      Array.from({ length: n }, () => 0.2 + random.next()),
    );
    const x = Float32Array.from({ length: 2 * m }, () => random.normal());
    const scorer = nonlinear(m);
    let calls = 0;
    const asyncScorer = async (input: Float32Array, rows: number) => {
      calls++;
      return scorer(input, rows);
    };
    const explained = await kernelShap(asyncScorer, x, 2, background);
    assert.equal(calls, 1 + 2, "the background once, then one call per row");
    for (let row = 0; row < 2; row++) {
      const result = explained[row]!;
      assert.equal(result.exhaustive, true);
      assert.equal(result.coalitions, 2 ** m - 2);
      const exact = await exactInterventionalShapley(scorer, x.subarray(row * m, (row + 1) * m), background);
      assert.ok(Math.abs(result.base - exact.base) < 1e-12, `base ${result.base} vs ${exact.base}`);
      for (let j = 0; j < m; j++) {
        const diff = Math.abs(result.values[j]! - exact.values[j]!);
        assert.ok(diff < 1e-8, `m ${m} row ${row} feature ${j}: ${result.values[j]} vs ${exact.values[j]}`);
      }
    }
  }
});

test("a feature equal to x in every background row (missing included) gets exactly 0", async () => {
  const m = 5;
  const random = seededRandom(9);
  const data = Float32Array.from({ length: 6 * m }, () => random.normal());
  const x = Float32Array.from({ length: m }, () => random.normal());
  for (let b = 0; b < 6; b++) {
    data[b * m + 1] = x[1]!;
    data[b * m + 3] = Number.NaN;
  }
  x[3] = Number.NaN;
  const background = weightedBackground(data, 6, m);
  const scorer = nonlinear(m);
  const [result] = await kernelShap(scorer, x, 1, background);
  assert.equal(result!.values[1], 0);
  assert.equal(result!.values[3], 0);
  assert.equal(result!.coalitions, 2 ** 3 - 2, "three features vary");
  const exact = await exactInterventionalShapley(scorer, x, background);
  for (let j = 0; j < m; j++) assert.ok(Math.abs(result!.values[j]! - exact.values[j]!) < 1e-9);
});

test("the coalition design: Shapley kernel weights when exhaustive, complements paired when sampled", () => {
  const m = 7;
  const full = coalitionDesign(m, undefined, seededRandom(0));
  assert.equal(full.exhaustive, true);
  assert.equal(full.count, 2 ** m - 2);
  const seen = new Set<string>();
  for (let k = 0; k < full.count; k++) {
    const mask = full.masks.subarray(k * m, (k + 1) * m);
    seen.add(mask.join(""));
    const s = mask.reduce((a, b) => a + b, 0);
    // π(s) = (M − 1) / (C(M, s) s (M − s)), normalised over all coalitions.
    const kernel = (m - 1) / (binomial(m, s) * s * (m - s));
    let total = 0;
    for (let t = 1; t < m; t++) total += (m - 1) / (t * (m - t));
    assert.ok(Math.abs(full.weights[k]! - kernel / total) < 1e-15, `size ${s}`);
  }
  assert.equal(seen.size, full.count, "no coalition twice");

  const sampled = coalitionDesign(12, 300, seededRandom(1));
  assert.equal(sampled.exhaustive, false);
  assert.equal(sampled.count, 300);
  assert.ok(Math.abs(sampled.weights.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const keys = new Set<string>();
  for (let k = 0; k < sampled.count; k++) keys.add(sampled.masks.subarray(k * 12, (k + 1) * 12).join(""));
  assert.equal(keys.size, 300);
  // Sizes 1 and 11 (24 coalitions) get enumerated; every other coalition has its complement in the design,
  // except at most one whose complement did not fit the budget.
  let unpaired = 0;
  for (const key of keys) {
    const complement = [...key].map((c) => (c === "1" ? "0" : "1")).join("");
    if (!keys.has(complement)) unpaired++;
  }
  assert.ok(unpaired <= 1, `${unpaired} unpaired`);
  for (const s of [1, 11]) {
    let count = 0;
    for (const key of keys) if ([...key].filter((c) => c === "1").length === s) count++;
    assert.equal(count, 12, `size ${s} enumerated`);
  }
});

test("a sampled budget: close to interventional TreeSHAP on fixture models, exactly additive", async () => {
  // Six features have 62 coalitions; 30 of them keeps sizes 1 and 5 whole and samples the rest. The error
  // is measured against the rows' mean attribution norm (a row whose own values are near 0 would make a
  // relative error meaningless). Over 20 rows × 10 seeds per model it was at most 4.7%, 8.4% and 2.4% for
  // the three models (median 1.3%, 2.0%, 0.7%); the bound of 15% is about twice the largest seen.
  for (const [name, group] of [
    ["binary-logistic-missing", 0],
    ["multi-softprob", 2],
    ["reg-squarederror", 0],
  ] as const) {
    const model = readXGBoostModel(`${REPO_ROOT}fixtures/xgboost/${name}/model.json`);
    const inputs = (
      JSON.parse(readFileSync(`${REPO_ROOT}fixtures/xgboost/${name}/reference.json`, "utf8")) as {
        inputs: (number | null)[][];
      }
    ).inputs.filter((row) => row.every((v) => v !== null));
    const data = Float32Array.from(inputs.flat(), (v) => v ?? Number.NaN);
    const background = sampleBackground(data, inputs.length, 6, 20, 3);
    const x = data.subarray(0, 4 * 6);
    const explainer = await createKernelExplainer(marginScorer(model, group), background);
    const results = await explainer.explain(x, 4, { nsamples: 30, seed: 5 });
    const tree = interventionalTreeShap(model, x, 4, background);
    const exact = results.map((_, row) => attributionOf(tree, row, group).values);
    const scale = exact.reduce((s, values) => s + Math.hypot(...values), 0) / exact.length;
    results.forEach((result, row) => {
      assert.equal(result.exhaustive, false);
      assert.equal(result.coalitions, 30);
      const error = Math.hypot(...result.values.map((v, j) => v - exact[row]![j]!)) / scale;
      assert.ok(error < 0.15, `${name} row ${row}: error ${error}`);
      const total = result.values.reduce((s, v) => s + v, result.base);
      assert.ok(
        Math.abs(total - result.prediction) <= 1e-9 * (1 + Math.abs(result.prediction)),
        `${name} additivity`,
      );
    });
  }
});

test("credit demo with 300 of 2046 coalitions: within 2.5% of interventional TreeSHAP; seeded", async () => {
  // With this background, over 30 rows × 5 seeds, the relative L2 error at 300 coalitions had median 0.5%
  // and max 1.2% (and with a 50-row k-means background: max 1.6% at 200, 0.8% at 500, falling like
  // 1/√nsamples). The bound of 2.5% is twice the largest seen; the exhaustive run must agree to float32
  // rounding of the engine's margins.
  const demo = creditDemoRows();
  const m = demo.features;
  const background = sampleBackground(demo.rows, demo.count, m, 20, 11);
  const explainer = await createKernelExplainer(marginScorer(demo.model), background);
  const x = demo.rows.subarray(100 * m, 104 * m);
  const tree = interventionalTreeShap(demo.model, x, 4, background);
  const sampled = await explainer.explain(x, 4, { nsamples: 300, seed: 1 });
  sampled.forEach((result, row) => {
    const exact = attributionOf(tree, row);
    assert.ok(Math.abs(result.base - exact.base) < 1e-5, "base");
    const error = relativeError(result.values, exact.values);
    assert.ok(error < 0.025, `row ${row}: relative error ${error}`);
    const total = result.values.reduce((s, v) => s + v, result.base);
    assert.ok(Math.abs(total - result.prediction) < 1e-9, `row ${row}: additivity`);
  });
  const again = await explainer.explain(x, 4, { nsamples: 300, seed: 1 });
  assert.deepEqual(
    again.map((r) => [...r.values]),
    sampled.map((r) => [...r.values]),
    "same seed, same values",
  );
  const other = await explainer.explain(x, 1, { nsamples: 300, seed: 2 });
  assert.notDeepEqual([...other[0]!.values], [...sampled[0]!.values], "another seed, other coalitions");

  // The same row alone, or split into calls of 1,000 rows, gives the same numbers.
  const alone = await explainer.explain(x.subarray(m, 2 * m), 1, {
    nsamples: 300,
    seed: 1,
    maxRowsPerCall: 1000,
  });
  assert.deepEqual([...alone[0]!.values], [...sampled[1]!.values]);

  const exhaustive = await explainer.explain(x, 1);
  assert.equal(exhaustive[0]!.exhaustive, true);
  const exact = attributionOf(tree, 0);
  for (let j = 0; j < m; j++) assert.ok(Math.abs(exhaustive[0]!.values[j]! - exact.values[j]!) < 1e-5);
});

test("a large background is summarised to 50 weighted rows (k-means) unless told otherwise", async () => {
  const demo = creditDemoRows();
  const m = demo.features;
  const scorer = marginScorer(demo.model);
  const full = weightedBackground(demo.rows, demo.count, m);
  const explainer = await createKernelExplainer(scorer, full);
  assert.equal(explainer.background.rows, 50);
  const sampled = await createKernelExplainer(scorer, full, {
    summary: { method: "sample", size: 30, seed: 4 },
  });
  assert.equal(sampled.background.rows, 30);
  const margins = scorer(sampled.background.data, 30);
  assert.ok(Math.abs(sampled.base - margins.reduce((s, v) => s + v, 0) / 30) < 1e-12);
  await assert.rejects(explainer.explain(demo.rows, demo.count + 1), RangeError);
  assert.throws(() => coalitionDesign(5, 0, seededRandom(0)), RangeError);
});
