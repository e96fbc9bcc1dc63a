import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { seededRandom } from "../explain/random.js";
import {
  createQuantileSketch,
  mergeQuantileSketches,
  type QuantileSketch,
  quantileSketchFromJSON,
} from "./sketch.js";

const QS = [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1];

/** Seeded data sets of different shapes: heavy tails, both signs, zeros, ties. */
function datasets(): Record<string, number[]> {
  const r = seededRandom(20240601);
  const n = 20_000;
  return {
    lognormal: Array.from({ length: n }, () => Math.exp(2 * r.normal())),
    normal: Array.from({ length: n }, () => 50 + 20 * r.normal()),
    signedWithZeros: Array.from({ length: n }, () => (r.next() < 0.1 ? 0 : 1e3 * r.normal() ** 3)),
    scores: Array.from({ length: n }, () => Math.round(r.next() * 100) / 100),
    exponentialTiny: Array.from({ length: n }, () => -1e-6 * Math.log(1 - r.next())),
  };
}

/** The exact value of rank ⌊q(n − 1)⌋, the one the sketch's guarantee is about. */
function exactQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}

function assertWithinRelative(actual: number, expected: number, alpha: number, what: string): void {
  // 1e-12 of slack for the rounding of log and exp at bucket boundaries.
  const bound = alpha * Math.abs(expected) + 1e-12 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= bound, `${what}: ${actual} vs exact ${expected} (bound ${bound})`);
}

function exactCdf(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo / sorted.length;
}

describe("DDSketch quantiles against exact quantiles of seeded data", () => {
  for (const alpha of [0.01, 0.05]) {
    for (const [name, values] of Object.entries(datasets())) {
      test(`${name}, α = ${alpha}`, () => {
        const sketch = createQuantileSketch({ relativeAccuracy: alpha });
        for (const v of values) sketch.add(v);
        const sorted = [...values].sort((a, b) => a - b);
        assert.equal(sketch.count, values.length);
        assert.equal(sketch.min, sorted[0]);
        assert.equal(sketch.max, sorted.at(-1));
        const sum = values.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sketch.sum - sum) <= 1e-9 * values.reduce((a, b) => a + Math.abs(b), 0));
        for (const q of QS)
          assertWithinRelative(sketch.quantile(q), exactQuantile(sorted, q), alpha, `q=${q}`);
        // cdf(x) lies between F(x/γ) and F(xγ) (mirrored for negative x).
        const gamma = (1 + alpha) / (1 - alpha);
        for (const q of QS) {
          const x = exactQuantile(sorted, q);
          const c = sketch.cdf(x);
          const [a, b] = x >= 0 ? [x / gamma, x * gamma] : [x * gamma, x / gamma];
          assert.ok(
            c >= exactCdf(sorted, a) - 1e-12 && c <= exactCdf(sorted, b) + 1e-12,
            `cdf(${x}) = ${c} outside [F(${a}), F(${b})]`,
          );
        }
      });
    }
  }

  test("small cases: empty, one value, zeros only, the extremes", () => {
    const s = createQuantileSketch();
    assert.ok(Number.isNaN(s.quantile(0.5)));
    assert.ok(Number.isNaN(s.cdf(1)));
    s.add(-7);
    assert.equal(s.quantile(0.5), -7);
    assert.equal(s.cdf(-7.0001), 0);
    assert.equal(s.cdf(-7), 1);
    const z = createQuantileSketch();
    for (let i = 0; i < 10; i++) z.add(0);
    assert.equal(z.quantile(0.3), 0);
    assert.equal(z.cdf(0), 1);
    assert.equal(z.cdf(-1e-300), 0);
    assert.throws(() => s.add(Number.NaN), RangeError);
    assert.throws(() => s.add(Number.POSITIVE_INFINITY), RangeError);
    assert.throws(() => s.quantile(1.5), RangeError);
  });

  test("a zero threshold counts small magnitudes as zero", () => {
    const s = createQuantileSketch({ zeroThreshold: 1e-3 });
    for (const v of [-5e-4, 2e-4, 0, 1, 2]) s.add(v);
    assert.equal(s.quantile(0.5), 0);
    assert.equal(s.toJSON().zeroCount, 3);
  });

  test("with a bounded number of buckets the high quantiles keep their guarantee", () => {
    const r = seededRandom(7);
    const s = createQuantileSketch({ relativeAccuracy: 0.01, maxBuckets: 200 });
    const values = Array.from({ length: 5000 }, () => Math.exp(20 * r.next()));
    for (const v of values) s.add(v);
    const json = s.toJSON();
    assert.ok(json.positive.counts.length <= 200);
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of [0.9, 0.95, 0.99])
      assertWithinRelative(s.quantile(q), exactQuantile(sorted, q), 0.01, `q=${q}`);
    assert.equal(s.count, 5000);
  });
});

describe("DDSketch merges", () => {
  test("the merge of k replicas' sketches is the sketch of the union", () => {
    const r = seededRandom(99);
    const values = Array.from({ length: 12_000 }, () => (r.next() < 0.3 ? -1 : 1) * Math.exp(3 * r.normal()));
    const k = 5;
    const replicas: QuantileSketch[] = Array.from({ length: k }, () => createQuantileSketch());
    values.forEach((v, i) => {
      replicas[(i * 7919) % k]!.add(v);
    });
    const union = createQuantileSketch();
    for (const v of values) union.add(v);
    const merged = mergeQuantileSketches(replicas);
    assert.equal(merged.count, values.length);
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of QS) {
      assertWithinRelative(merged.quantile(q), exactQuantile(sorted, q), 0.01, `merged q=${q}`);
      // DDSketch merges exactly: the same buckets as the union's sketch, so the same answers.
      assert.equal(merged.quantile(q), union.quantile(q));
    }
    const { sum: mergedSum, ...mergedRest } = merged.toJSON();
    const { sum: unionSum, ...unionRest } = union.toJSON();
    assert.deepEqual(mergedRest, unionRest);
    assert.ok(Math.abs(mergedSum - unionSum) <= 1e-9 * Math.abs(unionSum) + 1e-6);
    // The inputs are untouched.
    assert.equal(
      replicas.reduce((a, s) => a + s.count, 0),
      values.length,
    );
  });

  test("merging refuses sketches of another accuracy", () => {
    const a = createQuantileSketch({ relativeAccuracy: 0.01 });
    const b = createQuantileSketch({ relativeAccuracy: 0.02 });
    b.add(1);
    assert.throws(() => a.merge(b), RangeError);
  });
});

describe("DDSketch serialisation", () => {
  test("JSON round trip gives the same sketch", () => {
    const r = seededRandom(3);
    const s = createQuantileSketch({ relativeAccuracy: 0.02, maxBuckets: 500, zeroThreshold: 1e-9 });
    for (let i = 0; i < 3000; i++) s.add(r.next() < 0.05 ? 0 : 100 * r.normal());
    const text = JSON.stringify(s);
    const back = quantileSketchFromJSON(JSON.parse(text));
    assert.deepEqual(back.toJSON(), s.toJSON());
    for (const q of QS) assert.equal(back.quantile(q), s.quantile(q));
    for (const x of [-50, 0, 3, 77]) assert.equal(back.cdf(x), s.cdf(x));
    const empty = quantileSketchFromJSON(JSON.parse(JSON.stringify(createQuantileSketch())));
    assert.equal(empty.count, 0);
  });

  test("malformed JSON is refused with the field at fault", () => {
    const good = createQuantileSketch();
    good.add(1);
    const json = good.toJSON();
    assert.throws(() => quantileSketchFromJSON({ ...json, kind: "kll" }), /kind/);
    assert.throws(() => quantileSketchFromJSON({ ...json, count: 5 }), /count/);
    assert.throws(() => quantileSketchFromJSON({ ...json, positive: { offset: 0.5, counts: [] } }), /offset/);
    assert.throws(() => quantileSketchFromJSON({ ...json, negative: { offset: 0, counts: [-1] } }), /counts/);
    assert.throws(() => quantileSketchFromJSON(null), TypeError);
  });
});
