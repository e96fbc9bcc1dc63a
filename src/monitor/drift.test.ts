import assert from "node:assert/strict";
import { test } from "node:test";
import {
  binCounts,
  chiSquaredContingency,
  chiSquaredGoodnessOfFit,
  fillEmptyProportions,
  jensenShannonDistance,
  ksTwoSample,
  normalizedWasserstein,
  populationStabilityIndex,
  psiNumeric,
  referenceQuantileEdges,
  wassersteinDistance,
} from "./drift.js";
import { closeTo, driftFixtures, sample } from "./drift-fixtures.js";

const fixtures = driftFixtures();

// Tolerances. Statistics: 1e-9 relative (sums of many terms; SciPy's NumPy pairwise sums and ours
// differ in rounding only). p-values: 1e-8 relative. The exact KS p-values run the same lattice
// recursion as SciPy and the chi-squared ones the same incomplete gamma, so agreement is far
// tighter in practice; 1e-8 leaves room for SciPy's own error (its kstwo.sf is about 1e-10 to 1e-12).
const STAT_RTOL = 1e-9;
const P_RTOL = 1e-8;

function assertClose(actual: number, expected: number, rtol: number, label: string): void {
  assert.ok(closeTo(actual, expected, rtol, 1e-300), `${label}: got ${actual}, SciPy ${expected}`);
}

test("ksTwoSample matches scipy.stats.ks_2samp (statistic, p-value, exact or asymptotic)", () => {
  for (const c of fixtures.ks) {
    const result = ksTwoSample(sample(c.a), sample(c.b));
    assert.equal(result.method, c.method, c.name);
    assertClose(result.statistic, c.statistic, STAT_RTOL, `${c.name} statistic`);
    assertClose(result.pValue, c.pValue, P_RTOL, `${c.name} p-value`);
  }
});

test("ksTwoSample: symmetric, and rejects empty or NaN input", () => {
  const a = [0.1, 0.5, 0.9, 1.3, 2.2];
  const b = [0.4, 0.45, 1.9, 2.5, 2.6, 3.1, 3.3];
  assert.deepEqual(ksTwoSample(a, b), ksTwoSample(b, a));
  assert.throws(() => ksTwoSample([], [1]), RangeError);
  assert.throws(() => ksTwoSample([Number.NaN], [1]), RangeError);
});

test("wassersteinDistance and the normalised variant match SciPy (and Evidently's normalisation)", () => {
  for (const c of fixtures.wasserstein) {
    const u = sample(c.u);
    const v = sample(c.v);
    assertClose(wassersteinDistance(u, v, c.uWeights, c.vWeights), c.distance, STAT_RTOL, c.name);
    if (c.normalized !== undefined) {
      assertClose(normalizedWasserstein(u, v), c.normalized, STAT_RTOL, `${c.name} normalised`);
    }
  }
  assert.throws(() => wassersteinDistance([1], [2], [-1]), RangeError);
});

test("chiSquaredGoodnessOfFit matches scipy.stats.chisquare with expected scaled to the current total", () => {
  for (const c of fixtures.chiSquaredGoodnessOfFit) {
    const result = chiSquaredGoodnessOfFit(c.current, c.reference);
    assert.equal(result.dof, c.dof, c.name);
    assertClose(result.statistic, c.statistic, STAT_RTOL, `${c.name} statistic`);
    assertClose(result.pValue, c.pValue, P_RTOL, `${c.name} p-value`);
  }
  const unseen = chiSquaredGoodnessOfFit([5, 5, 1], [10, 10, 0]);
  assert.equal(unseen.statistic, Number.POSITIVE_INFINITY);
  assert.equal(unseen.pValue, 0);
});

test("chiSquaredContingency matches scipy.stats.chi2_contingency (Yates for 2×2 by default)", () => {
  for (const c of fixtures.chiSquaredContingency) {
    const result = chiSquaredContingency(c.table, { correction: c.correction });
    assert.equal(result.dof, c.dof, c.name);
    assertClose(result.statistic, c.statistic, STAT_RTOL, `${c.name} statistic`);
    assertClose(result.pValue, c.pValue, P_RTOL, `${c.name} p-value`);
    result.expected.forEach((row, r) => {
      row.forEach((e, col) => {
        assertClose(e, c.expected[r]![col]!, 1e-12, `${c.name} expected`);
      });
    });
  }
  assert.throws(
    () =>
      chiSquaredContingency([
        [1, 0],
        [2, 0],
      ]),
    RangeError,
  );
});

test("jensenShannonDistance matches scipy.spatial.distance.jensenshannon", () => {
  for (const c of fixtures.jensenShannon) {
    const d = jensenShannonDistance(c.p, c.q, c.base ?? undefined);
    assertClose(d, c.distance, STAT_RTOL, c.name);
  }
  assert.equal(jensenShannonDistance([1, 2], [2, 4]), 0);
});

test("PSI: Evidently's published example, reference [3, 2, 2] vs current [1, 2, 3]", () => {
  // Proportions r = (3/7, 2/7, 2/7), c = (1/6, 2/6, 3/6); no bin is empty, so the 0.0001 rule
  // does not apply. Evidently: PSI = Σ (r − c) ln(r / c)
  //   (3/7 − 1/6) ln(18/7) = 0.2619048 × 0.9444616 = 0.2473590
  //   (2/7 − 2/6) ln(6/7)  = −0.0476190 × −0.1541507 = 0.0073405
  //   (2/7 − 3/6) ln(4/7)  = −0.2142857 × −0.5596158 = 0.1199177
  //   total 0.3746172 (≥ 0.2: a significant shift; Evidently flags drift at ≥ 0.1).
  const psi = populationStabilityIndex([3, 2, 2], [1, 2, 3]);
  const byHand =
    (3 / 7 - 1 / 6) * Math.log(18 / 7) +
    (2 / 7 - 2 / 6) * Math.log(6 / 7) +
    (2 / 7 - 3 / 6) * Math.log(4 / 7);
  assertClose(psi, byHand, 1e-14, "by hand");
  assert.ok(Math.abs(psi - 0.3746172) < 5e-8);
});

test("PSI: empty-bin rule and numeric decile bins match the fixture's NumPy computation", () => {
  // Empty bin: current [45, 35, 20, 0] → proportion 0 becomes 0.0001; smallest share ≤ 0.0001
  // → zeros become smallest / 10⁶.
  assert.deepEqual(fillEmptyProportions([0.5, 0, 0.5]), [0.5, 0.0001, 0.5]);
  assert.deepEqual(fillEmptyProportions([0.00005, 0, 0.99995]), [0.00005, 0.00005 / 1e6, 0.99995]);
  for (const c of fixtures.psi) {
    if (c.referenceSample === undefined) {
      assertClose(populationStabilityIndex(c.reference, c.current), c.psi, STAT_RTOL, c.name);
      continue;
    }
    const reference = sample(c.referenceSample);
    const current = sample(c.currentSample!);
    const edges = referenceQuantileEdges(reference, c.bins);
    assert.equal(edges.length, c.edges!.length, `${c.name} edges`);
    edges.forEach((e, i) => {
      assertClose(e, c.edges![i]!, 1e-14, `${c.name} edge ${i}`);
    });
    assert.deepEqual(binCounts(reference, edges), c.reference, `${c.name} reference counts`);
    assert.deepEqual(binCounts(current, edges), c.current, `${c.name} current counts`);
    assertClose(psiNumeric(reference, current, c.bins), c.psi, STAT_RTOL, c.name);
  }
});
