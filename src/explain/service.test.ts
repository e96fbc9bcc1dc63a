import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadEngine } from "../runtime/engines.js";
import type { ModelEngine } from "../runtime/types.js";
import { creditShapFixture, decodeRow } from "../testing/explanations.js";
import { DEMO_XGB, loadManifest } from "../testing/index.js";
import type { CounterfactualResult } from "./counterfactuals.js";
import type { ExplanationRecord } from "./model-explainer.js";
import { createExplanationService, type ExplanationService } from "./service.js";

const manifest = loadManifest(DEMO_XGB);
const features = manifest.modelFeatures;
const names = features.map((f) => f.name);
const width = names.length;
const fixture = creditShapFixture();
let engine: ModelEngine;
let service: ExplanationService;

before(async () => {
  engine = await loadEngine(manifest);
  service = await createExplanationService(manifest, engine);
});
after(async () => {
  await engine.close();
});

/** Fixture rows: every fortieth, and the first four with a value not provided (2,046 coalitions each below). */
const missing = fixture.inputs.flatMap((row, k) => (row.includes(null) ? [k] : [])).slice(0, 4);
const picked = [...fixture.inputs.keys()].filter((k) => k % 40 === 0 || missing.includes(k));
const input = new Float32Array(picked.length * width);
picked.forEach((k, r) => {
  fixture.inputs[k]!.forEach((v, j) => {
    input[r * width + j] = v === null ? Number.NaN : v;
  });
});
const values = picked.map((k) => decodeRow(manifest, fixture.inputs[k]!));
const sumOf = (e: ExplanationRecord) => e.base + Object.values(e.contributions).reduce((a, b) => a + b, 0);

describe("the XGBoost demo's off-thread explainers", () => {
  test("interventional TreeSHAP adds up to XGBoost's margin of each row", async () => {
    const records = (await service.run({
      kind: "interventional",
      input,
      rows: picked.length,
      values,
    })) as ExplanationRecord[];
    assert.equal(records.length, picked.length);
    picked.forEach((k, r) => {
      const margin = fixture.margins[k]!;
      // Float64 sums of the leaves against XGBoost's float32 running sum over 150 trees.
      const gap = Math.abs(sumOf(records[r]!) - margin);
      assert.ok(gap <= 1e-6 * Math.max(1, Math.abs(margin)), `row ${k}: ${sumOf(records[r]!)} vs ${margin}`);
      assert.equal(records[r]!.adverse, margin >= 0);
    });
  });

  test("KernelSHAP over every coalition is interventional TreeSHAP: two algorithms, one game", async () => {
    // 2^11 − 2 = 2,046 coalitions: the regression then has every coalition and its solution is the exact
    // Shapley values of the same interventional game (the same k-means background of the reference rows).
    const job = { input, rows: picked.length, values } as const;
    const exhaustive = (await service.run({
      kind: "kernelshap",
      ...job,
      nsamples: 2046,
    })) as ExplanationRecord[];
    const exact = (await service.run({ kind: "interventional", ...job })) as ExplanationRecord[];
    // KernelSHAP sees the model through its float32 probabilities (logit taken in float64): a rounding of about
    // 2^-24 / (1 − p) log-odds per evaluation, 1e-5 at most for the background's probabilities; TreeSHAP reads
    // the leaves. Measured gap: under 1e-6.
    picked.forEach((k, r) => {
      const a = exhaustive[r]!;
      const b = exact[r]!;
      assert.ok(Math.abs(a.base - b.base) <= 1e-5, `row ${k} base: ${a.base} vs ${b.base}`);
      for (const name of names) {
        const gap = Math.abs(a.contributions[name]! - b.contributions[name]!);
        assert.ok(gap <= 1e-5, `row ${k} ${name}: ${a.contributions[name]} vs ${b.contributions[name]}`);
      }
      assert.deepEqual(
        a.reasons!.map((x) => x.code),
        b.reasons!.map((x) => x.code),
        `row ${k}: the same reasons`,
      );
    });
  });

  test("counterfactuals stay within the manifest's constraints and budget, and the engine confirms each flip", async () => {
    const { maxEvaluations } = manifest.explanations.counterfactuals;
    let options = 0;
    for (const [r, k] of picked.slice(0, 6).entries()) {
      const row = input.slice(r * width, (r + 1) * width);
      const result = (await service.run({ kind: "counterfactuals", row, seed: r })) as CounterfactualResult;
      assert.ok(result.evaluations <= maxEvaluations, `${result.evaluations} evaluations`);
      const decided = fixture.margins[k]! >= 0 ? "bad" : "good";
      assert.equal(result.decision, decided);
      assert.equal(result.target, decided === "bad" ? "good" : "bad");
      for (const option of result.options) {
        const changed = row.slice();
        for (const change of option.changes) {
          const j = names.indexOf(change.feature);
          const spec = features[j]!;
          assert.ok(!spec.immutable, `${change.feature} is immutable`);
          assert.equal(change.from, values[r]![change.feature]);
          const to = change.to;
          if (spec.type === "category") {
            assert.ok(spec.categories!.includes(to as string), `${to}`);
            changed[j] = spec.categories!.indexOf(to as string);
          } else if (spec.type === "boolean") {
            changed[j] = to ? 1 : 0;
          } else {
            assert.equal(typeof to, "number");
            const n = to as number;
            if (spec.min !== undefined) assert.ok(n >= spec.min, `${spec.name} ${n} < min`);
            if (spec.max !== undefined) assert.ok(n <= spec.max, `${spec.name} ${n} > max`);
            if (spec.type === "integer") assert.ok(Number.isInteger(n), `${spec.name} ${n}`);
            if (spec.monotone === "increase_only") assert.ok(n > (change.from as number));
            if (spec.monotone === "decrease_only") assert.ok(n < (change.from as number));
            changed[j] = n;
          }
        }
        // Scored by the engine directly: P(bad) on the target's side of the threshold, as the option says.
        const output = await engine.predict(changed, 1);
        const p = output.values[output.width - 1]!;
        assert.equal(p, option.score);
        assert.equal(p >= manifest.output.threshold ? "bad" : "good", result.target);
        options++;
      }
    }
    assert.ok(options > 0, "some options were found");
  });
});
