/**
 * Reading fixtures/monitor/drift.json (written by scripts/fixtures/make_drift_fixtures.py from SciPy)
 * for the monitor tests, and regenerating its large samples bit for bit.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../testing/index.js";

/** A sample stored by its generator: Park–Miller uniforms, then only +, ×, ÷ and floor on doubles. */
export interface SampleSpec {
  readonly kind: "bell" | "skewed" | "levels";
  readonly seed: number;
  readonly n: number;
  readonly loc?: number;
  readonly scale?: number;
  readonly levels?: number;
}

export type SampleOrValues = SampleSpec | number[];

const MODULUS = 2147483647;
const MULTIPLIER = 48271;

function uniforms(seed: number, count: number): number[] {
  let state = seed;
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    state = (state * MULTIPLIER) % MODULUS; // < 2^47: exact in doubles
    out[i] = state / MODULUS;
  }
  return out;
}

/** Same arithmetic, in the same order, as `sample` in the Python script. */
export function sample(value: SampleOrValues): number[] {
  if (Array.isArray(value)) return value;
  const { kind, seed, n } = value;
  const loc = value.loc ?? 0;
  const scale = value.scale ?? 1;
  if (kind === "bell") {
    const u = uniforms(seed, 4 * n);
    return Array.from(
      { length: n },
      (_, i) => (u[4 * i]! + u[4 * i + 1]! + (u[4 * i + 2]! + u[4 * i + 3]!) - 2) * scale + loc,
    );
  }
  const u = uniforms(seed, n);
  if (kind === "skewed") return u.map((x) => x * x * x * scale + loc);
  return u.map((x) => Math.floor(x * value.levels!) * scale + loc);
}

export interface DriftFixtures {
  readonly special: {
    readonly kstwo: { n: number; d: number; sf: number }[];
    readonly smirnov: { n: number; d: number; sf: number }[];
    readonly kolmogorov: { x: number; sf: number }[];
    readonly gammaln: { x: number; value: number }[];
    readonly gamma: { a: number; x: number; p: number; q: number }[];
    readonly chi2: { x: number; dof: number; sf: number }[];
  };
  readonly ks: {
    name: string;
    a: SampleOrValues;
    b: SampleOrValues;
    statistic: number;
    pValue: number;
    method: "exact" | "asymptotic";
  }[];
  readonly wasserstein: {
    name: string;
    u: SampleOrValues;
    v: SampleOrValues;
    uWeights?: number[];
    vWeights?: number[];
    distance: number;
    normalized?: number;
  }[];
  readonly chiSquaredGoodnessOfFit: {
    name: string;
    current: number[];
    reference: number[];
    statistic: number;
    dof: number;
    pValue: number;
  }[];
  readonly chiSquaredContingency: {
    name: string;
    table: number[][];
    correction: boolean;
    statistic: number;
    dof: number;
    pValue: number;
    expected: number[][];
  }[];
  readonly jensenShannon: { name: string; p: number[]; q: number[]; base: number | null; distance: number }[];
  readonly psi: {
    name: string;
    reference: number[];
    current: number[];
    psi: number;
    referenceSample?: SampleOrValues;
    currentSample?: SampleOrValues;
    bins?: number;
    edges?: number[];
  }[];
  readonly multipleTesting: {
    pValues: number[];
    bonferroni: number[];
    holm: number[];
    benjaminiHochberg: number[];
  }[];
}

let cached: DriftFixtures | undefined;

export function driftFixtures(): DriftFixtures {
  cached ??= JSON.parse(
    readFileSync(join(REPO_ROOT, "fixtures/monitor/drift.json"), "utf8"),
  ) as DriftFixtures;
  return cached;
}

/** |actual − expected| ≤ rtol·|expected| (+ a tiny absolute floor for expected values at 0). */
export function closeTo(actual: number, expected: number, rtol: number, atol = 0): boolean {
  if (actual === expected) return true;
  return Math.abs(actual - expected) <= rtol * Math.abs(expected) + atol;
}
