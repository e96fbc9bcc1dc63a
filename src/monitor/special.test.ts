import assert from "node:assert/strict";
import { test } from "node:test";
import { closeTo, driftFixtures } from "./drift-fixtures.js";
import {
  chiSquaredSurvival,
  kolmogorovSmirnovSurvival,
  kolmogorovSurvival,
  logGamma,
  regularizedGammaP,
  regularizedGammaQ,
  smirnovSurvival,
} from "./special.js";

const { special } = driftFixtures();

function assertClose(actual: number, expected: number, rtol: number, label: string, atol = 0): void {
  assert.ok(closeTo(actual, expected, rtol, atol), `${label}: got ${actual}, SciPy ${expected}`);
}

test("logGamma matches scipy.special.gammaln to 1e-14 relative or 3e-15 absolute", () => {
  // Absolute accuracy is what the incomplete gamma needs (lnΓ(a) enters an exponent); near the
  // zeros at 1 and 2 the Lanczos sum is good to a few ε absolute, not relative.
  for (const { x, value } of special.gammaln) assertClose(logGamma(x), value, 1e-14, `lnΓ(${x})`, 3e-15);
  assert.equal(logGamma(0), Number.POSITIVE_INFINITY);
});

test("regularized incomplete gamma matches scipy gammainc / gammaincc", () => {
  for (const { a, x, p, q } of special.gamma) {
    assertClose(regularizedGammaP(a, x), p, 1e-13, `P(${a}, ${x})`);
    assertClose(regularizedGammaQ(a, x), q, 1e-13, `Q(${a}, ${x})`);
  }
  assert.equal(regularizedGammaP(2, 0), 0);
  assert.equal(regularizedGammaQ(2, Number.POSITIVE_INFINITY), 0);
  assert.ok(Number.isNaN(regularizedGammaP(-1, 1)));
});

test("chi-squared survival matches scipy.stats.chi2.sf", () => {
  for (const { x, dof, sf } of special.chi2)
    assertClose(chiSquaredSurvival(x, dof), sf, 1e-13, `χ²(${x}; ${dof})`);
  assert.equal(chiSquaredSurvival(0, 3), 1);
});

test("Kolmogorov limiting distribution matches scipy.special.kolmogorov", () => {
  for (const { x, sf } of special.kolmogorov) assertClose(kolmogorovSurvival(x), sf, 1e-13, `K(${x})`);
});

test("one-sided Smirnov tail matches scipy.special.smirnov to 1e-10 relative", () => {
  // SciPy sums the same series in double-double arithmetic; summing logarithms in doubles loses
  // about j·ε per term (the exponents j − 1 and n − j multiply rounded logarithms), so the error
  // grows with n: about 2e-11 at n = 20 000.
  for (const { n, d, sf } of special.smirnov) assertClose(smirnovSurvival(n, d), sf, 1e-10, `S(${n}, ${d})`);
});

test("two-sided one-sample KS tail matches scipy.stats.kstwo.sf over every method branch", () => {
  // Branches: Ruben–Gambino ends, 2·smirnov, Durbin's matrix (SciPy: Pomeranz for n ≤ 140 and
  // 0.75 < n·d² ≤ 4, an exact method too), Pelz–Good. 1e-9 relative: the Smirnov branch loses about
  // n·ε (1.2e-10 at n = 200 000, see above), and the SF is 1 − CDF in the matrix branches.
  for (const { n, d, sf } of special.kstwo) {
    assertClose(kolmogorovSmirnovSurvival(n, d), sf, 1e-9, `kstwo.sf(${d}, ${n})`, 1e-15);
  }
  assert.equal(kolmogorovSmirnovSurvival(10, 0), 1);
  assert.equal(kolmogorovSmirnovSurvival(10, 1), 0);
});
