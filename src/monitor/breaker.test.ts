import assert from "node:assert/strict";
import { test } from "node:test";
import { loadManifest } from "../config/index.js";
import { readReferenceRows } from "../explain/index.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV } from "../testing/index.js";
import {
  type BreakerEvent,
  type BreakerOptions,
  type BreakerRule,
  type CircuitBreaker,
  createCircuitBreaker,
  hashProbes,
} from "./breaker.js";

const T0 = Date.UTC(2026, 0, 1);
const SECOND = 1000;

function breaker(rules: BreakerRule[], options: Partial<BreakerOptions> = {}): CircuitBreaker {
  return createCircuitBreaker({
    rules,
    window: 100,
    coolDownS: 60,
    probeFraction: 0.1,
    probeSelection: "sequence",
    probesToClose: 20,
    fallback: { action: "refuse" },
    ...options,
  });
}

/** Feeds observations one per second from `start`; returns the events with the index that caused each. */
function feed(
  b: CircuitBreaker,
  observations: readonly Parameters<CircuitBreaker["observe"]>[0][],
  start = T0,
  untilEvent = false,
): { index: number; event: BreakerEvent }[] {
  const out: { index: number; event: BreakerEvent }[] = [];
  for (const [index, o] of observations.entries()) {
    for (const event of b.observe(o, start + index * SECOND)) out.push({ index, event });
    if (untilEvent && out.length > 0) break;
  }
  return out;
}

/** Mean of the `window` values ending at `end` (inclusive): the reference the breaker's value must match. */
function trailingMean(values: readonly number[], end: number, window: number): number {
  const from = Math.max(0, end - window + 1);
  let sum = 0;
  for (let i = from; i <= end; i++) sum += values[i]!;
  return sum / (end - from + 1);
}

// The demo model's confidence (probability of the class decided) on its holdout, and on a shifted copy in
// which applicants ask for twice the amount on half the income.
const demo = loadManifest(DEMO_XGB);
const reference = readReferenceRows(demo, HOLDOUT_CSV);
const scorer = xgboostScorer(demo);
const confidences = (scores: Float64Array) => Array.from(scores, (p) => Math.max(p, 1 - p));
const holdoutConfidence = confidences(await scorer.score(reference.input, reference.rows));
const shifted = Float32Array.from(reference.input);
{
  const names = demo.modelFeatures.map((f) => f.name);
  const amount = names.indexOf("Amount");
  const income = names.indexOf("Income");
  for (let r = 0; r < reference.rows; r++) {
    shifted[r * names.length + amount]! *= 2;
    shifted[r * names.length + income]! *= 0.5;
  }
}
const shiftedConfidence = confidences(await scorer.score(shifted, reference.rows));

const confidenceRule: BreakerRule = { signal: "confidence", trip: 0.75, reset: 0.78, minObservations: 100 };

test("the demo's holdout never trips a confidence floor of 0.75; the shifted copy trips it with the values that tripped", () => {
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(
    mean(holdoutConfidence) > 0.8 && mean(shiftedConfidence) < 0.73,
    `${mean(holdoutConfidence)} ${mean(shiftedConfidence)}`,
  );
  const b = breaker([confidenceRule], { window: 200 });
  assert.deepEqual(
    feed(
      b,
      [...holdoutConfidence, ...holdoutConfidence].map((confidence) => ({ confidence })),
    ),
    [],
  );
  const stream = [...holdoutConfidence, ...shiftedConfidence];
  const b2 = breaker([confidenceRule], { window: 200 });
  const events = feed(
    b2,
    stream.map((confidence) => ({ confidence })),
    T0,
    true,
  );
  assert.equal(events.length, 1);
  const { index, event } = events[0]!;
  // The first index at which the trailing 200 fall below 0.75, found by brute force.
  let expected = -1;
  for (let i = 199; i < stream.length && expected < 0; i++)
    if (trailingMean(stream, i, 200) < 0.75) expected = i;
  assert.equal(index, expected);
  assert.ok(index > holdoutConfidence.length);
  assert.equal(event.from, "closed");
  assert.equal(event.to, "open");
  assert.equal(event.rule, "confidence");
  assert.equal(event.threshold, 0.75);
  assert.equal(event.at, T0 + index * SECOND);
  assert.equal(event.values.confidence?.observations, 200);
  assert.ok(Math.abs(event.values.confidence!.value! - trailingMean(stream, index, 200)) < 1e-12);
  assert.ok(event.values.confidence!.value! < 0.75);
  assert.ok(Object.isFrozen(event));
  assert.equal(b2.snapshot().state, "open");
});

test("hysteresis: a mean between trip and reset neither trips a closed breaker nor closes a half-open one", () => {
  const b = breaker([confidenceRule], { probesToClose: 10 });
  const band = Array.from({ length: 300 }, () => ({ confidence: 0.765 }));
  assert.deepEqual(feed(b, band), []);
  // Trip it, wait out the cool-down, then probe with the same in-between stream: it re-opens.
  feed(
    b,
    Array.from({ length: 100 }, () => ({ confidence: 0.5 })),
    T0 + 1000 * SECOND,
  );
  assert.equal(b.snapshot().state, "open");
  const openedAt = b.snapshot().openedAt!;
  assert.deepEqual(b.tick(openedAt + 59_999), []);
  const [halfOpen] = b.tick(openedAt + 60 * SECOND);
  assert.equal(halfOpen?.from, "open");
  assert.equal(halfOpen?.to, "half_open");
  assert.equal(halfOpen?.rule, "cool_down");
  // Half-open starts from fresh windows.
  assert.equal(b.snapshot().values.confidence?.observations, 0);
  const probes = feed(b, band.slice(0, 10), openedAt + 61 * SECOND);
  assert.equal(probes.length, 1);
  assert.equal(probes[0]?.index, 9);
  assert.equal(probes[0]?.event.from, "half_open");
  assert.equal(probes[0]?.event.to, "open");
  assert.equal(probes[0]?.event.rule, "confidence");
  assert.equal(probes[0]?.event.threshold, 0.78);
  assert.ok(Math.abs(probes[0]!.event.values.confidence!.value! - 0.765) < 1e-12);
});

test("cool-down, then half-open probes of the holdout close the breaker; probes of the shifted copy re-open it", () => {
  const b = breaker([confidenceRule], { window: 200, probesToClose: 100 });
  const events = feed(
    b,
    shiftedConfidence.map((confidence) => ({ confidence })),
    T0,
    true,
  );
  assert.equal(events[0]?.event.rule, "confidence");
  const openedAt = b.snapshot().openedAt!;
  assert.deepEqual(b.route("r1", openedAt + 30 * SECOND), {
    route: { action: "fallback", fallback: { action: "refuse" } },
    events: [],
  });
  // The first route after the cool-down moves to half-open, and its request is a probe.
  const first = b.route("r2", openedAt + 60 * SECOND);
  assert.equal(first.events[0]?.to, "half_open");
  assert.deepEqual(first.route, { action: "probe" });
  const reopen = feed(
    b,
    shiftedConfidence.slice(0, 100).map((confidence) => ({ confidence })),
    openedAt + 61 * SECOND,
  );
  assert.equal(reopen.length, 1);
  assert.equal(reopen[0]?.index, 99);
  assert.equal(reopen[0]?.event.to, "open");
  assert.ok(
    Math.abs(reopen[0]!.event.values.confidence!.value! - trailingMean(shiftedConfidence, 99, 100)) < 1e-12,
  );
  // Probe again with holdout traffic whose first 100 have a mean at or above the reset level.
  assert.ok(trailingMean(holdoutConfidence, 99, 100) >= 0.78);
  const reopenedAt = b.snapshot().openedAt!;
  b.tick(reopenedAt + 60 * SECOND);
  const close = feed(
    b,
    holdoutConfidence.slice(0, 100).map((confidence) => ({ confidence })),
    reopenedAt + 61 * SECOND,
  );
  assert.equal(close.length, 1);
  assert.equal(close[0]?.index, 99);
  assert.deepEqual(
    [close[0]?.event.from, close[0]?.event.to, close[0]?.event.rule],
    ["half_open", "closed", "probes_healthy"],
  );
  assert.equal(b.route("r3", reopenedAt + 200 * SECOND).route.action, "serve");
});

test("anomaly rate: trips above its ceiling at the first full-enough window past it, not before min observations", () => {
  const rule: BreakerRule = { signal: "anomaly_rate", trip: 0.1, reset: 0.05, minObservations: 50 };
  // 1 in 50 anomalous for 500 requests, then 1 in 4.
  const flags = Array.from({ length: 800 }, (_, i) => (i < 500 ? i % 50 === 0 : i % 4 === 0));
  const b = breaker([rule]);
  const events = feed(
    b,
    flags.map((anomalous) => ({ anomalous })),
    T0,
    true,
  );
  const rates = flags.map((f) => (f ? 1 : 0));
  let expected = -1;
  for (let i = 49; i < rates.length && expected < 0; i++) if (trailingMean(rates, i, 100) > 0.1) expected = i;
  assert.equal(events.length, 1);
  assert.equal(events[0]?.index, expected);
  assert.equal(events[0]?.event.rule, "anomaly_rate");
  assert.equal(events[0]?.event.values.anomaly_rate?.value, trailingMean(rates, expected, 100));
  // The first observation alone is anomalous (rate 1) but below min_observations: nothing trips.
  assert.ok(flags[0]);
});

test("error rate: a burst of failures trips it; a probe window with failures above reset re-opens; one at reset closes", () => {
  const rule: BreakerRule = { signal: "error_rate", trip: 0.2, reset: 0.05, minObservations: 20 };
  const b = breaker([rule], { probesToClose: 20 });
  // Ten failures in a row: rate 1, but only ten observations.
  assert.deepEqual(
    feed(
      b,
      Array.from({ length: 10 }, () => ({ failed: true })),
    ),
    [],
  );
  const more = feed(
    b,
    Array.from({ length: 10 }, () => ({ failed: false })),
    T0 + 10 * SECOND,
  );
  // At 20 observations the rate is 10/20 = 0.5 > 0.2.
  assert.equal(more.length, 1);
  assert.equal(more[0]?.index, 9);
  assert.deepEqual(more[0]?.event.values.error_rate, { value: 0.5, observations: 20 });
  const openedAt = b.snapshot().openedAt!;
  b.tick(openedAt + 60 * SECOND);
  // One failure in twenty probes: 0.05 is healthy (≤ reset). Two in twenty: 0.1 is not.
  const twoFailures = Array.from({ length: 20 }, (_, i) => ({ failed: i === 3 || i === 11 }));
  const reopened = feed(b, twoFailures, openedAt + 61 * SECOND);
  assert.equal(reopened.length, 1);
  assert.equal(reopened[0]?.event.to, "open");
  assert.equal(reopened[0]?.event.rule, "error_rate");
  assert.deepEqual(reopened[0]?.event.values.error_rate, { value: 0.1, observations: 20 });
  const again = b.snapshot().openedAt!;
  b.tick(again + 60 * SECOND);
  const oneFailure = Array.from({ length: 20 }, (_, i) => ({ failed: i === 7 }));
  const closed = feed(b, oneFailure, again + 61 * SECOND);
  assert.equal(closed.length, 1);
  assert.equal(closed[0]?.event.to, "closed");
  assert.deepEqual(closed[0]?.event.values.error_rate, { value: 0.05, observations: 20 });
});

test("drift: a verdict over enough rows above the threshold trips; probes close only once drift is back under reset", () => {
  const rule: BreakerRule = { signal: "drift", trip: 0.3, reset: 0.1, minObservations: 300 };
  const b = breaker([rule, { signal: "error_rate", trip: 0.5, reset: 0.1, minObservations: 10 }], {
    probesToClose: 5,
  });
  assert.deepEqual(b.reportDrift(0.5, 200, T0), []); // too few rows behind the verdict
  assert.deepEqual(b.reportDrift(0.3, 500, T0 + SECOND), []); // at the threshold, not above it
  const [tripped] = b.reportDrift(4 / 11, 500, T0 + 2 * SECOND);
  assert.equal(tripped?.rule, "drift");
  assert.deepEqual(tripped?.values.drift, { value: 4 / 11, observations: 500 });
  assert.deepEqual(tripped?.values.error_rate, { value: undefined, observations: 0 });
  b.tick(T0 + 62 * SECOND);
  // Healthy probes, but the drift monitor still finds 2 of 11 features drifted: re-open.
  const healthy = Array.from({ length: 5 }, () => ({ failed: false }));
  assert.equal(b.reportDrift(2 / 11, 500, T0 + 63 * SECOND).length, 0);
  const reopened = feed(b, healthy, T0 + 64 * SECOND);
  assert.equal(reopened[0]?.event.rule, "drift");
  assert.equal(reopened[0]?.event.threshold, 0.1);
  b.tick(T0 + 200 * SECOND);
  b.reportDrift(1 / 11, 500, T0 + 201 * SECOND);
  const closed = feed(b, healthy, T0 + 202 * SECOND);
  assert.equal(closed[0]?.event.to, "closed");
});

test("half-open routing: the sequence rule probes exactly ⌈n·fraction⌉ of the first n requests, the first included", () => {
  for (const fraction of [0.1, 0.25, 0.3, 0.57, 1 / 3, 1]) {
    const b = breaker([{ signal: "error_rate", trip: 0.5, reset: 0.1, minObservations: 1 }], {
      probeFraction: fraction,
      probesToClose: 1_000_000,
    });
    b.observe({ failed: true }, T0);
    b.tick(T0 + 60 * SECOND);
    assert.equal(b.snapshot().state, "half_open");
    let probes = 0;
    for (let n = 1; n <= 1000; n++) {
      const { route } = b.route(`request-${n}`, T0 + 61 * SECOND);
      if (route.action === "probe") probes += 1;
      else assert.deepEqual(route, { action: "fallback", fallback: { action: "refuse" } });
      // A millionth of resolution: ⌈n·f⌉ with f rounded to six places.
      assert.equal(
        probes,
        Math.floor((n * Math.round(fraction * 1e6) + 1e6 - 1) / 1e6),
        `${fraction} at ${n}`,
      );
      if (n === 1) assert.equal(probes, 1);
    }
  }
});

test("half-open routing by hash: the same key always gets the same answer; the share is near the fraction", () => {
  let probes = 0;
  for (let i = 0; i < 20_000; i++) if (hashProbes(`req-${i}`, 0.2, 7)) probes += 1;
  // Binomial(20000, 0.2): sd ≈ 57; four sd either side.
  assert.ok(Math.abs(probes - 4000) < 230, String(probes));
  const make = () => {
    const b = breaker([{ signal: "error_rate", trip: 0.5, reset: 0.1, minObservations: 1 }], {
      probeSelection: "hash",
      probeFraction: 0.2,
      seed: 7,
    });
    b.observe({ failed: true }, T0);
    b.tick(T0 + 60 * SECOND);
    return b;
  };
  const [a, b] = [make(), make()];
  for (let i = 0; i < 200; i++) {
    const key = `req-${i}`;
    const expected = hashProbes(key, 0.2, 7) ? "probe" : "fallback";
    assert.equal(a.route(key, T0 + 61 * SECOND).route.action, expected);
    assert.equal(b.route(key, T0 + 62 * SECOND).route.action, expected);
  }
});

test("manual stop holds the breaker open, through cool-downs and healthy traffic, until the operator resumes", () => {
  const b = breaker([{ signal: "error_rate", trip: 0.2, reset: 0.05, minObservations: 20 }], {
    fallback: { action: "fallback_version", version: "1.3.0" },
  });
  const [stopped] = b.stop("ops@bank.example", "complaints about declines", T0);
  assert.deepEqual(
    {
      from: stopped?.from,
      to: stopped?.to,
      rule: stopped?.rule,
      actor: stopped?.actor,
      reason: stopped?.reason,
    },
    {
      from: "closed",
      to: "open",
      rule: "manual_stop",
      actor: "ops@bank.example",
      reason: "complaints about declines",
    },
  );
  assert.deepEqual(b.stop("someone-else", "again", T0 + SECOND), []);
  for (let hour = 1; hour <= 48; hour++) {
    const now = T0 + hour * 3600 * SECOND;
    assert.deepEqual(b.tick(now), []);
    assert.deepEqual(b.observe({ failed: false }, now), []);
    assert.deepEqual(b.route(`r${hour}`, now), {
      route: { action: "fallback", fallback: { action: "fallback_version", version: "1.3.0" } },
      events: [],
    });
  }
  assert.equal(b.snapshot().stoppedBy?.actor, "ops@bank.example");
  const [resumed] = b.resume("lead@bank.example", "model retrained", T0 + 49 * 3600 * SECOND);
  assert.deepEqual(
    [resumed?.from, resumed?.to, resumed?.rule, resumed?.actor],
    ["open", "half_open", "manual_resume", "lead@bank.example"],
  );
  assert.deepEqual(b.resume("lead@bank.example", "twice", T0 + 49 * 3600 * SECOND), []);
  assert.equal(b.snapshot().stoppedBy, undefined);
});

test("a stop while open or half-open is recorded; a stopped half-open breaker does not close on healthy probes", () => {
  const b = breaker([{ signal: "error_rate", trip: 0.2, reset: 0.05, minObservations: 5 }], {
    probesToClose: 5,
  });
  feed(
    b,
    Array.from({ length: 5 }, () => ({ failed: true })),
  );
  const [stopOpen] = b.stop("ops", "hold it", T0 + 10 * SECOND);
  assert.deepEqual([stopOpen?.from, stopOpen?.to], ["open", "open"]);
  b.resume("ops", "try again", T0 + 20 * SECOND);
  assert.equal(b.snapshot().state, "half_open");
  const [stopHalf] = b.stop("ops", "no, hold", T0 + 21 * SECOND);
  assert.deepEqual([stopHalf?.from, stopHalf?.to], ["half_open", "open"]);
  assert.deepEqual(
    feed(
      b,
      Array.from({ length: 50 }, () => ({ failed: false })),
      T0 + 22 * SECOND,
    ),
    [],
  );
  assert.equal(b.snapshot().state, "open");
  const [closed] = b.resume("ops", "fixed upstream", T0 + 100 * SECOND, { to: "closed" });
  assert.deepEqual([closed?.from, closed?.to], ["open", "closed"]);
  assert.equal(b.route("r", T0 + 101 * SECOND).route.action, "serve");
});

test("settings out of range are refused", () => {
  const rule: BreakerRule = { signal: "confidence", trip: 0.7, reset: 0.8, minObservations: 10 };
  assert.throws(() => breaker([{ ...rule, reset: 0.6 }]), /reset must be on the healthy side/);
  assert.throws(
    () => breaker([{ signal: "error_rate", trip: 0.1, reset: 0.2, minObservations: 1 }]),
    RangeError,
  );
  assert.throws(() => breaker([rule, rule]), /two rules/);
  assert.throws(() => breaker([rule], { probeFraction: 0 }), RangeError);
  assert.throws(() => breaker([rule], { window: 0 }), RangeError);
  assert.throws(() => breaker([rule], { fallback: { action: "fallback_version" } }), /needs a version/);
});

test("the rolling mean stays exact over long streams (no drift from running sums)", () => {
  const b = breaker([{ signal: "confidence", trip: 0.1, reset: 0.2, minObservations: 1 }], { window: 7 });
  const values = Array.from({ length: 100_003 }, (_, i) => ((i * 7919) % 1000) / 1000 + 0.1);
  feed(
    b,
    values.map((confidence) => ({ confidence })),
  );
  const value = b.snapshot().values.confidence!.value!;
  assert.ok(Math.abs(value - trailingMean(values, values.length - 1, 7)) < 1e-12);
});
