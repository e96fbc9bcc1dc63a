/**
 * Special functions behind the drift tests: log-gamma, the regularized incomplete gamma functions
 * (chi-squared tails) and the Kolmogorov–Smirnov distributions.
 *
 * Accuracy targets, checked against SciPy in special.test.ts: about 1e-14 relative for log-gamma and
 * the incomplete gamma functions over the ranges the monitors use, and 1e-10 relative or better for
 * the Kolmogorov–Smirnov tails.
 */

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);
const EPSILON = 2.220446049250313e-16;

// Lanczos approximation, g = 7, nine terms (relative error about 1e-15 on Γ for x ≥ 0.5).
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/**
 * ln Γ(x) for x > 0 (ln|Γ(x)| for negative non-integers).
 *
 * Stirling's series for x ≥ 10, where it is accurate to rounding; Lanczos below; the reflection
 * formula for x < 0.5.
 */
export function logGamma(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  if (x <= 0 && Number.isInteger(x)) return Number.POSITIVE_INFINITY;
  if (x < 0.5) {
    // Γ(x) Γ(1 − x) = π / sin(πx)
    return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  }
  if (x >= 10) {
    const r = 1 / x;
    const r2 = r * r;
    // Bernoulli terms B_2k / (2k (2k − 1) x^(2k−1)), k = 1..6
    const series =
      r *
      (1 / 12 +
        r2 * (-1 / 360 + r2 * (1 / 1260 + r2 * (-1 / 1680 + r2 * (1 / 1188 + r2 * (-691 / 360360))))));
    return (x - 0.5) * Math.log(x) - x + LOG_SQRT_2PI + series;
  }
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return LOG_SQRT_2PI + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

const GAMMA_MAX_ITERATIONS = 100_000;

/** Series for P(a, x), good for x < a + 1. */
function lowerGammaSeries(a: number, x: number): number {
  let term = 1 / a;
  let sum = term;
  for (let n = 1; n < GAMMA_MAX_ITERATIONS; n++) {
    term *= x / (a + n);
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * EPSILON) break;
  }
  return sum * Math.exp(a * Math.log(x) - x - logGamma(a));
}

/** Continued fraction for Q(a, x) (modified Lentz), good for x ≥ a + 1. */
function upperGammaFraction(a: number, x: number): number {
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < GAMMA_MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPSILON) break;
  }
  return Math.exp(a * Math.log(x) - x - logGamma(a)) * h;
}

/**
 * Regularized lower incomplete gamma P(a, x) = γ(a, x) / Γ(a), for a > 0 and x ≥ 0
 * (SciPy's `gammainc`).
 */
export function regularizedGammaP(a: number, x: number): number {
  if (Number.isNaN(a) || Number.isNaN(x) || a <= 0 || x < 0) return Number.NaN;
  if (x === 0) return 0;
  if (x === Number.POSITIVE_INFINITY) return 1;
  return x < a + 1 ? lowerGammaSeries(a, x) : 1 - upperGammaFraction(a, x);
}

/**
 * Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a) = 1 − P(a, x), for a > 0 and x ≥ 0
 * (SciPy's `gammaincc`). Computed directly in the upper tail, so tiny values keep their relative
 * accuracy.
 */
export function regularizedGammaQ(a: number, x: number): number {
  if (Number.isNaN(a) || Number.isNaN(x) || a <= 0 || x < 0) return Number.NaN;
  if (x === 0) return 1;
  if (x === Number.POSITIVE_INFINITY) return 0;
  return x < a + 1 ? 1 - lowerGammaSeries(a, x) : upperGammaFraction(a, x);
}

/**
 * Survival function of the chi-squared distribution with `dof` degrees of freedom:
 * Pr(X ≥ statistic) = Q(dof / 2, statistic / 2) (SciPy's `chi2.sf`).
 */
export function chiSquaredSurvival(statistic: number, dof: number): number {
  if (Number.isNaN(statistic) || !(dof > 0)) return Number.NaN;
  if (statistic <= 0) return 1;
  return regularizedGammaQ(dof / 2, statistic / 2);
}

/**
 * Survival function of Kolmogorov's limiting distribution, Pr(√n·Dₙ > x) as n → ∞
 * (SciPy's `kolmogorov`, `kstwobign.sf`):
 * 2 Σ_{k≥1} (−1)^(k−1) e^(−2k²x²), or 1 − (√(2π)/x) Σ_{k≥1} e^(−(2k−1)²π²/(8x²)) for small x.
 */
export function kolmogorovSurvival(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x <= 0) return 1;
  if (x < 0.82) {
    // Jacobi theta transform: converges fast for small x, and gives the CDF directly.
    const a = (-Math.PI * Math.PI) / (8 * x * x);
    let cdf = 0;
    for (let k = 1; ; k += 2) {
      const t = Math.exp(a * k * k);
      cdf += t;
      if (t <= cdf * EPSILON || t === 0) break;
    }
    return Math.min(1, Math.max(0, 1 - (cdf * Math.sqrt(2 * Math.PI)) / x));
  }
  let sf = 0;
  let sign = 1;
  for (let k = 1; ; k++) {
    const t = Math.exp(-2 * k * k * x * x);
    sf += sign * t;
    if (t <= Math.abs(sf) * EPSILON || t === 0) break;
    sign = -sign;
  }
  return Math.min(1, Math.max(0, 2 * sf));
}

/**
 * Exact one-sided Kolmogorov–Smirnov tail Pr(Dₙ⁺ ≥ d) for a sample of n (SciPy's `smirnov`), by the
 * Smirnov / Birnbaum–Tingey sum
 * d Σ_{j=0}^{⌊n(1−d)⌋} C(n, j) (d + j/n)^(j−1) (1 − d − j/n)^(n−j), every term positive and summed in
 * logarithms so large n neither overflows nor underflows.
 */
export function smirnovSurvival(n: number, d: number): number {
  if (!(n >= 1) || !Number.isInteger(n) || Number.isNaN(d)) return Number.NaN;
  if (d <= 0) return 1;
  if (d >= 1) return 0;
  const last = Math.floor(n * (1 - d));
  let logBinomial = 0; // ln C(n, j), updated term by term
  let sum = 0;
  let compensation = 0;
  const logD = Math.log(d);
  for (let j = 0; j <= last; j++) {
    if (j > 0) logBinomial += Math.log((n - j + 1) / j);
    const left = d + j / n;
    if (left < 1) {
      // log1p keeps (n − j)·ln(1 − left) accurate: its rounding error scales with left, not 1.
      const logTerm = logBinomial + (j - 1) * Math.log(left) + (n - j) * Math.log1p(-left) + logD;
      if (logTerm > -745) {
        // Kahan–Babuška summation: thousands of terms of mixed sizes.
        const term = Math.exp(logTerm);
        const s = sum + term;
        compensation += Math.abs(sum) >= term ? sum - s + term : term - s + sum;
        sum = s;
      }
    }
  }
  return Math.min(1, Math.max(0, sum + compensation));
}

const SCALE_EXP = 128;
const SCALE_UP = 2 ** SCALE_EXP;
const SCALE_DOWN = 2 ** -SCALE_EXP;

function matMul(a: Float64Array, b: Float64Array, m: number): Float64Array {
  const out = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < m; k++) {
      const aik = a[i * m + k]!;
      if (aik === 0) continue;
      const row = k * m;
      const outRow = i * m;
      for (let j = 0; j < m; j++) out[outRow + j]! += aik * b[row + j]!;
    }
  }
  return out;
}

/**
 * Pr(Dₙ ≤ d) for the two-sided one-sample statistic by Durbin's matrix formula as Marsaglia, Tsang and
 * Wang (2003) evaluate it: n!/nⁿ · (Hⁿ)_{kk}, with d = (k − h)/n, H of order 2k − 1, and powers
 * rescaled by 2^±128 so neither overflow nor underflow occurs. Exact up to rounding.
 */
function kolmogorovCdfDurbin(n: number, d: number): number {
  const nd = n * d;
  if (nd <= 0.5) return 0;
  if (d >= 1) return 1;
  const k = Math.ceil(nd);
  const h = k - nd;
  const m = 2 * k - 1;
  const H = new Float64Array(m * m);
  // H[i][j] = 1/(i − j + 1)! where i − j + 1 ≥ 0; the first column and last row lose h^r / r! terms.
  const invFactorial = new Float64Array(m + 1);
  invFactorial[0] = 1;
  for (let r = 1; r <= m; r++) invFactorial[r] = invFactorial[r - 1]! / r;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const r = i - j + 1;
      if (r >= 0) H[i * m + j] = invFactorial[r]!;
    }
  }
  for (let i = 0; i < m; i++) {
    H[i * m] = (1 - h ** (i + 1)) * invFactorial[i + 1]!;
    H[(m - 1) * m + (m - 1 - i)] = (1 - h ** (i + 1)) * invFactorial[i + 1]!;
  }
  H[(m - 1) * m] = (1 - 2 * h ** m + Math.max(0, 2 * h - 1) ** m) * invFactorial[m]!;

  // Binary powering, tracking the power-of-two exponent separately.
  let power: Float64Array | null = null;
  let powerExp = 0;
  let base: Float64Array = H;
  let baseExp = 0;
  for (let e = n; e > 0; e = Math.floor(e / 2)) {
    if (e % 2 === 1) {
      power = power === null ? base.slice() : matMul(power, base, m);
      powerExp += baseExp;
    }
    if (e > 1) {
      base = matMul(base, base, m);
      baseExp *= 2;
      if (Math.abs(base[(k - 1) * m + (k - 1)]!) > SCALE_UP) {
        for (let i = 0; i < base.length; i++) base[i]! *= SCALE_DOWN;
        baseExp += SCALE_EXP;
      }
    }
  }
  let p = power![(k - 1) * m + (k - 1)]!;
  for (let i = 1; i <= n; i++) {
    p = (i * p) / n;
    if (Math.abs(p) < SCALE_DOWN) {
      p *= SCALE_UP;
      powerExp -= SCALE_EXP;
    }
  }
  return p * 2 ** powerExp;
}

/** ln(n! / nⁿ) by Stirling's series (n > 140 here, where four terms are exact to rounding). */
function logFactorialOverPower(n: number): number {
  const r = 1 / n;
  const r2 = r * r;
  return (
    0.5 * Math.log(n) - n + LOG_SQRT_2PI + r * (1 / 12 + r2 * (-1 / 360 + r2 * (1 / 1260 + r2 * (-1 / 1680))))
  );
}

/**
 * The Pelz–Good (1976) asymptotic expansion of Pr(Dₙ ≤ x) in powers of n^(−1/2), the terms K₀…K₃ of
 * Li-Chien and Korolyuk rewritten with Jacobi's theta transformation for small z = x√n.
 */
function kolmogorovCdfPelzGood(n: number, x: number): number {
  const z = Math.sqrt(n) * x;
  const z2 = z * z;
  const z4 = z2 * z2;
  const z6 = z4 * z2;
  const logQ = (-Math.PI * Math.PI) / 8 / z2;
  if (logQ < -708) return 0;
  const pi2 = Math.PI * Math.PI;
  const pi4 = pi2 * pi2;
  const pi6 = pi4 * pi2;
  const maxK = Math.ceil((16 * z) / Math.PI);
  let k0 = 0;
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;
  // Sum over odd m = 2k − 1 of polynomial(m) · q^(m²), smallest terms first.
  for (let k = maxK; k >= 1; k--) {
    const m = 2 * k - 1;
    const m2 = m * m;
    const w = Math.exp(logQ * m2);
    k0 += w;
    k1 += (-z2 + (pi2 * m2) / 4) * w;
    k2 += (6 * z6 + 2 * z4 + ((2 * z4 - 5 * z2) * pi2 * m2) / 4 + (pi4 * (1 - 2 * z2) * m2 * m2) / 16) * w;
    k3 +=
      (-30 * z6 -
        90 * z6 * z2 +
        (pi2 * (135 * z4 - 96 * z6) * m2) / 4 +
        (pi4 * (-60 * z2 + 212 * z4) * m2 * m2) / 16 +
        (pi6 * (5 - 30 * z2) * m2 * m2 * m2) / 64) *
      w;
  }
  const s = Math.sqrt(2 * Math.PI);
  k0 *= s / z;
  k1 *= s / (6 * z4);
  k2 *= s / (72 * z6 * z);
  k3 *= s / (6480 * z6 * z4);
  // Terms over all integers k with weight e^(−π²k²/(2z²)).
  const logR = -pi2 / 2 / z2;
  let extra2 = 0;
  let extra3 = 0;
  for (let k = maxK; k >= 1; k--) {
    const k2sq = k * k;
    const w = Math.exp(logR * k2sq);
    extra2 += k2sq * w;
    extra3 += (3 * z2 - pi2 * k2sq) * k2sq * w;
  }
  k2 += (extra2 * pi2 * s) / (-36 * z2 * z);
  k3 += (extra3 * pi2 * s) / (216 * z6);
  return k0 + k1 / Math.sqrt(n) + k2 / n + k3 / (n * Math.sqrt(n));
}

function clip01(p: number): number {
  return Math.min(1, Math.max(0, p));
}

/**
 * Survival function of the two-sided one-sample Kolmogorov–Smirnov statistic, Pr(Dₙ ≥ d) for a sample
 * of n (SciPy's `kstwo.sf(d, n)`), choosing the method by Simard and L'Ecuyer (2011) as SciPy does:
 * Ruben–Gambino closed forms at the ends, 2·smirnov(n, d) in the upper tail (exact for d ≥ 1/2),
 * Durbin's matrix (Marsaglia–Tsang–Wang) for small n·d², Pelz–Good for large n.
 *
 * One deliberate difference: for n ≤ 140 and 0.754693 < n·d² ≤ 4 SciPy uses Pomeranz's recursion,
 * here Durbin's matrix; both are exact, so they agree to rounding.
 */
export function kolmogorovSmirnovSurvival(n: number, d: number): number {
  if (!(n >= 1) || !Number.isInteger(n) || Number.isNaN(d)) return Number.NaN;
  if (d >= 1) return 0;
  if (d <= 0) return 1;
  const t = n * d;
  if (t <= 1) {
    if (t <= 0.5) return 1;
    // Ruben–Gambino: Pr(Dₙ ≤ d) = n!/nⁿ (2t − 1)ⁿ for 1/(2n) ≤ d ≤ 1/n
    let cdf: number;
    if (n <= 140) {
      cdf = 1;
      for (let i = 1; i <= n; i++) cdf *= (i / n) * (2 * t - 1);
    } else {
      cdf = Math.exp(logFactorialOverPower(n) + n * Math.log(2 * t - 1));
    }
    return clip01(1 - cdf);
  }
  if (t >= n - 1) return clip01(2 * (1 - d) ** n);
  if (d >= 0.5) return clip01(2 * smirnovSurvival(n, d));
  const nd2 = t * d;
  if (n <= 140) {
    if (nd2 <= 4) return clip01(1 - kolmogorovCdfDurbin(n, d));
    return clip01(2 * smirnovSurvival(n, d));
  }
  if (nd2 >= 370) return 0;
  if (nd2 >= 2.2) return clip01(2 * smirnovSurvival(n, d));
  const cdf = n <= 100_000 && n * d ** 1.5 <= 1.4 ? kolmogorovCdfDurbin(n, d) : kolmogorovCdfPelzGood(n, d);
  return clip01(1 - cdf);
}
