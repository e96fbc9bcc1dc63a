/**
 * Small dense solvers for the explainers' regressions: weighted least squares for KernelSHAP and weighted
 * ridge regression for LIME. Matrices are row-major Float64Arrays; sizes are a few thousand rows by tens of
 * columns, so plain O(rows · cols²) algorithms are the right tool.
 */

/**
 * Least-squares solution of min ‖√w ⊙ (A β − y)‖² for `A` (`rows × cols`, row-major), by Householder QR with
 * column pivoting on the weighted system: better conditioned than the normal equations, whose condition
 * number is the square of A's. When A is rank deficient (numerical rank r < cols, judged against
 * ε · max(rows, cols) · |R₁₁|), the coefficients of the cols − r columns pivoted last are 0 (a basic
 * solution, not the minimum-norm one).
 *
 * @param weights one non-negative weight per row (default 1).
 */
export function weightedLeastSquares(
  a: Float64Array,
  rows: number,
  cols: number,
  y: ArrayLike<number>,
  weights?: ArrayLike<number>,
): Float64Array {
  if (a.length !== rows * cols || y.length !== rows || (weights !== undefined && weights.length !== rows)) {
    throw new RangeError(
      `least squares: A is ${rows}×${cols} but got ${a.length} values, ${y.length} targets`,
    );
  }
  // Column-major working copy of √w A: each Householder step works down whole columns.
  const q = new Float64Array(rows * cols);
  const b = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const s = weights === undefined ? 1 : Math.sqrt(weights[i]!);
    b[i] = s * y[i]!;
    for (let j = 0; j < cols; j++) q[j * rows + i] = s * a[i * cols + j]!;
  }
  const order = Int32Array.from({ length: cols }, (_, j) => j);
  const diagonal = new Float64Array(cols);
  const steps = Math.min(rows, cols);
  let rank = 0;
  let tolerance = 0;
  for (let k = 0; k < steps; k++) {
    // Pivot: the remaining column with the largest norm below row k.
    let pivot = k;
    let pivotNorm = -1;
    for (let j = k; j < cols; j++) {
      let norm = 0;
      for (let i = k; i < rows; i++) norm += q[j * rows + i]! ** 2;
      if (norm > pivotNorm) {
        pivotNorm = norm;
        pivot = j;
      }
    }
    if (pivot !== k) {
      for (let i = 0; i < rows; i++) {
        const t = q[k * rows + i]!;
        q[k * rows + i] = q[pivot * rows + i]!;
        q[pivot * rows + i] = t;
      }
      const t = order[k]!;
      order[k] = order[pivot]!;
      order[pivot] = t;
    }
    const norm = Math.sqrt(pivotNorm);
    if (k === 0) tolerance = Number.EPSILON * Math.max(rows, cols) * norm;
    if (!(norm > tolerance)) break;
    // Householder reflector v = x − α e₁ with α = −sign(x₀)‖x‖ (no cancellation), stored over column k.
    const top = q[k * rows + k]!;
    const alpha = top >= 0 ? -norm : norm;
    q[k * rows + k] = top - alpha;
    let vv = 0;
    for (let i = k; i < rows; i++) vv += q[k * rows + i]! ** 2;
    const reflect = (column: Float64Array, offset: number) => {
      let dot = 0;
      for (let i = k; i < rows; i++) dot += q[k * rows + i]! * column[offset + i]!;
      const scale = (2 * dot) / vv;
      for (let i = k; i < rows; i++) column[offset + i]! -= scale * q[k * rows + i]!;
    };
    for (let j = k + 1; j < cols; j++) reflect(q, j * rows);
    reflect(b, 0);
    diagonal[k] = alpha;
    rank = k + 1;
  }
  // Back substitution on the leading rank × rank block of R (R's strict upper part lives in q above row j).
  const z = new Float64Array(cols);
  for (let k = rank - 1; k >= 0; k--) {
    let sum = b[k]!;
    for (let j = k + 1; j < rank; j++) sum -= q[j * rows + k]! * z[j]!;
    z[k] = sum / diagonal[k]!;
  }
  const beta = new Float64Array(cols);
  for (let k = 0; k < cols; k++) beta[order[k]!] = z[k]!;
  return beta;
}

/**
 * Solve `S x = b` for a symmetric positive definite `S` (`n × n`, row-major) by Cholesky factorisation.
 *
 * @throws RangeError when S is not positive definite (a pivot ≤ 0).
 */
export function choleskySolve(s: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  if (s.length !== n * n || b.length !== n) throw new RangeError(`cholesky: expected a ${n}×${n} system`);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = s[i * n + j]!;
      for (let k = 0; k < j; k++) sum -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(sum > 0)) throw new RangeError(`cholesky: the matrix is not positive definite (pivot ${i})`);
        l[i * n + i] = Math.sqrt(sum);
      } else {
        l[i * n + j] = sum / l[j * n + j]!;
      }
    }
  }
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < i; k++) x[i]! -= l[i * n + k]! * x[k]!;
    x[i]! /= l[i * n + i]!;
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) x[i]! -= l[k * n + i]! * x[k]!;
    x[i]! /= l[i * n + i]!;
  }
  return x;
}

/** A fitted linear model `y ≈ intercept + coef · x`. */
export interface LinearFit {
  readonly coef: Float64Array;
  readonly intercept: number;
}

/**
 * Weighted ridge regression with an unpenalised intercept, minimising
 * Σ_i w_i (y_i − b − x_i·β)² + alpha ‖β‖², the objective of scikit-learn's `Ridge(alpha)` fitted with
 * `sample_weight`. Columns and target are centred on their weighted means, which removes the intercept
 * from the penalty; β then solves (Xcᵀ W Xc + alpha I) β = Xcᵀ W yc, positive definite for alpha > 0.
 *
 * @param x `rows × cols`, row-major.
 * @param alpha penalty (> 0; default 1, LIME's).
 */
export function weightedRidge(
  x: Float64Array,
  rows: number,
  cols: number,
  y: ArrayLike<number>,
  weights: ArrayLike<number>,
  alpha = 1,
): LinearFit {
  if (x.length !== rows * cols || y.length !== rows || weights.length !== rows) {
    throw new RangeError(`ridge: X is ${rows}×${cols} but got ${x.length} values, ${y.length} targets`);
  }
  if (!(alpha > 0)) throw new RangeError(`ridge: alpha must be > 0, got ${alpha}`);
  let mass = 0;
  let yMean = 0;
  const xMean = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const w = weights[i]!;
    mass += w;
    yMean += w * y[i]!;
    for (let j = 0; j < cols; j++) xMean[j]! += w * x[i * cols + j]!;
  }
  if (!(mass > 0)) throw new RangeError("ridge: the weights sum to 0");
  yMean /= mass;
  for (let j = 0; j < cols; j++) xMean[j]! /= mass;
  const gram = new Float64Array(cols * cols);
  const rhs = new Float64Array(cols);
  const centred = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const w = weights[i]!;
    if (w === 0) continue;
    for (let j = 0; j < cols; j++) centred[j] = x[i * cols + j]! - xMean[j]!;
    const target = w * (y[i]! - yMean);
    for (let j = 0; j < cols; j++) {
      const wj = w * centred[j]!;
      rhs[j]! += centred[j]! * target;
      for (let k = 0; k <= j; k++) gram[j * cols + k]! += wj * centred[k]!;
    }
  }
  for (let j = 0; j < cols; j++) {
    gram[j * cols + j]! += alpha;
    for (let k = 0; k < j; k++) gram[k * cols + j] = gram[j * cols + k]!;
  }
  const coef = choleskySolve(gram, cols, rhs);
  let intercept = yMean;
  for (let j = 0; j < cols; j++) intercept -= coef[j]! * xMean[j]!;
  return { coef, intercept };
}

/** The fit's prediction for row `i` of `x` (`cols` columns, row-major). */
export function predictRow(fit: LinearFit, x: ArrayLike<number>, i: number): number {
  const cols = fit.coef.length;
  let sum = fit.intercept;
  for (let j = 0; j < cols; j++) sum += fit.coef[j]! * x[i * cols + j]!;
  return sum;
}

/**
 * Weighted coefficient of determination 1 − Σw(y − ŷ)² / Σw(y − ȳ_w)², as scikit-learn's `r2_score` with
 * `sample_weight`: 1 for a perfect fit, and for a constant target 1 when the fit is exact, else 0.
 */
export function weightedR2(
  y: ArrayLike<number>,
  predicted: ArrayLike<number>,
  weights: ArrayLike<number>,
): number {
  let mass = 0;
  let mean = 0;
  for (let i = 0; i < y.length; i++) {
    mass += weights[i]!;
    mean += weights[i]! * y[i]!;
  }
  mean /= mass;
  let residual = 0;
  let total = 0;
  for (let i = 0; i < y.length; i++) {
    residual += weights[i]! * (y[i]! - predicted[i]!) ** 2;
    total += weights[i]! * (y[i]! - mean) ** 2;
  }
  if (total === 0) return residual === 0 ? 1 : 0;
  return 1 - residual / total;
}
