import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../explain/index.js";
import { countOutcomes, encodeGroups, groupThresholds, rate, reweighing } from "./index.js";

/** A synthetic data set with group-dependent base rates and a score that tracks the label. */
function synthetic(n: number, seed: number) {
  const random = seededRandom(seed);
  const codes = new Uint32Array(n);
  const yTrue = new Uint8Array(n);
  const scores = new Float64Array(n);
  const base = [0.7, 0.5, 0.3];
  for (let i = 0; i < n; i++) {
    const u = random.next();
    const g = u < 0.5 ? 0 : u < 0.8 ? 1 : 2;
    codes[i] = g;
    const y = random.next() < base[g]! ? 1 : 0;
    yTrue[i] = y;
    // score = P(adverse): low for favourable rows, plus group-dependent shift and noise, rounded (ties happen).
    const raw = 0.55 - 0.3 * y + 0.1 * g + 0.6 * (random.next() - 0.5);
    scores[i] = Math.round(Math.min(1, Math.max(0, raw)) * 200) / 200;
  }
  return { codes, yTrue, scores };
}

test("reweighing makes the weighted label independent of the group: weighted P(y = 1 | g) = P(y = 1)", () => {
  const { codes, yTrue } = synthetic(5000, 3);
  const { weights, cells } = reweighing(codes, 3, yTrue);
  const overall = yTrue.reduce((a, b) => a + b, 0) / yTrue.length;
  for (let g = 0; g < 3; g++) {
    let total = 0;
    let positive = 0;
    let rows = 0;
    for (let i = 0; i < codes.length; i++) {
      if (codes[i] !== g) continue;
      rows++;
      total += weights[i]!;
      if (yTrue[i] === 1) positive += weights[i]!;
    }
    assert.ok(Math.abs(positive / total - overall) < 1e-12, `group ${g}: ${positive / total} vs ${overall}`);
    // Each group keeps its size as its total weight.
    assert.ok(Math.abs(total - rows) < 1e-9);
  }
  // Unweighted, the base rates differ a lot; the cell table says w = P(g)P(y)/P(g,y) from the counts.
  const cell = cells.find((c) => c.group === 2 && c.y === 1)!;
  const n2 = codes.filter((c) => c === 2).length;
  assert.ok(Math.abs(cell.weight - ((n2 / codes.length) * overall) / (cell.count / codes.length)) < 1e-12);
});

test("reweighing: a hand-checked table", () => {
  // g0: y = 1, 1, 0; g1: y = 0. P(g0) = 3/4, P(y=1) = 1/2, P(g0, y=1) = 1/2 → w = 3/4.
  const { weights } = reweighing([0, 0, 0, 1], 2, [1, 1, 0, 0]);
  assert.deepEqual([...weights], [0.75, 0.75, 1.5, 0.5]);
});

for (const constraint of ["demographic_parity", "equal_opportunity"] as const) {
  for (const favourableIsPositive of [false, true]) {
    test(`${constraint} thresholds (favourable ${favourableIsPositive ? "positive" : "negative"}) meet the tolerance on the data, deterministically`, () => {
      const data = synthetic(4000, 11);
      // When the favourable outcome is the positive label, the score is P(favourable).
      const scores = favourableIsPositive ? data.scores.map((s) => 1 - s) : data.scores;
      const input = {
        codes: data.codes,
        groupCount: 3,
        scores,
        yTrue: data.yTrue,
        favourableIsPositive,
        threshold: 0.5,
      };
      const options = { constraint, tolerance: 0.02, minGroupSize: 30 };
      const found = groupThresholds(input, options);
      // Apply the thresholds independently and measure the rates with the audit's own counting.
      const yPred = new Uint8Array(scores.length);
      for (let i = 0; i < scores.length; i++) {
        const positive = scores[i]! >= found.thresholds[data.codes[i]!]!;
        yPred[i] = positive === favourableIsPositive ? 1 : 0;
      }
      assert.deepEqual(yPred, found.yPred);
      const encoding = encodeGroups([{ name: "g", codes: data.codes, levels: ["a", "b", "c"] }]);
      const cells = countOutcomes(encoding, data.yTrue, yPred).cells;
      const metric = constraint === "demographic_parity" ? "selection_rate" : "tpr";
      const rates = [0, 1, 2].map((g) => rate(metric, cells, g));
      const gap = Math.max(...rates) - Math.min(...rates);
      assert.ok(gap <= 0.02 + 1e-12, `gap ${gap}: ${rates}`);
      assert.ok(Math.abs(gap - found.gap) < 1e-12);
      // Before: the policy threshold leaves a much larger gap.
      const before = new Uint8Array(scores.length);
      for (let i = 0; i < scores.length; i++) before[i] = scores[i]! >= 0.5 === favourableIsPositive ? 1 : 0;
      const beforeCells = countOutcomes(encoding, data.yTrue, before).cells;
      const beforeRates = [0, 1, 2].map((g) => rate(metric, beforeCells, g));
      assert.ok(Math.max(...beforeRates) - Math.min(...beforeRates) > 0.1);
      // Not the trivial answer (nobody or everybody selected).
      const selection = [0, 1, 2].map((g) => rate("selection_rate", cells, g));
      assert.ok(
        selection.every((r) => r > 0.05 && r < 0.999),
        String(selection),
      );
      // Deterministic.
      assert.deepEqual(groupThresholds(input, options).thresholds, found.thresholds);
    });
  }
}

test("groups under the minimum size keep the policy threshold", () => {
  const data = synthetic(2000, 5);
  const codes = Uint32Array.from(data.codes, (c, i) => (i < 10 ? 3 : c));
  const found = groupThresholds(
    {
      codes,
      groupCount: 4,
      scores: data.scores,
      yTrue: data.yTrue,
      favourableIsPositive: false,
      threshold: 0.5,
    },
    { constraint: "demographic_parity", tolerance: 0.05, minGroupSize: 30 },
  );
  assert.deepEqual(found.constrained, [true, true, true, false]);
  assert.equal(found.thresholds[3], 0.5);
});
