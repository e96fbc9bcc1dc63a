import assert from "node:assert/strict";
import { test } from "node:test";
import {
  kmeansBackground,
  sampleBackground,
  summariseBackground,
  weightedBackground,
  weightedMean,
} from "./background.js";
import { seededRandom } from "./random.js";

/** Three well separated blobs of 50, 30 and 20 rows over (x, y, category), in shuffled order. */
function blobs(seed: number): { data: Float32Array; blob: number[] } {
  const random = seededRandom(seed);
  const centres = [
    [0, 0],
    [100, 5],
    [-100, 10],
  ];
  const blob = [...Array(50).fill(0), ...Array(30).fill(1), ...Array(20).fill(2)] as number[];
  for (let i = blob.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [blob[i], blob[j]] = [blob[j]!, blob[i]!];
  }
  const data = new Float32Array(blob.length * 3);
  blob.forEach((b, i) => {
    data[i * 3] = centres[b]![0]! + random.normal() * 3;
    data[i * 3 + 1] = centres[b]![1]! + random.normal() * 0.2;
    data[i * 3 + 2] = b === 0 && random.next() < 0.2 ? Number.NaN : b; // a category code, sometimes missing
  });
  return { data, blob };
}

function rowOf(data: Float32Array, i: number, features: number): number[] {
  return [...data.subarray(i * features, (i + 1) * features)];
}

test("weights are scaled to sum to 1 and must be positive", () => {
  const background = weightedBackground(Float32Array.from([1, 2, 3, 4]), 2, 2, [1, 3]);
  assert.deepEqual([...background.weights], [0.25, 0.75]);
  assert.equal(weightedMean([10, 20], background.weights), 17.5);
  assert.throws(() => weightedBackground(Float32Array.from([1, 2]), 2, 1, [1, 0]), RangeError);
  assert.throws(() => weightedBackground(Float32Array.from([1, 2]), 2, 1, [1]), RangeError);
  assert.throws(() => weightedBackground(Float32Array.from([1, 2]), 3, 1), RangeError);
});

test("a seeded sample: distinct rows in their original order, the same for the same seed", () => {
  const data = Float32Array.from({ length: 100 }, (_, i) => i); // row i holds the number i
  const a = sampleBackground(data, 100, 1, 10, 7);
  const b = sampleBackground(data, 100, 1, 10, 7);
  const c = sampleBackground(data, 100, 1, 10, 8);
  assert.equal(a.rows, 10);
  assert.deepEqual([...a.data], [...b.data]);
  assert.notDeepEqual([...a.data], [...c.data]);
  assert.equal(new Set(a.data).size, 10);
  assert.deepEqual(
    [...a.data],
    [...a.data].sort((x, y) => x - y),
  );
  assert.deepEqual([...a.weights], new Array(10).fill(0.1));
  assert.equal(sampleBackground(data, 100, 1, 500).rows, 100, "no more rows than there are");
});

test("k-means on three blobs: one real row per blob, weighted by the blob's share", () => {
  const { data, blob } = blobs(3);
  const summary = kmeansBackground(data, 100, 3, 3, { seed: 1 });
  assert.equal(summary.rows, 3);
  const found = new Map<number, number>();
  for (let c = 0; c < 3; c++) {
    const row = rowOf(summary.data, c, 3);
    // A real row of the data (NaN compared as NaN), not an average of rows.
    const source = blob.findIndex((_, i) => rowOf(data, i, 3).every((v, j) => Object.is(v, row[j])));
    assert.ok(source >= 0, `row ${row} comes from the data`);
    found.set(blob[source]!, summary.weights[c]!);
  }
  assert.deepEqual(
    [0, 1, 2].map((b) => Math.round(found.get(b)! * 100)),
    [50, 30, 20],
  );
  // The same seed gives the same summary.
  assert.deepEqual([...kmeansBackground(data, 100, 3, 3, { seed: 1 }).data], [...summary.data]);
});

test("k-means: input weights count like repeated rows; fewer distinct rows than k give fewer clusters", () => {
  const { data, blob } = blobs(4);
  const weights = blob.map((b) => (b === 2 ? 4 : 1)); // blob 2: 20 rows × 4 = 80 of 160
  const summary = kmeansBackground(data, 100, 3, 3, { seed: 2, weights });
  const shares = [...summary.weights].sort((a, b) => a - b);
  assert.deepEqual(
    shares.map((s) => Math.round(s * 160)),
    [30, 50, 80],
  );
  const twoValues = Float32Array.from([1, 1, 1, 5, 5, 1]);
  const small = kmeansBackground(twoValues, 6, 1, 4, { seed: 0 });
  assert.equal(small.rows, 2);
  assert.deepEqual([...small.data].sort(), [1, 5]);
});

test("summaries: small data as it is, k-means by default, a sample keeps relative weights", () => {
  const { data } = blobs(5);
  const whole = weightedBackground(data, 100, 3);
  assert.equal(summariseBackground(whole, { size: 100 }), whole);
  assert.equal(summariseBackground(whole).rows, 50);
  const uneven = weightedBackground(
    data,
    100,
    3,
    Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? 1 : 3)),
  );
  const sample = summariseBackground(uneven, { method: "sample", size: 10, seed: 3 });
  assert.equal(sample.rows, 10);
  const ratio = Math.max(...sample.weights) / Math.min(...sample.weights);
  assert.ok(ratio === 1 || Math.abs(ratio - 3) < 1e-12, `ratio ${ratio}`);
  assert.throws(() => summariseBackground(whole, { size: 0 }), RangeError);
});
