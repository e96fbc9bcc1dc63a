import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { seededRandom } from "../explain/random.js";
import type { QuantileSketch } from "./sketch.js";
import type { CategoryCounts, Moments } from "./sketch-counts.js";
import {
  categoryKind,
  countWindow,
  momentsKind,
  recordKind,
  type SummaryKind,
  sketchKind,
  timeWindow,
} from "./window.js";

/** A summary that keeps its observations, to see exactly which ones a window holds. */
const listKind: SummaryKind<number[], number> = {
  create: () => [],
  add: (list, x) => {
    list.push(x);
  },
  merge: (into, from) => {
    into.push(...from);
  },
};

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe("count windows", () => {
  test("hold the latest observations, between (buckets − 1)·size + 1 and buckets·size of them", () => {
    const w = countWindow(listKind, { bucketSize: 10, buckets: 4 });
    for (let i = 0; i < 35; i++) w.add(i);
    assert.deepEqual(sorted(w.summary()), range(0, 35));
    for (let i = 35; i < 41; i++) w.add(i);
    // 41 observations: buckets [10..19] [20..29] [30..39] [40]; the first bucket has gone.
    assert.deepEqual(sorted(w.summary()), range(10, 41));
    assert.equal(w.count(), 31);
    for (let i = 41; i < 50; i++) w.add(i);
    assert.deepEqual(sorted(w.summary()), range(10, 50));
    assert.equal(w.count(), 40);
  });

  test("a sketch window equals a sketch of the observations it holds", () => {
    const r = seededRandom(11);
    const w = countWindow(sketchKind(), { bucketSize: 250, buckets: 8 });
    const values = Array.from({ length: 5100 }, () => Math.exp(r.normal()));
    for (const v of values) w.add(v);
    // 5100 = 20 full buckets + 100: the window holds the last 7·250 + 100 values.
    const held = values.slice(5100 - 1850);
    const direct = sketchKind().create();
    for (const v of held) direct.add(v);
    const summary = w.summary();
    assert.equal(summary.count, 1850);
    for (const q of [0.01, 0.5, 0.99]) assert.equal(summary.quantile(q), direct.quantile(q));
  });

  test("refuses a bucket size or count below 1", () => {
    assert.throws(() => countWindow(listKind, { bucketSize: 0, buckets: 3 }), RangeError);
    assert.throws(() => countWindow(listKind, { bucketSize: 3, buckets: 1.5 }), RangeError);
  });
});

describe("time windows (fake clock)", () => {
  test("buckets expire by the clock, with or without new observations", () => {
    let t = 1_000_000; // aligned on 1 s buckets
    const w = timeWindow(listKind, { bucketMs: 1000, buckets: 3, now: () => t });
    w.add(1);
    t += 500;
    w.add(2);
    t += 600; // 1_001_100: second bucket
    w.add(3);
    t += 1000; // 1_002_100: third bucket
    w.add(4);
    assert.deepEqual(sorted(w.summary()), [1, 2, 3, 4]);
    assert.deepEqual(
      w.buckets().map((b) => [b.start, b.count]),
      [
        [1_000_000, 2],
        [1_001_000, 1],
        [1_002_000, 1],
      ],
    );
    t = 1_003_000; // the first bucket leaves the window
    assert.deepEqual(sorted(w.summary()), [3, 4]);
    assert.equal(w.count(), 2);
    w.add(5);
    assert.deepEqual(sorted(w.summary()), [3, 4, 5]);
    t = 1_010_000; // long silence: everything expired
    assert.deepEqual(w.summary(), []);
    assert.equal(w.count(), 0);
    w.add(6);
    assert.deepEqual(w.summary(), [6]);
  });

  test("a clock stepped back lands in its own bucket while live, and is dropped once expired", () => {
    let t = 10_500;
    const w = timeWindow(listKind, { bucketMs: 1000, buckets: 3, now: () => t });
    w.add(1);
    t = 12_200;
    w.add(2);
    t = 10_900; // back into the first bucket, still live
    assert.equal(w.add(3), true);
    t = 13_100;
    w.add(4); // reuses the first bucket's slot
    t = 10_100; // back again: that bucket has expired
    assert.equal(w.add(5), false);
    t = 8_000; // before anything the window holds: dropped too, though its slot (never used) is older
    assert.equal(w.add(6), false);
    t = 13_100;
    assert.deepEqual(sorted(w.summary()), [2, 4]);
  });

  test("replicas' windows over the same clock merge into the window of all observations", () => {
    let t = 0;
    const now = () => t;
    const kind = recordKind<
      "score" | "country" | "latency",
      { score: QuantileSketch; country: CategoryCounts; latency: Moments },
      { score: number; country: string | null; latency: number }
    >({ score: sketchKind(), country: categoryKind(), latency: momentsKind() });
    const replicas = [0, 1, 2].map(() => timeWindow(kind, { bucketMs: 60_000, buckets: 5, now }));
    const all = timeWindow(kind, { bucketMs: 60_000, buckets: 5, now });
    const r = seededRandom(8);
    for (let i = 0; i < 3000; i++) {
      t = i * 200; // ten minutes of traffic
      const obs = {
        score: r.next(),
        country: r.next() < 0.1 ? null : ["FR", "DE", "IT"][r.int(3)]!,
        latency: r.next(),
      };
      replicas[r.int(3)]!.add(obs);
      all.add(obs);
    }
    const merged = kind.create();
    for (const w of replicas) kind.merge(merged, w.summary());
    const direct = all.summary();
    assert.equal(merged.score.count, direct.score.count);
    assert.equal(merged.score.quantile(0.9), direct.score.quantile(0.9));
    assert.deepEqual(new Map(merged.country.entries()), new Map(direct.country.entries()));
    assert.equal(merged.country.missing, direct.country.missing);
    assert.equal(merged.latency.count, direct.latency.count);
    assert.ok(Math.abs(merged.latency.mean - direct.latency.mean) < 1e-12);
    // Five minute buckets of one a minute: the last 5 minutes (bucket starts 5..9 min) remain.
    assert.equal(direct.score.count, 1500);
  });
});
