import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../explain/random.js";
import { createLivePerformance } from "./live-performance.js";
import { binaryMetrics, estimatedBinaryMetrics } from "./performance.js";

const HOUR = 3_600_000;

/** Scores and labels drawn so that the scores are calibrated: P(label = 1 | score) = score. */
function calibrated(n: number, seed: number): { score: number; positive: boolean }[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const score = Math.round(random.next() * 1000) / 1000;
    return { score, positive: random.next() < score };
  });
}

test("the count windows hold the latest decisions and outcomes; figures equal the exact ones over them", () => {
  const live = createLivePerformance({ threshold: 0.4, count: 100, now: () => 0 });
  const cases = calibrated(250, 7);
  for (const c of cases) live.observeDecision(c.score);
  // Outcomes for the first 130 decisions only.
  for (const c of cases.slice(0, 130)) live.observeOutcome(c.score, c.positive);
  const r = live.report().by_count;
  // 10 buckets of 10: once full, the window keeps between 91 and 100 of the latest.
  assert.equal(r.size, 100);
  assert.equal(r.decisions, 100);
  assert.equal(r.outcomes, 100);
  const recentDecisions = cases.slice(150).map((c) => c.score);
  const estimate = estimatedBinaryMetrics(recentDecisions, { threshold: 0.4 });
  assert.ok(Math.abs(r.estimated!.accuracy! - estimate.accuracy) < 1e-12);
  assert.ok(Math.abs(r.estimated!.precision! - estimate.precision) < 1e-12);
  assert.ok(Math.abs(r.estimated!.recall! - estimate.recall) < 1e-12);
  assert.ok(Math.abs(r.estimated!.roc_auc! - estimate.rocAuc) <= r.estimated!.roc_auc_error_bound! + 1e-12);
  const labelled = cases.slice(30, 130);
  const exact = binaryMetrics(
    labelled.map((c) => c.score),
    labelled.map((c) => (c.positive ? 1 : 0)),
    { threshold: 0.4 },
  );
  assert.ok(Math.abs(r.realised!.accuracy! - exact.accuracy) < 1e-12);
  assert.ok(Math.abs(r.realised!.brier! - exact.brier) < 1e-12);
  assert.ok(Math.abs(r.realised!.ece! - exact.ece) < 1e-12);
  assert.ok(Math.abs(r.realised!.roc_auc! - exact.rocAuc) <= r.realised!.roc_auc_error_bound! + 1e-12);
  const onLabelled = estimatedBinaryMetrics(
    labelled.map((c) => c.score),
    { threshold: 0.4 },
  );
  assert.ok(Math.abs(r.estimated_on_labelled!.accuracy! - onLabelled.accuracy) < 1e-12);
  // Calibrated scores: the estimate lands near the truth (a loose check of the idea, not of the code).
  assert.ok(Math.abs(r.estimated_on_labelled!.accuracy! - r.realised!.accuracy!) < 0.15);
});

test("the time windows keep the last hours by the clock, with or without new observations", () => {
  let now = 10 * HOUR;
  const live = createLivePerformance({ threshold: 0.5, hours: 3, now: () => now });
  live.observeDecision(0.9);
  live.observeOutcome(0.9, true);
  now += HOUR;
  live.observeDecision(0.2);
  live.observeOutcome(0.2, true);
  let r = live.report().by_time;
  assert.equal(r.hours, 3);
  assert.equal(r.decisions, 2);
  assert.equal(r.outcomes, 2);
  assert.equal(r.realised!.accuracy, 0.5);
  assert.equal(r.realised!.recall, 0.5);
  now += 2 * HOUR; // the first hour's bucket has left the window
  r = live.report().by_time;
  assert.equal(r.decisions, 1);
  assert.equal(r.outcomes, 1);
  assert.equal(r.realised!.accuracy, 0);
  assert.equal(r.realised!.precision, null, "nothing predicted positive: precision is undefined");
  now += 5 * HOUR;
  r = live.report().by_time;
  assert.deepEqual(
    { decisions: r.decisions, estimated: r.estimated, outcomes: r.outcomes, realised: r.realised },
    { decisions: 0, estimated: null, outcomes: 0, realised: null },
  );
});

test("bad options and scores are refused", () => {
  assert.throws(() => createLivePerformance({ threshold: 1.5 }), /threshold must be in \[0, 1\]/);
  assert.throws(() => createLivePerformance({ threshold: 0.5, count: 15 }), /multiple of 10/);
  assert.throws(() => createLivePerformance({ threshold: 0.5, hours: 0 }), /hours must be/);
  const live = createLivePerformance({ threshold: 0.5 });
  assert.throws(() => live.observeDecision(Number.NaN), /probabilities/);
  assert.throws(() => live.observeOutcome(2, true), /probabilities/);
});
