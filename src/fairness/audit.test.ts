import assert from "node:assert/strict";
import { test } from "node:test";
import { fairnessAudit } from "./audit.js";
import { chooseReference, equalizedOdds, passesFourFifths } from "./disparity.js";
import { encodeGroups, MISSING_LEVEL } from "./groups.js";

test("encodeGroups: sorted levels, intersections in mixed radix (first attribute slowest), missing values", () => {
  const encoding = encodeGroups([
    { name: "sex", values: ["M", "F", "F", null] },
    { name: "age", values: [61, 9, 25, 9] },
  ]);
  assert.deepEqual(encoding.levels, [
    ["(missing)", "F", "M"],
    ["9", "25", "61"],
  ]);
  assert.equal(MISSING_LEVEL, "(missing)");
  assert.deepEqual([...encoding.codes], [2 * 3 + 2, 1 * 3 + 0, 1 * 3 + 1, 0]);
  assert.equal(encoding.groups.length, 9);
  assert.equal(encoding.groups[3]!.label, "sex=F, age=9");
  assert.deepEqual(encoding.groups[3]!.values, { sex: "F", age: "9" });
  const encoded = encodeGroups([{ name: "x", codes: [1, 0, 1], levels: ["b", "a"] }]);
  assert.deepEqual(
    encoded.groups.map((g) => g.label),
    ["b", "a"],
  );
  assert.throws(() => encodeGroups([]), RangeError);
  assert.throws(() => encodeGroups([{ name: "x", codes: [2], levels: ["a", "b"] }]), /not an index/);
  assert.throws(
    () =>
      encodeGroups([
        { name: "x", values: [1, 2] },
        { name: "y", values: [1] },
      ]),
    /has 1 rows/,
  );
});

/** Rows from (group, y, ŷ, count) tuples. */
function rows(spec: readonly (readonly [string, string, 0 | 1, 0 | 1, number])[]) {
  const a: string[] = [];
  const b: string[] = [];
  const yTrue: number[] = [];
  const yPred: number[] = [];
  for (const [ga, gb, y, p, count] of spec) {
    for (let i = 0; i < count; i++) {
      a.push(ga);
      b.push(gb);
      yTrue.push(y);
      yPred.push(p);
    }
  }
  return {
    groups: [
      { name: "a", values: a },
      { name: "b", values: b },
    ],
    yTrue,
    yPred,
  };
}

test("empty intersections and small groups are flagged, never dropped; undefined figures are NaN with a reason", () => {
  // (x, u) has 40 rows, (y, u) 5 rows and no actual positive, (x, v) 40 rows; (y, v) has none.
  const input = rows([
    ["x", "u", 1, 1, 10],
    ["x", "u", 1, 0, 10],
    ["x", "u", 0, 1, 5],
    ["x", "u", 0, 0, 15],
    ["y", "u", 0, 1, 2],
    ["y", "u", 0, 0, 3],
    ["x", "v", 1, 1, 20],
    ["x", "v", 0, 0, 20],
  ]);
  const audit = fairnessAudit(input, { bootstrap: { resamples: 20 } });
  const byLabel = Object.fromEntries(audit.groups.map((g) => [g.group.label, g]));
  assert.deepEqual(Object.keys(byLabel), ["a=x, b=u", "a=x, b=v", "a=y, b=u", "a=y, b=v"]);
  const empty = byLabel["a=y, b=v"]!;
  assert.deepEqual(empty.flags, ["empty", "excluded"]);
  assert.equal(empty.count, 0);
  for (const figure of Object.values(empty.metrics)) {
    assert.ok(Number.isNaN(figure.value));
    assert.equal(figure.reason, "empty-group");
  }
  const small = byLabel["a=y, b=u"]!;
  assert.deepEqual(small.flags, ["small"]);
  assert.ok(Number.isNaN(small.metrics.tpr.value));
  assert.equal(small.metrics.tpr.reason, "no-actual-positives");
  assert.equal(small.metrics.fpr.value, 0.4);
  // In JSON an undefined figure is null, with its reason beside it.
  const json = JSON.parse(JSON.stringify(small.metrics.tpr));
  assert.equal(json.value, null);
  assert.equal(json.reason, "no-actual-positives");
  // Flagged small groups still count by default: selection rates 15/40, 20/40, 2/5.
  const dp = audit.criteria.demographicParity;
  assert.ok(Math.abs(dp.difference.value - (0.5 - 0.375)) < 1e-12);
  assert.ok(Math.abs(dp.ratio.value - 0.375 / 0.5) < 1e-12);
  // (x, v) has no false positive and no false negative: its FPR is 0; with "lowest" it is FPR's reference, and
  // every other group's FPR ratio to it is undefined: reference-zero.
  const lowest = fairnessAudit(input, { reference: "lowest", bootstrap: false });
  const fpr = lowest.disparities.find((d) => d.metric === "fpr")!;
  assert.equal(fpr.reference, "a=x, b=v");
  const toXu = fpr.toReference.find((r) => r.group === "a=x, b=u")!;
  assert.ok(Math.abs(toXu.difference.value - 0.25) < 1e-12);
  assert.ok(Number.isNaN(toXu.ratio.value));
  assert.equal(toXu.ratio.reason, "reference-zero");
  const toEmpty = fpr.toReference.find((r) => r.group === "a=y, b=v")!;
  assert.equal(toEmpty.difference.reason, "group-undefined");
});

test("smallGroups 'exclude': small groups leave the comparisons and tests but keep their own figures", () => {
  const input = rows([
    ["x", "u", 1, 1, 30],
    ["x", "u", 0, 0, 30],
    ["y", "u", 1, 1, 1],
    ["y", "u", 0, 1, 4],
    ["x", "v", 1, 1, 10],
    ["x", "v", 1, 0, 20],
    ["x", "v", 0, 0, 30],
  ]);
  const flagged = fairnessAudit(input, { bootstrap: false, minGroupSize: 10 });
  const excluded = fairnessAudit(input, { bootstrap: false, minGroupSize: 10, smallGroups: "exclude" });
  const small = excluded.groups.find((g) => g.group.label === "a=y, b=u")!;
  assert.deepEqual(small.flags, ["small", "excluded"]);
  assert.equal(small.metrics.selection_rate.value, 1);
  // Selection rates: 0.5, 1/6, and 1 for the small group.
  assert.ok(Math.abs(flagged.criteria.demographicParity.difference.value - (1 - 1 / 6)) < 1e-12);
  assert.ok(Math.abs(excluded.criteria.demographicParity.difference.value - (0.5 - 1 / 6)) < 1e-12);
  assert.ok(flagged.tests.results.some((t) => t.group === "a=y, b=u"));
  assert.ok(!excluded.tests.results.some((t) => t.group === "a=y, b=u"));
  assert.ok(!excluded.criteria.fourFifths.groups.some((g) => g.group === "a=y, b=u"));
});

test("reference rules: largest, lowest, highest, best (by direction), named; unknown names refused", () => {
  const groups = encodeGroups([{ name: "g", values: ["p", "q", "r"] }]).groups;
  const values = [0.2, 0.5, 0.1];
  const sizes = [10, 30, 20];
  const eligible = [true, true, true];
  assert.equal(chooseReference("largest", "tpr", values, sizes, eligible, groups), 1);
  assert.equal(chooseReference("lowest", "tpr", values, sizes, eligible, groups), 2);
  assert.equal(chooseReference("highest", "fpr", values, sizes, eligible, groups), 1);
  assert.equal(chooseReference("best", "tpr", values, sizes, eligible, groups), 1);
  assert.equal(chooseReference("best", "fpr", values, sizes, eligible, groups), 2);
  assert.equal(chooseReference("best", "selection_rate", values, sizes, eligible, groups, false), 2);
  assert.equal(chooseReference({ group: "r" }, "tpr", values, sizes, eligible, groups), 2);
  assert.equal(chooseReference("largest", "tpr", values, sizes, [true, false, true], groups), 2);
  assert.throws(() => chooseReference({ group: "s" }, "tpr", values, sizes, eligible, groups), /not one of/);
});

test("equalized odds (worst and mean) and the four-fifths band", () => {
  const tpr = { difference: 0.2, ratio: 0.6 };
  const fpr = { difference: 0.1, ratio: 0.9 };
  assert.deepEqual(equalizedOdds(tpr, fpr), { difference: 0.2, ratio: 0.6 });
  const mean = equalizedOdds(tpr, fpr, "mean");
  assert.ok(Math.abs(mean.difference - 0.15) < 1e-15 && Math.abs(mean.ratio - 0.75) < 1e-15);
  assert.ok(Number.isNaN(equalizedOdds(tpr, { difference: Number.NaN, ratio: 1 }).difference));
  assert.equal(passesFourFifths(0.8), true);
  assert.equal(passesFourFifths(1.25), true);
  assert.equal(passesFourFifths(0.79), false);
  assert.equal(passesFourFifths(1.26), false);
  assert.equal(passesFourFifths(Number.NaN), null);
});

test("tests against the reference: Holm-corrected over every test of the audit, significance at alpha", () => {
  const input = rows([
    ["x", "u", 1, 1, 300],
    ["x", "u", 0, 0, 300],
    ["x", "u", 0, 1, 100],
    ["x", "u", 1, 0, 100],
    ["y", "u", 1, 1, 60],
    ["y", "u", 1, 0, 140],
    ["y", "u", 0, 0, 200],
  ]);
  const audit = fairnessAudit(input, { bootstrap: false });
  assert.equal(audit.tests.method, "fisher");
  assert.equal(audit.tests.correction, "holm");
  assert.deepEqual(
    audit.tests.results.map((t) => [t.metric, t.group, t.reference]),
    [
      ["selection_rate", "a=y, b=u", "a=x, b=u"],
      ["tpr", "a=y, b=u", "a=x, b=u"],
      ["fpr", "a=y, b=u", "a=x, b=u"],
      ["precision", "a=y, b=u", "a=x, b=u"],
    ],
  );
  const selection = audit.tests.results[0]!;
  assert.deepEqual(
    [selection.successes, selection.trials, selection.referenceSuccesses, selection.referenceTrials],
    [60, 400, 400, 800],
  );
  assert.ok(selection.significant && selection.adjustedPValue >= selection.pValue);
  // FPR of y is 0/200 against 100/400: clearly different; precision 60/60 against 300/400.
  assert.ok(audit.tests.results.every((t) => t.significant));
  const z = fairnessAudit(input, { bootstrap: false, test: "z", correction: "bonferroni" });
  assert.equal(z.tests.results[0]!.adjustedPValue, Math.min(1, 4 * z.tests.results[0]!.pValue));
});

test("options are checked", () => {
  const input = rows([["x", "u", 1, 1, 3]]);
  assert.throws(() => fairnessAudit(input, { minGroupSize: 0 }), RangeError);
  assert.throws(() => fairnessAudit(input, { alpha: 1 }), RangeError);
  assert.throws(() => fairnessAudit(input, { bootstrap: { resamples: -1 } }), RangeError);
  assert.throws(() => fairnessAudit(input, { bootstrap: { level: 1 } }), RangeError);
  assert.throws(() => fairnessAudit({ ...input, yPred: [1, 2, 1] }), /yPred\[1\]/);
  assert.throws(() => fairnessAudit({ ...input, scores: [0.1, 1.2, 0.3] }), /scores\[1\]/);
});
