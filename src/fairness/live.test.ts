import assert from "node:assert/strict";
import { test } from "node:test";
import { fairnessPolicyOf } from "../config/index.js";
import { createLiveFairness, type FairnessAlert } from "./index.js";

const features = [
  { name: "Age", type: "integer" as const, sensitive: true },
  { name: "Marital", type: "category" as const, sensitive: true, categories: ["single", "married"] },
];
const policy = (extra: Record<string, unknown> = {}) =>
  fairnessPolicyOf(features, {
    fairness: {
      attributes: { Age: { buckets: [30] }, Marital: {} },
      min_group_size: 5,
      live: { window: 100, outcome_memory: 50 },
      ...extra,
    },
  });

test("selection rates per group and window from the decisions; subjects put into buckets", () => {
  let now = Date.UTC(2024, 0, 1);
  const monitor = createLiveFairness({
    model: "m",
    version: "1",
    policy: policy(),
    favourableLabel: "good",
    now: () => now,
  });
  // Age <30: 10 decisions, 8 good; >=30: 10 decisions, 4 good. Marital: alternate.
  for (let i = 0; i < 20; i++) {
    const young = i < 10;
    const good = young ? i < 8 : i < 14;
    monitor.observeDecision(
      `d${i}`,
      { Age: young ? 22 : 40, Marital: i % 2 === 0 ? "single" : "married" },
      good ? "good" : "bad",
    );
  }
  const report = monitor.report();
  const age = report.by_count.attributes.find((a) => a.attribute === "Age")!;
  assert.deepEqual(
    age.groups.map((g) => [g.group, g.decisions, g.selected, g.selection_rate]),
    [
      ["<30", 10, 8, 0.8],
      [">=30", 10, 4, 0.4],
      ["(missing)", 0, 0, null],
    ],
  );
  assert.equal(age.selection_rate.ratio, 0.5);
  assert.ok(Math.abs(age.selection_rate.difference! - 0.4) < 1e-12);
  assert.equal(age.criteria[0]!.verdict, "fail");
  assert.equal(report.worst_selection_rate_ratio, 0.5);
  assert.equal(monitor.worstRatio(), 0.5);
  // The time window holds the same decisions; an hour past 24 it holds none.
  assert.equal(report.by_time.decisions, 20);
  now += 25 * 3_600_000;
  assert.equal(monitor.report().by_time.decisions, 0);
  assert.equal(monitor.report().by_count.decisions, 20);
});

test("the outcome memory keeps exactly the latest decisions through many turns of it; an id seen again keeps its place", () => {
  const monitor = createLiveFairness({ model: "m", version: "1", policy: policy(), favourableLabel: "good" });
  for (let i = 0; i < 1_000; i++) {
    monitor.observeDecision(`d${i}`, { Age: 20, Marital: "single" }, "good");
    // An id decided again (never the case for Warden's UUIDs) is remembered once, where it first came.
    if (i === 997) monitor.observeDecision("d990", { Age: 20, Marital: "single" }, "good");
    assert.equal(monitor.report().outcomes.remembered, Math.min(i + 1, 50));
  }
  // Capacity 50: d950..d999 are remembered, everything before is forgotten.
  assert.equal(monitor.observeOutcome("d949", "good"), "unknown_decision");
  assert.equal(monitor.observeOutcome("d0", "good"), "unknown_decision");
  for (let i = 950; i < 1_000; i++) assert.equal(monitor.observeOutcome(`d${i}`, "good"), "counted", `d${i}`);
  // One more decision forgets the oldest, d950 (d990, decided again, is not moved to the end).
  monitor.observeDecision("d1000", { Age: 20, Marital: "single" }, "good");
  assert.equal(monitor.observeOutcome("d950", "bad"), "unknown_decision");
  assert.equal(monitor.observeOutcome("d990", "bad"), "repeated");
  assert.equal(monitor.observeOutcome("d1000", "good"), "counted");
  assert.equal(monitor.report().outcomes.remembered, 50);
});

test("outcomes join their decisions: TPR and FPR per group; unknown and repeated outcomes are counted apart", () => {
  const monitor = createLiveFairness({ model: "m", version: "1", policy: policy(), favourableLabel: "good" });
  for (let i = 0; i < 60; i++)
    monitor.observeDecision(`d${i}`, { Age: 20, Marital: "single" }, i % 2 === 0 ? "good" : "bad");
  // d0..d9 remembered? The map holds the latest 50: d0..d9 are forgotten.
  assert.equal(monitor.observeOutcome("d0", "good"), "unknown_decision");
  assert.equal(monitor.observeOutcome("d10", "good"), "counted"); // decided good, is good: TP
  assert.equal(monitor.observeOutcome("d11", "good"), "counted"); // decided bad, is good: FN
  assert.equal(monitor.observeOutcome("d12", "bad"), "counted"); // decided good, is bad: FP
  assert.equal(monitor.observeOutcome("d12", "good"), "repeated");
  const report = monitor.report();
  assert.deepEqual(
    { ...report.outcomes },
    { counted: 3, unknown_decision: 1, repeated: 1, remembered: 50, capacity: 50 },
  );
  const young = report.by_count.attributes[0]!.groups[0]!;
  assert.deepEqual(young.confusion, { tn: 0, fp: 1, fn: 1, tp: 1 });
  assert.equal(young.tpr, 0.5);
  assert.equal(young.fpr, 1);
});

test("an alert fires once when a criterion starts failing and resolves once when it passes again", () => {
  const alerts: FairnessAlert[] = [];
  const monitor = createLiveFairness({
    model: "m",
    version: "1",
    policy: policy(),
    favourableLabel: "good",
    onAlert: (a) => alerts.push(a),
    evaluateEvery: 1,
  });
  let id = 0;
  const decide = (age: number, good: boolean) =>
    monitor.observeDecision(`d${id++}`, { Age: age, Marital: "single" }, good ? "good" : "bad");
  // Both groups at 5 decisions: young 5/5 good, old 1/5 → ratio 0.2: one firing alert.
  for (let i = 0; i < 5; i++) decide(20, true);
  for (let i = 0; i < 5; i++) decide(40, i === 0);
  // More failing decisions: no new alert.
  for (let i = 0; i < 20; i++) decide(40, false);
  const firing = alerts.filter((a) => a.status === "firing");
  assert.equal(firing.length, 1);
  assert.deepEqual(firing[0]!.labels, {
    model: "m",
    version: "1",
    attribute: "Age",
    criterion: "demographic_parity",
    window: "count",
  });
  assert.equal(monitor.firing().length, 1);
  // The window (100) fills with balanced decisions: the ratio recovers, one resolution.
  for (let i = 0; i < 100; i++) decide(i % 2 === 0 ? 20 : 40, true);
  const resolved = alerts.filter((a) => a.status === "resolved");
  assert.equal(resolved.length, 1);
  assert.equal(resolved[0]!.startsAt, firing[0]!.startsAt);
  assert.ok(resolved[0]!.endsAt !== undefined);
  assert.equal(monitor.firing().length, 0);
  assert.equal(alerts.length, 2);
});

test("the criteria are judged every evaluateEvery observations, or once a second has passed", () => {
  const alerts: FairnessAlert[] = [];
  let clock = 0;
  const monitor = createLiveFairness({
    model: "m",
    version: "1",
    policy: policy(),
    favourableLabel: "good",
    onAlert: (a) => alerts.push(a),
    evaluateEvery: 12,
    now: () => clock,
  });
  let id = 0;
  const decide = (age: number, good: boolean) =>
    monitor.observeDecision(`d${id++}`, { Age: age, Marital: "single" }, good ? "good" : "bad");
  // The first observation is judged at once (nothing judged yet); then every 12th.
  decide(20, true);
  for (let i = 0; i < 5; i++) decide(20, true);
  for (let i = 0; i < 6; i++) decide(40, false);
  assert.equal(alerts.length, 0, "11 observations since the first judgement: not judged yet");
  decide(40, false);
  assert.equal(alerts.length, 1, "the 12th: judged, failing");
  // After that, a second on the clock is enough.
  for (let i = 0; i < 30; i++) decide(i % 2 === 0 ? 20 : 40, true);
  const before = alerts.length;
  clock += 1000;
  for (let i = 0; i < 100; i++) {
    decide(i % 2 === 0 ? 20 : 40, true);
    clock += 1000;
  }
  assert.ok(alerts.length > before || alerts.at(-1)!.status === "resolved");
  assert.equal(alerts.at(-1)!.status, "resolved");
  assert.throws(
    () =>
      createLiveFairness({
        model: "m",
        version: "1",
        policy: policy(),
        favourableLabel: "good",
        evaluateEvery: 0,
      }),
    /evaluateEvery/,
  );
});
