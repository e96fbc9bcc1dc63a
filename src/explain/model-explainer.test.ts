import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { loadEngine } from "../runtime/engines.js";
import type { ModelEngine } from "../runtime/types.js";
import { XGBoostEngine } from "../runtime/xgboost/index.js";
import {
  creditShapFixture,
  decodeRow,
  expectedReasons,
  expectedReasonText,
  favourableProfile,
  xgboostScoredHoldout,
} from "../testing/explanations.js";
import { DEMO_XGB, HOLDOUT_CSV, loadManifest } from "../testing/index.js";
import { loadModelReference, type ModelReference, treeShapExplainer } from "./model-explainer.js";

const manifest = loadManifest(DEMO_XGB);
const names = manifest.modelFeatures.map((f) => f.name);
const width = names.length;
const fixture = creditShapFixture();
const holdout = xgboostScoredHoldout();
const profile = favourableProfile(manifest, holdout);
let engine: ModelEngine;
let reference: ModelReference;

before(async () => {
  engine = await loadEngine(manifest);
  reference = (await loadModelReference(manifest, engine))!;
});
after(async () => {
  await engine.close();
});

/** The largest absolute value of a row's Shapley values and bias, for relative tolerances. */
const scaleOf = (values: readonly number[]) => Math.max(1, ...values.map(Math.abs));

describe("the reference rows of the XGBoost demo", () => {
  test("are the holdout file, scored as XGBoost scores them, split at the threshold", () => {
    assert.equal(reference.sha256, createHash("sha256").update(readFileSync(HOLDOUT_CSV)).digest("hex"));
    assert.equal(reference.rows.rows, holdout.scores.length);
    // Both are float32 probabilities; the sigmoid's exp may round one unit in the last place apart.
    holdout.scores.forEach((p, i) => {
      const ours = reference.scores[i]!;
      assert.ok(Math.abs(ours - p) <= 2 ** -22 * p, `row ${i}: ${ours} vs XGBoost ${p}`);
      assert.ok(Math.abs(p - manifest.output.threshold) > 1e-6, `row ${i} sits on the threshold`);
    });
    const favourable = holdout.scores.filter((p) => p < manifest.output.threshold).length;
    assert.equal(reference.stats!.favorableRows, favourable);
    assert.equal(reference.stats!.rows, holdout.scores.length);
  });
});

describe("TreeSHAP records of the XGBoost demo against XGBoost's pred_contribs (fixtures/shap/credit-demo.json)", () => {
  const explainer = () => treeShapExplainer(manifest, (engine as XGBoostEngine).model, reference);
  const input = new Float32Array(fixture.inputs.length * width);
  fixture.inputs.forEach((row, r) => {
    row.forEach((v, j) => {
      input[r * width + j] = v === null ? Number.NaN : v;
    });
  });

  test("every fixture row: contributions by name and base equal the exact values and XGBoost's own", async () => {
    assert.ok(engine instanceof XGBoostEngine);
    const output = await engine.predict(input, fixture.inputs.length);
    const inline = explainer();
    let checked = 0;
    fixture.inputs.forEach((row, r) => {
      const record = inline.explain(input, r, output, decodeRow(manifest, row));
      const exact = fixture.exact[r]!;
      const xgb = fixture.contribs[r]!;
      assert.equal(record.method, "treeshap");
      assert.equal(record.output, "log-odds of bad");
      assert.equal(record.reference_sha256, reference.sha256);
      assert.deepEqual(Object.keys(record.contributions), [...names].sort(), "keys in sorted order");
      const scale = scaleOf(exact);
      names.forEach((name, j) => {
        const ours = record.contributions[name]!;
        // float64 sums of the same leaves as the float64 enumeration: round-off only.
        assert.ok(
          Math.abs(ours - exact[j]!) <= 1e-9 * scale,
          `row ${r} ${name}: ${ours} vs exact ${exact[j]}`,
        );
        // XGBoost works in float32 (about 1e-7 of the largest value per operation, over 150 trees).
        assert.ok(Math.abs(ours - xgb[j]!) <= 1e-5 * scale, `row ${r} ${name}: ${ours} vs XGBoost ${xgb[j]}`);
      });
      assert.ok(Math.abs(record.base - exact[width]!) <= 1e-9 * scale, `row ${r} base ${record.base}`);
      assert.ok(Math.abs(record.base - xgb[width]!) <= 1e-5 * scale, `row ${r} base vs XGBoost`);
      // XGBoost's margin is a float32 running sum over the trees: within 1e-6 of its size of the exact sum.
      const sum = record.base + Object.values(record.contributions).reduce((a, b) => a + b, 0);
      const margin = fixture.margins[r]!;
      assert.ok(
        Math.abs(sum - margin) <= 1e-6 * Math.max(1, Math.abs(margin)),
        `row ${r}: ${sum} vs ${margin}`,
      );
      assert.equal(record.adverse, margin >= 0, `row ${r}: adverse is P(bad) >= 0.5`);
      checked++;
    });
    assert.equal(checked, fixture.rows.length);
  });

  test("every fixture row: the reasons are XGBoost's contributions grouped, and read as the manifest says", async () => {
    const output = await engine.predict(input, fixture.inputs.length);
    const inline = explainer();
    let withGroup = 0;
    let withMissing = 0;
    fixture.inputs.forEach((row, r) => {
      const values = decodeRow(manifest, row);
      const record = inline.explain(input, r, output, values);
      const expected = expectedReasons(manifest, fixture.exact[r]!);
      const reasons = record.reasons!;
      assert.ok(reasons.length <= 4);
      assert.deepEqual(
        reasons.map((x) => x.code),
        expected.map((x) => x.code),
        `row ${r}: reason codes`,
      );
      reasons.forEach((reason, k) => {
        const want = expected[k]!;
        assert.equal(reason.kind, want.kind);
        assert.ok(Math.abs(reason.contribution - want.contribution) <= 1e-9 * scaleOf(fixture.exact[r]!));
        if (k > 0) assert.ok(reason.contribution <= reasons[k - 1]!.contribution, "largest first");
        assert.ok(reason.contribution > 0);
        assert.equal(
          reason.text,
          expectedReasonText(manifest, profile, want, values),
          `row ${r} ${reason.code}`,
        );
        for (const factor of reason.factors) assert.equal(factor.value, values[factor.feature]);
        if (reason.kind === "group") withGroup++;
        if (reason.factors.some((f) => f.value === null)) withMissing++;
      });
    });
    // The rows reach the cases the texts distinguish.
    assert.ok(withGroup > 0, "a Loan size group among the reasons");
    assert.ok(withMissing > 0, "a reason about a missing value");
  });
});
