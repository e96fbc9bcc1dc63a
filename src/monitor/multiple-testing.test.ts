import assert from "node:assert/strict";
import { test } from "node:test";
import { closeTo, driftFixtures } from "./drift-fixtures.js";
import { adjustPValues, datasetDriftVerdict, expectedFalseAlarms } from "./multiple-testing.js";

const { multipleTesting } = driftFixtures();

function assertAllClose(actual: number[], expected: number[], label: string): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((v, i) => {
    assert.ok(closeTo(v, expected[i]!, 1e-15, 1e-17), `${label}[${i}]: ${v} vs ${expected[i]}`);
  });
}

test("adjusted p-values match statsmodels' multipletests definitions (worked by hand in the fixture script)", () => {
  for (const { pValues, bonferroni, holm, benjaminiHochberg } of multipleTesting) {
    assertAllClose(adjustPValues(pValues, "bonferroni"), bonferroni, "bonferroni");
    assertAllClose(adjustPValues(pValues, "holm"), holm, "holm");
    assertAllClose(adjustPValues(pValues, "benjamini-hochberg"), benjaminiHochberg, "bh");
  }
});

test("a small worked example: p = [0.01, 0.04, 0.03]", () => {
  // Sorted 0.01, 0.03, 0.04; m = 3.
  // Holm: 3·0.01 = 0.03, max(0.03, 2·0.03) = 0.06, max(0.06, 1·0.04) = 0.06.
  assert.deepEqual(adjustPValues([0.01, 0.04, 0.03], "holm"), [0.03, 0.06, 0.06]);
  // BH from the largest: 0.04·3/3 = 0.04, min(0.04, 0.03·3/2 = 0.045) = 0.04, 0.01·3/1 = 0.03.
  const bh = adjustPValues([0.01, 0.04, 0.03], "benjamini-hochberg");
  assert.ok(closeTo(bh[0]!, 0.03, 1e-15) && closeTo(bh[1]!, 0.04, 1e-15) && closeTo(bh[2]!, 0.04, 1e-15));
  assert.deepEqual(adjustPValues([], "holm"), []);
  assert.throws(() => adjustPValues([1.5], "bonferroni"), RangeError);
});

test("expected false alarms is α·m", () => {
  assert.ok(closeTo(expectedFalseAlarms(40, 0.05), 2, 1e-15));
  assert.equal(expectedFalseAlarms(0, 0.05), 0);
});

test("dataset verdict: share rule, Bonferroni rule, neither", () => {
  const quiet = datasetDriftVerdict([
    { feature: "age", drifted: true, pValue: 0.03 },
    { feature: "income", drifted: false, pValue: 0.4 },
    { feature: "region", drifted: false, pValue: 0.7 },
    { feature: "score", drifted: false },
  ]);
  // 0.03 · 3 tested = 0.09 ≥ 0.05; share 1/4 < 0.5
  assert.equal(quiet.drifted, false);
  assert.deepEqual(quiet.reasons, []);
  assert.equal(quiet.testedCount, 3);
  assert.ok(closeTo(quiet.expectedByChance, 0.15, 1e-15));

  const strong = datasetDriftVerdict([
    { feature: "age", drifted: true, pValue: 1e-6 },
    { feature: "income", drifted: false, pValue: 0.4 },
    { feature: "region", drifted: false, pValue: 0.7 },
  ]);
  assert.deepEqual(strong.reasons, ["bonferroni"]);
  assert.deepEqual(strong.bonferroniSignificant, ["age"]);

  const broad = datasetDriftVerdict(
    [
      { feature: "a", drifted: true },
      { feature: "b", drifted: true },
      { feature: "c", drifted: false },
      { feature: "d", drifted: false },
    ],
    { shareThreshold: 0.5 },
  );
  assert.deepEqual(broad.reasons, ["share"]);
  assert.equal(broad.driftShare, 0.5);
  assert.ok(Object.isFrozen(broad));
  assert.equal(datasetDriftVerdict([]).drifted, false);
});
