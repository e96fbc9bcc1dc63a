/**
 * The library against scikit-learn and SciPy: fixtures/fairness/reference.json, written by
 * scripts/fixtures/make_fairness_fixtures.py from a seeded synthetic data set stored in the same file.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../testing/index.js";
import { fairnessAudit } from "./audit.js";
import {
  betweenGroupGeneralizedEntropyIndex,
  consistency,
  generalizedEntropyFromCells,
  generalizedEntropyIndex,
} from "./individual.js";
import { RATE_METRICS, type RateMetric } from "./metrics.js";
import { fisherExactTest, twoProportionZTest } from "./significance.js";

interface Reference {
  readonly data: {
    readonly sex: string[];
    readonly age: string[];
    readonly y_true: number[];
    readonly y_pred: number[];
    readonly score: number[];
    readonly features: number[][];
  };
  readonly bins: number;
  readonly reference: string;
  readonly groups: {
    readonly label: string;
    readonly count: number;
    readonly confusion: { tn: number; fp: number; fn: number; tp: number };
    readonly rates: Record<RateMetric, number | null>;
    readonly mean_score: number;
    readonly calibration: { count: number; observed_rate: number | null }[];
  }[];
  readonly disparities: Record<
    RateMetric,
    {
      difference: number;
      ratio: number | null;
      to_reference: { difference: number | null; ratio: number | null }[];
    }
  >;
  readonly tests: {
    metric: RateMetric;
    group: string;
    table: number[][];
    fisher: number;
    z: number;
    fisher_holm: number;
  }[];
  readonly entropy: { alpha: number; overall: number; between_groups: number }[];
  readonly consistency: { k: number; value: number }[];
  readonly fisher: { table: number[][]; fisher: number; z: number }[];
}

const reference: Reference = JSON.parse(
  readFileSync(join(REPO_ROOT, "fixtures/fairness/reference.json"), "utf8"),
);
const data = reference.data;

// Tolerances. Ratios of counts are the same division in both languages: 1e-12 absolute. Sums over rows (mean
// score, entropy indices) differ only in summation order (NumPy's pairwise sums): 1e-12 relative. p-values:
// SciPy sums hypergeometric probabilities from log-gamma, Warden by the ratio recurrence; 1e-9 relative.
// Between-group entropy indices: 1e-10 relative, as Σ((b/μ)^α − 1) over terms near 1 loses two to three digits
// to cancellation when the index is about 0.01.
const EXACT = 1e-12;
const BETWEEN_RTOL = 1e-10;
const P_RTOL = 1e-9;

function same(
  actual: number,
  expected: number | null,
  tolerance: number,
  label: string,
  relative = false,
): void {
  if (expected === null) {
    assert.ok(Number.isNaN(actual), `${label}: got ${actual}, expected undefined`);
    return;
  }
  const scale = relative ? Math.max(Math.abs(expected), 1e-300) : 1;
  assert.ok(
    Math.abs(actual - expected) <= tolerance * scale,
    `${label}: got ${actual}, reference ${expected}`,
  );
}

const audit = fairnessAudit(
  {
    groups: [
      { name: "sex", values: data.sex },
      { name: "age", values: data.age },
    ],
    yTrue: data.y_true,
    yPred: data.y_pred,
    scores: data.score,
  },
  { bootstrap: false, calibrationBins: reference.bins },
);

test("per-group confusion cells and rates match scikit-learn (confusion_matrix, recall_score, precision_score)", () => {
  assert.deepEqual(
    audit.groups.map((g) => g.group.label),
    reference.groups.map((g) => g.label),
  );
  for (const [i, want] of reference.groups.entries()) {
    const got = audit.groups[i]!;
    assert.equal(got.count, want.count);
    assert.deepEqual(got.confusion, want.confusion);
    assert.deepEqual(got.flags, want.count < 30 ? ["small"] : []);
    for (const metric of RATE_METRICS) {
      same(got.metrics[metric].value, want.rates[metric], EXACT, `${want.label} ${metric}`);
    }
    same(got.meanScore!.value, want.mean_score, EXACT, `${want.label} mean score`, true);
    for (const [b, bin] of want.calibration.entries()) {
      assert.equal(got.calibration![b]!.count, bin.count);
      same(got.calibration![b]!.observedRate.value, bin.observed_rate, EXACT, `${want.label} bin ${b}`);
    }
  }
});

test("disparities between groups and to the largest group match the reference", () => {
  for (const metric of RATE_METRICS) {
    const got = audit.disparities.find((d) => d.metric === metric)!;
    const want = reference.disparities[metric];
    assert.equal(got.reference, reference.reference);
    same(got.betweenGroups.difference.value, want.difference, EXACT, `${metric} difference`);
    same(got.betweenGroups.ratio.value, want.ratio, EXACT, `${metric} ratio`);
    for (const [g, entry] of want.to_reference.entries()) {
      same(got.toReference[g]!.difference.value, entry.difference, EXACT, `${metric} group ${g} − reference`);
      same(got.toReference[g]!.ratio.value, entry.ratio, EXACT, `${metric} group ${g} / reference`);
    }
  }
});

test("tests against the reference match scipy.stats.fisher_exact and chi2_contingency, Holm as computed there", () => {
  assert.equal(audit.tests.results.length, reference.tests.length);
  const zAudit = fairnessAudit(
    {
      groups: [
        { name: "sex", values: data.sex },
        { name: "age", values: data.age },
      ],
      yTrue: data.y_true,
      yPred: data.y_pred,
    },
    { bootstrap: false, test: "z" },
  );
  for (const [i, want] of reference.tests.entries()) {
    const got = audit.tests.results[i]!;
    assert.equal(got.metric, want.metric);
    assert.equal(got.group, want.group);
    assert.deepEqual(
      [
        [got.successes, got.trials - got.successes],
        [got.referenceSuccesses, got.referenceTrials - got.referenceSuccesses],
      ],
      want.table,
    );
    same(got.pValue, want.fisher, P_RTOL, `${want.metric} ${want.group} Fisher`, true);
    same(got.adjustedPValue, want.fisher_holm, P_RTOL, `${want.metric} ${want.group} Holm`, true);
    same(zAudit.tests.results[i]!.pValue, want.z, P_RTOL, `${want.metric} ${want.group} z`, true);
  }
});

test("fisherExactTest and twoProportionZTest match SciPy on tiny, tied, lopsided and large tables", () => {
  for (const { table, fisher, z } of reference.fisher) {
    const [[a, b], [c, d]] = table as [[number, number], [number, number]];
    same(fisherExactTest(a, b, c, d), fisher, P_RTOL, `Fisher ${JSON.stringify(table)}`, true);
    same(twoProportionZTest(a, a + b, c, c + d).pValue, z, P_RTOL, `z ${JSON.stringify(table)}`, true);
  }
});

test("generalized entropy indices match AI Fairness 360's formula (overall and between groups)", () => {
  const codes = data.sex.map((s, i) => `${s}|${data.age[i]}`);
  const groupCode = new Map([...new Set(codes)].map((c, i) => [c, i]));
  const numericCodes = codes.map((c) => groupCode.get(c)!);
  for (const { alpha, overall, between_groups } of reference.entropy) {
    same(generalizedEntropyIndex(data.y_true, data.y_pred, alpha), overall, EXACT, `GE(${alpha})`, true);
    same(
      betweenGroupGeneralizedEntropyIndex(data.y_true, data.y_pred, numericCodes, alpha),
      between_groups,
      BETWEEN_RTOL,
      `between-group GE(${alpha})`,
      true,
    );
    const cells = new Float64Array(4);
    for (const g of audit.groups) {
      cells[0]! += g.confusion.tn;
      cells[1]! += g.confusion.fp;
      cells[2]! += g.confusion.fn;
      cells[3]! += g.confusion.tp;
    }
    same(generalizedEntropyFromCells(cells, alpha), overall, EXACT, `GE(${alpha}) from cells`, true);
  }
  const two = reference.entropy.find((e) => e.alpha === 2)!;
  const one = reference.entropy.find((e) => e.alpha === 1)!;
  same(audit.individual.generalizedEntropy.value, two.overall, EXACT, "audit GE(2)", true);
  same(audit.individual.theil.value, one.overall, EXACT, "audit Theil", true);
  same(
    audit.individual.betweenGroupGeneralizedEntropy.value,
    two.between_groups,
    BETWEEN_RTOL,
    "audit between GE(2)",
    true,
  );
  same(
    audit.individual.betweenGroupTheil.value,
    one.between_groups,
    BETWEEN_RTOL,
    "audit between Theil",
    true,
  );
});

test("consistency matches AI Fairness 360's, with scikit-learn's NearestNeighbors", () => {
  const features = data.features.flat();
  const labels = data.y_pred.slice(0, data.features.length);
  for (const { k, value } of reference.consistency) {
    same(consistency(features, 3, labels, k), value, EXACT, `consistency k=${k}`);
  }
});
