import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { seededRandom } from "../explain/random.js";
import {
  type BinaryLabel,
  binaryMetrics,
  estimatedBinaryMetrics,
  estimatedRocAuc,
  expectedCalibrationError,
  rocAuc,
} from "./performance.js";
import {
  createPerformanceSummary,
  performanceKind,
  performanceSummaryFromJSON,
} from "./performance-summary.js";
import { countWindow } from "./window.js";

// Compiled to dist/monitor/performance.test.js: two levels below the repository root.
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface ConfusionFixture {
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
}

/** What scripts/fixtures/make_performance_fixtures.py writes for each case. */
interface PerformanceCase {
  readonly name: string;
  readonly threshold: number;
  readonly ece_bins: number;
  readonly scores: readonly number[];
  readonly labels: readonly (0 | 1)[];
  readonly realised: {
    readonly accuracy: number;
    readonly precision: number | null;
    readonly recall: number | null;
    readonly roc_auc: number | null;
    readonly brier: number;
    readonly ece: number;
    readonly confusion: ConfusionFixture;
  };
  readonly estimated: {
    readonly confusion: ConfusionFixture;
    readonly accuracy: number;
    readonly precision: number | null;
    readonly recall: number;
    readonly roc_auc: number;
  };
}

const CASES: readonly PerformanceCase[] = JSON.parse(
  readFileSync(join(ROOT, "fixtures/monitor/performance.json"), "utf8"),
).cases;

/** Summation order differs from numpy's (pairwise) and scikit-learn's: 1e-12 absolute on figures in [0, 1]. */
const TOLERANCE = 1e-12;

function close(actual: number, expected: number | null, what: string, tolerance = TOLERANCE): void {
  if (expected === null) {
    assert.ok(Number.isNaN(actual), `${what}: ${actual}, expected undefined (NaN)`);
    return;
  }
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs reference ${expected}`);
}

describe("realised metrics against scikit-learn (fixtures/monitor/performance.json)", () => {
  test("the fixtures cover ties, rare positives, miscalibration and nothing predicted positive", () => {
    const names = CASES.map((c) => c.name);
    for (const name of ["sklearn-doc", "calibrated", "overconfident", "ties", "rare", "none-predicted"]) {
      assert.ok(names.includes(name), name);
    }
  });

  for (const c of CASES) {
    test(c.name, () => {
      const m = binaryMetrics(c.scores, c.labels, { threshold: c.threshold, eceBins: c.ece_bins });
      assert.deepEqual({ ...m.confusion }, c.realised.confusion);
      close(m.accuracy, c.realised.accuracy, "accuracy");
      close(m.precision, c.realised.precision, "precision");
      close(m.recall, c.realised.recall, "recall");
      close(m.rocAuc, c.realised.roc_auc, "roc_auc_score");
      close(m.brier, c.realised.brier, "brier_score_loss");
      close(m.ece, c.realised.ece, "ECE");
    });
  }

  test("undefined figures are NaN; bad input is refused", () => {
    assert.ok(Number.isNaN(rocAuc([0.2, 0.9], [1, 1])));
    assert.ok(Number.isNaN(binaryMetrics([], []).accuracy));
    assert.equal(rocAuc([3, -1, 10], [true, false, true]), 1, "any real scores, boolean labels");
    assert.throws(() => binaryMetrics([0.5], [1, 0]), RangeError);
    assert.throws(() => binaryMetrics([1.5], [1]), RangeError);
    assert.throws(() => binaryMetrics([0.5], [2 as BinaryLabel]), RangeError);
    assert.equal(expectedCalibrationError([1, 1, 0], [1, 1, 0]), 0);
  });
});

describe("label-free estimates (CBPE) against the reference", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const e = estimatedBinaryMetrics(c.scores, { threshold: c.threshold });
      const n = c.scores.length;
      for (const k of ["tp", "fp", "tn", "fn"] as const) {
        close(e.confusion[k], c.estimated.confusion[k], `E[${k}]`, 1e-12 * n);
      }
      close(e.accuracy, c.estimated.accuracy, "accuracy");
      close(e.precision, c.estimated.precision, "precision");
      close(e.recall, c.estimated.recall, "recall");
      close(e.rocAuc, c.estimated.roc_auc, "expected ROC AUC");
    });
  }

  test("on a calibrated model the estimates land near the realised figures", () => {
    const c = CASES.find((x) => x.name === "calibrated")!;
    const m = binaryMetrics(c.scores, c.labels, { threshold: c.threshold });
    const e = estimatedBinaryMetrics(c.scores, { threshold: c.threshold });
    // 3000 draws: a few standard errors (about 0.01 for accuracy).
    assert.ok(Math.abs(e.accuracy - m.accuracy) < 0.03, `${e.accuracy} vs ${m.accuracy}`);
    assert.ok(Math.abs(e.rocAuc - m.rocAuc) < 0.03, `${e.rocAuc} vs ${m.rocAuc}`);
    assert.ok(Number.isNaN(estimatedRocAuc([1, 1])));
  });
});

describe("mergeable performance summary", () => {
  for (const c of CASES) {
    test(`${c.name}: exact figures match, AUCs within their stated bounds`, () => {
      const options = { threshold: c.threshold, eceBins: c.ece_bins, bins: c.ece_bins * 20 };
      // Three replicas, merged, then a JSON round trip.
      const parts = [0, 1, 2].map(() => createPerformanceSummary(options));
      c.scores.forEach((p, i) => {
        parts[i % 3]!.addOutcome(p, c.labels[i]!);
        parts[(i + 1) % 3]!.addDecision(p);
      });
      const merged = createPerformanceSummary(options);
      for (const part of parts) merged.merge(part);
      const s = performanceSummaryFromJSON(JSON.parse(JSON.stringify(merged)));
      const r = s.realised();
      assert.deepEqual({ ...r.confusion }, c.realised.confusion);
      close(r.accuracy, c.realised.accuracy, "accuracy");
      close(r.precision, c.realised.precision, "precision");
      close(r.recall, c.realised.recall, "recall");
      close(r.brier, c.realised.brier, "brier");
      close(r.ece, c.realised.ece, "ECE");
      if (c.realised.roc_auc !== null) {
        close(r.rocAuc, c.realised.roc_auc, "histogram AUC", r.rocAucErrorBound + TOLERANCE);
        assert.ok(r.rocAucErrorBound < 0.05, `bound ${r.rocAucErrorBound}`);
      }
      const e = s.estimated();
      close(e.accuracy, c.estimated.accuracy, "estimated accuracy");
      close(e.precision, c.estimated.precision, "estimated precision");
      close(e.recall, c.estimated.recall, "estimated recall");
      close(e.rocAuc, c.estimated.roc_auc, "histogram CBPE AUC", e.rocAucErrorBound + TOLERANCE);
    });
  }

  test("over a count window the summary follows the latest outcomes", () => {
    const r = seededRandom(21);
    const w = countWindow(performanceKind({ threshold: 0.5 }), { bucketSize: 100, buckets: 5 });
    const scores: number[] = [];
    const labels: (0 | 1)[] = [];
    for (let i = 0; i < 1250; i++) {
      // The model degrades after 700 outcomes: labels stop following the scores.
      const p = r.next();
      const y: 0 | 1 = (i < 700 ? r.next() < p : r.next() < 0.5) ? 1 : 0;
      scores.push(p);
      labels.push(y);
      w.add({ score: p, label: y });
    }
    const held = 4 * 100 + 50;
    const exact = binaryMetrics(scores.slice(-held), labels.slice(-held));
    const summary = w.summary().realised();
    assert.equal(summary.count, held);
    close(summary.accuracy, exact.accuracy, "windowed accuracy");
    close(summary.rocAuc, exact.rocAuc, "windowed AUC", summary.rocAucErrorBound + TOLERANCE);
    assert.ok(summary.rocAuc < 0.6, "the degraded model's AUC is near one half");
  });

  test("refuses bins that do not refine the ECE bins, and foreign JSON", () => {
    assert.throws(() => createPerformanceSummary({ bins: 25, eceBins: 10 }), RangeError);
    assert.throws(() => performanceSummaryFromJSON({ kind: "binary-performance", version: 1 }), TypeError);
  });
});
