import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../explain/index.js";
import { chiSquaredSurvival } from "../monitor/index.js";
import { fairnessAudit } from "./audit.js";
import { percentileInterval, sampleBinomial, sampleMultinomial } from "./bootstrap.js";

function binomialPmf(n: number, p: number): number[] {
  const pmf = [(1 - p) ** n];
  for (let k = 0; k < n; k++) pmf.push((pmf[k]! * (n - k) * p) / ((k + 1) * (1 - p)));
  return pmf;
}

test("sampleBinomial: draws follow the binomial distribution (chi-squared goodness of fit, fixed seeds)", () => {
  for (const [n, p, seed] of [
    [10, 0.3, 1],
    [25, 0.9, 2],
    [6, 0.02, 3],
    [1, 0.5, 4],
  ] as const) {
    const random = seededRandom(seed);
    const draws = 100_000;
    const observed = new Array<number>(n + 1).fill(0);
    for (let i = 0; i < draws; i++) observed[sampleBinomial(random, n, p)]!++;
    const pmf = binomialPmf(n, p);
    // Pool cells expected below 5 into their neighbour, as a chi-squared test needs.
    let statistic = 0;
    let cells = 0;
    let pooledObserved = 0;
    let pooledExpected = 0;
    for (let k = 0; k <= n; k++) {
      pooledObserved += observed[k]!;
      pooledExpected += pmf[k]! * draws;
      if (pooledExpected >= 5 || k === n) {
        statistic += (pooledObserved - pooledExpected) ** 2 / Math.max(pooledExpected, 1e-300);
        cells++;
        pooledObserved = 0;
        pooledExpected = 0;
      }
    }
    const pValue = chiSquaredSurvival(statistic, Math.max(cells - 1, 1));
    assert.ok(pValue > 1e-3, `Binomial(${n}, ${p}): chi-squared p-value ${pValue}`);
  }
});

test("sampleBinomial: mean and variance at n = 10⁶, and the edge cases", () => {
  const random = seededRandom(11);
  const n = 1_000_000;
  const p = 0.27;
  const draws = 4000;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < draws; i++) {
    const x = sampleBinomial(random, n, p);
    assert.ok(Number.isInteger(x) && x >= 0 && x <= n);
    sum += x;
    squares += x * x;
  }
  const mean = sum / draws;
  const variance = squares / draws - mean * mean;
  const sd = Math.sqrt(n * p * (1 - p));
  // The sample mean's standard error is sd/√4000 ≈ 7; allow 5 of them. The variance within 10 %.
  assert.ok(Math.abs(mean - n * p) < (5 * sd) / Math.sqrt(draws), `mean ${mean}`);
  assert.ok(Math.abs(variance / (sd * sd) - 1) < 0.1, `variance ratio ${variance / (sd * sd)}`);
  assert.equal(sampleBinomial(random, 0, 0.5), 0);
  assert.equal(sampleBinomial(random, 7, 0), 0);
  assert.equal(sampleBinomial(random, 7, 1), 7);
  assert.throws(() => sampleBinomial(random, 2.5, 0.5), RangeError);
  assert.throws(() => sampleBinomial(random, 3, 1.5), RangeError);
});

test("sampleMultinomial: counts add up to n, zero weights get nothing, shares near the weights", () => {
  const random = seededRandom(5);
  const weights = [10, 0, 30, 60];
  const out = new Float64Array(4);
  const totals = [0, 0, 0, 0];
  for (let r = 0; r < 2000; r++) {
    sampleMultinomial(random, 1000, weights, out);
    assert.equal(
      out.reduce((a, b) => a + b, 0),
      1000,
    );
    assert.equal(out[1], 0);
    for (let k = 0; k < 4; k++) totals[k]! += out[k]!;
  }
  for (let k = 0; k < 4; k++) {
    assert.ok(Math.abs(totals[k]! / 2_000_000 - weights[k]! / 100) < 0.002, `cell ${k}: ${totals[k]}`);
  }
});

test("percentileInterval: NumPy's linear percentiles, undefined replicates left out and counted", () => {
  // np.percentile(np.arange(1, 11), [5, 95]) = [1.45, 9.55]
  const interval = percentileInterval(Float64Array.from([10, 3, Number.NaN, 1, 2, 4, 5, 6, 7, 8, 9]), 0.9);
  assert.ok(Math.abs(interval.lower - 1.45) < 1e-12 && Math.abs(interval.upper - 9.55) < 1e-12);
  assert.equal(interval.undefinedResamples, 1);
  const none = percentileInterval(Float64Array.from([Number.NaN, Number.NaN]), 0.95);
  assert.ok(Number.isNaN(none.lower) && Number.isNaN(none.upper));
  assert.equal(none.undefinedResamples, 2);
});

/** Two groups with known selection rates: A (400 rows, 0.3) and B (600 rows, 0.4); y independent of ŷ. */
function knownTruth(seed: number, rows = 1000) {
  const random = seededRandom(seed);
  const groups: string[] = [];
  const yTrue: number[] = [];
  const yPred: number[] = [];
  const scores: number[] = [];
  for (let i = 0; i < rows; i++) {
    const a = i < rows * 0.4;
    groups.push(a ? "A" : "B");
    yPred.push(random.next() < (a ? 0.3 : 0.4) ? 1 : 0);
    yTrue.push(random.next() < 0.5 ? 1 : 0);
    scores.push(random.next() * (a ? 0.6 : 1)); // mean score: A 0.3, B 0.5
  }
  return { groups: [{ name: "g", values: groups }], yTrue, yPred, scores };
}

test("bootstrap: the same seed gives the same intervals, another seed others", () => {
  const input = knownTruth(1);
  const a = fairnessAudit(input, { bootstrap: { seed: 42, resamples: 50 } });
  const b = fairnessAudit(input, { bootstrap: { seed: 42, resamples: 50 } });
  const c = fairnessAudit(input, { bootstrap: { seed: 43, resamples: 50 } });
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    a.criteria.demographicParity.difference.interval,
    c.criteria.demographicParity.difference.interval,
  );
  assert.deepEqual(a.bootstrap, { resamples: 50, seed: 42, level: 0.95, stratified: true, scheme: "rows" });
});

test("bootstrap: intervals of smooth figures contain their point estimate, for both schemes", () => {
  const { scores: _scores, ...countsOnly } = knownTruth(2);
  for (const [input, stratify] of [
    [knownTruth(2), true],
    [knownTruth(2), false],
    [countsOnly, true],
    [countsOnly, false],
  ] as const) {
    const audit = fairnessAudit(input, { bootstrap: { seed: 9, stratify } });
    const figures = [
      ...audit.groups.flatMap((g) => Object.values(g.metrics)),
      ...audit.groups.flatMap((g) => (g.meanScore === undefined ? [] : [g.meanScore])),
      audit.criteria.demographicParity.difference,
      audit.criteria.demographicParity.ratio,
      audit.individual.generalizedEntropy,
      audit.individual.theil,
    ];
    for (const f of figures) {
      const i = f.interval!;
      assert.ok(i.lower <= f.value && f.value <= i.upper, `${f.value} outside [${i.lower}, ${i.upper}]`);
      assert.equal(i.undefinedResamples, 0);
    }
  }
});

test("bootstrap: multinomial cell counts and row resampling give the same distribution for count figures", () => {
  const input = knownTruth(3, 2000);
  const { scores: _scores, ...countsOnly } = input;
  for (const stratify of [true, false]) {
    const byCells = fairnessAudit(countsOnly, { bootstrap: { seed: 1, resamples: 2000, stratify } });
    const byRows = fairnessAudit(input, { bootstrap: { seed: 2, resamples: 2000, stratify } });
    assert.equal(byCells.bootstrap!.scheme, "cell-counts");
    assert.equal(byRows.bootstrap!.scheme, "rows");
    const width = (f: { interval?: { lower: number; upper: number } }) =>
      f.interval!.upper - f.interval!.lower;
    for (const pick of [
      (a: typeof byCells) => a.criteria.demographicParity.difference,
      (a: typeof byCells) => a.groups[0]!.metrics.selection_rate,
      (a: typeof byCells) => a.groups[1]!.metrics.accuracy,
      (a: typeof byCells) => a.individual.theil,
    ]) {
      // 2000 resamples: a 95 % interval's width is known to about 5 %; allow 12 %.
      const ratio = width(pick(byCells)) / width(pick(byRows));
      assert.ok(Math.abs(ratio - 1) < 0.12, `stratify ${stratify}: width ratio ${ratio}`);
    }
  }
});

test("bootstrap: 95 % intervals cover the known truth in 90–99 % of 200 data sets (stratified, cell counts)", () => {
  let coveredDifference = 0;
  let coveredRate = 0;
  const trials = 200;
  for (let seed = 1; seed <= trials; seed++) {
    const { scores: _scores, ...input } = knownTruth(1000 + seed);
    const audit = fairnessAudit(input, { bootstrap: { seed, resamples: 200 } });
    const dp = audit.criteria.demographicParity.difference.interval!;
    if (dp.lower <= 0.1 && 0.1 <= dp.upper) coveredDifference++;
    const a = audit.groups[0]!.metrics.selection_rate.interval!;
    if (a.lower <= 0.3 && 0.3 <= a.upper) coveredRate++;
  }
  // Binomial(200, 0.95) lies in [180, 198] with probability > 0.999; the percentile bootstrap runs slightly
  // narrow at these sizes, which the lower end allows for.
  for (const covered of [coveredDifference, coveredRate]) {
    assert.ok(covered >= 180 && covered <= 198, `covered ${covered} of ${trials}`);
  }
});

test("bootstrap: the mean score's interval covers the truth too (row resampling)", () => {
  let covered = 0;
  const trials = 100;
  for (let seed = 1; seed <= trials; seed++) {
    const audit = fairnessAudit(knownTruth(5000 + seed, 500), { bootstrap: { seed, resamples: 200 } });
    const i = audit.groups[1]!.meanScore!.interval!;
    if (i.lower <= 0.5 && 0.5 <= i.upper) covered++;
  }
  // Binomial(100, 0.95) lies in [88, 100] with probability > 0.999.
  assert.ok(covered >= 88, `covered ${covered} of ${trials}`);
});
