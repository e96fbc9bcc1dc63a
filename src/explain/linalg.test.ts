import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { REPO_ROOT } from "../testing/index.js";
import { choleskySolve, predictRow, weightedLeastSquares, weightedR2, weightedRidge } from "./linalg.js";
import { seededRandom } from "./random.js";

/** What scripts/fixtures/make_explain_fixtures.py records from scikit-learn's Ridge. */
interface RidgeCase {
  readonly alpha: number;
  readonly x: number[][];
  readonly y: number[];
  readonly weights: number[];
  readonly coef: number[];
  readonly intercept: number;
  readonly score: number;
  readonly prediction_at_ones: number;
}

function randomMatrix(seed: number, rows: number, cols: number): Float64Array {
  const random = seededRandom(seed);
  return Float64Array.from({ length: rows * cols }, () => random.normal());
}

/** Aᵀ W (y − A β): zero at a weighted least-squares solution, whatever algorithm found it. */
function gradient(
  a: Float64Array,
  rows: number,
  cols: number,
  y: ArrayLike<number>,
  w: ArrayLike<number>,
  beta: Float64Array,
) {
  const g = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    let r = y[i]!;
    for (let j = 0; j < cols; j++) r -= a[i * cols + j]! * beta[j]!;
    for (let j = 0; j < cols; j++) g[j]! += a[i * cols + j]! * w[i]! * r;
  }
  return g;
}

test("least squares: recovers an exact solution, and otherwise zeroes the weighted normal equations", () => {
  const rows = 40;
  const cols = 6;
  const a = randomMatrix(1, rows, cols);
  const truth = [1, -2, 0.5, 3, 0, -0.25];
  const exact = Float64Array.from({ length: rows }, (_, i) =>
    truth.reduce((s, t, j) => s + t * a[i * cols + j]!, 0),
  );
  const solved = weightedLeastSquares(a, rows, cols, exact);
  truth.forEach((t, j) => {
    assert.ok(Math.abs(solved[j]! - t) < 1e-12, `β${j} ${solved[j]}`);
  });

  const random = seededRandom(2);
  const y = Float64Array.from(exact, (v) => v + random.normal());
  const w = Float64Array.from({ length: rows }, () => random.next() * 3);
  const beta = weightedLeastSquares(a, rows, cols, y, w);
  for (const g of gradient(a, rows, cols, y, w, beta)) assert.ok(Math.abs(g) < 1e-10, `gradient ${g}`);
});

test("least squares: a repeated column (rank deficient) still gives an optimal fit, with one coefficient 0", () => {
  const rows = 30;
  const base = randomMatrix(3, rows, 3);
  const a = new Float64Array(rows * 4);
  for (let i = 0; i < rows; i++) {
    a.set(base.subarray(i * 3, i * 3 + 3), i * 4);
    a[i * 4 + 3] = base[i * 3 + 1]!; // column 3 repeats column 1
  }
  const random = seededRandom(4);
  const y = Float64Array.from({ length: rows }, () => random.normal());
  const w = new Float64Array(rows).fill(1);
  const beta = weightedLeastSquares(a, rows, 4, y, w);
  assert.ok(beta[1] === 0 || beta[3] === 0, `one of the twins is dropped: ${beta}`);
  for (const g of gradient(a, rows, 4, y, w, beta)) assert.ok(Math.abs(g) < 1e-10, `gradient ${g}`);
  assert.throws(() => weightedLeastSquares(a, rows, 5, y), RangeError);
});

test("cholesky: solves a symmetric positive definite system and refuses an indefinite one", () => {
  const n = 5;
  const b = randomMatrix(5, n, n);
  const s = new Float64Array(n * n); // BᵀB + I
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let sum = i === j ? 1 : 0;
      for (let k = 0; k < n; k++) sum += b[k * n + i]! * b[k * n + j]!;
      s[i * n + j] = sum;
    }
  }
  const rhs = [1, 2, 3, 4, 5];
  const x = choleskySolve(s, n, rhs);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += s[i * n + j]! * x[j]!;
    assert.ok(Math.abs(sum - rhs[i]!) < 1e-12, `row ${i}`);
  }
  assert.throws(() => choleskySolve(Float64Array.from([1, 2, 2, 1]), 2, [1, 1]), RangeError);
});

test("weighted ridge and R² equal scikit-learn's Ridge(alpha).fit(X, y, sample_weight) and score()", () => {
  const fixture = JSON.parse(readFileSync(`${REPO_ROOT}fixtures/explain/ridge.json`, "utf8")) as {
    cases: RidgeCase[];
  };
  assert.equal(fixture.cases.length, 3);
  for (const [index, c] of fixture.cases.entries()) {
    const rows = c.x.length;
    const cols = c.x[0]!.length;
    const x = Float64Array.from(c.x.flat());
    const fit = weightedRidge(x, rows, cols, c.y, c.weights, c.alpha);
    c.coef.forEach((expected, j) => {
      assert.ok(
        Math.abs(fit.coef[j]! - expected) < 1e-10,
        `case ${index} coef ${j}: ${fit.coef[j]} vs ${expected}`,
      );
    });
    assert.ok(Math.abs(fit.intercept - c.intercept) < 1e-10, `case ${index} intercept`);
    const predicted = Float64Array.from({ length: rows }, (_, i) => predictRow(fit, x, i));
    assert.ok(Math.abs(weightedR2(c.y, predicted, c.weights) - c.score) < 1e-10, `case ${index} score`);
    const ones = new Float64Array(cols).fill(1);
    assert.ok(Math.abs(predictRow(fit, ones, 0) - c.prediction_at_ones) < 1e-10, `case ${index} prediction`);
  }
  assert.throws(() => weightedRidge(new Float64Array(4), 2, 2, [1, 2], [1, 1], 0), RangeError);
});

test("R²: 1 for a perfect fit, 0 for predicting the weighted mean, and the constant-target cases", () => {
  const y = [1, 2, 3, 4];
  const w = [1, 1, 2, 0.5];
  assert.equal(weightedR2(y, y, w), 1);
  const mean = (1 + 2 + 6 + 2) / 4.5;
  assert.ok(Math.abs(weightedR2(y, [mean, mean, mean, mean], w)) < 1e-15);
  assert.equal(weightedR2([2, 2], [2, 2], [1, 1]), 1);
  assert.equal(weightedR2([2, 2], [2, 3], [1, 1]), 0);
});
