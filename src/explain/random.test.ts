import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "./random.js";

test("a seed gives the same stream every time, and another seed another stream", () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const c = seededRandom(43);
  const xs = Array.from({ length: 100 }, () => a.next());
  const ys = Array.from({ length: 100 }, () => b.next());
  const zs = Array.from({ length: 100 }, () => c.next());
  assert.deepEqual(xs, ys);
  assert.notDeepEqual(xs, zs);
});

test("uniform numbers lie in [0, 1) with the mean and variance of a uniform distribution", () => {
  const r = seededRandom(7);
  const n = 200_000;
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
    sq += x * x;
  }
  const mean = sum / n;
  const variance = sq / n - mean * mean;
  // Standard error of the mean is sqrt(1/12/n) ≈ 6.5e-4: 5 of them.
  assert.ok(Math.abs(mean - 0.5) < 0.0033, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.002, `variance ${variance}`);
});

test("int(n) covers 0..n-1 evenly and refuses a bad n; normal() has mean 0 and variance 1", () => {
  const r = seededRandom(1);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 60_000; i++) counts[r.int(6)]! += 1;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `counts ${counts}`);
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => r.int(2.5), RangeError);
  let sum = 0;
  let sq = 0;
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    sum += z;
    sq += z * z;
  }
  assert.ok(Math.abs(sum / n) < 0.02);
  assert.ok(Math.abs(sq / n - 1) < 0.03);
});
