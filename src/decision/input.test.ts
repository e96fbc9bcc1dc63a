import assert from "node:assert/strict";
import { test } from "node:test";
import { parseManifest } from "../config/index.js";
import type { RowResult } from "../runtime/index.js";
import { validateInstance } from "./input.js";
import { applyPolicy } from "./policy.js";

const raw = {
  name: "m",
  version: "1",
  owner: "o",
  intended_use: "u",
  risk_tier: "high",
  task: "binary",
  artifact: { path: "x.json", format: "xgboost-json", sha256: "a".repeat(64) },
  features: [
    { name: "income", type: "number", min: 0, max: 100, nullable: true },
    { name: "years", type: "integer", min: 0, max: 60 },
    { name: "home", type: "category", categories: ["rent", "own"] },
    { name: "records", type: "boolean" },
    { name: "toString", type: "number" },
    { name: "age", type: "integer", min: 18, max: 100, sensitive: true },
  ],
  output: { labels: ["good", "bad"], positive_label: "bad", threshold: 0.3 },
};
const manifest = parseManifest(raw, "/models/m.yaml");

test("a valid instance is encoded in manifest order: numbers, category index, boolean 0/1, null → NaN", () => {
  const { instance, problems } = validateInstance(
    manifest,
    { income: null, years: 3, home: "own", records: true, toString: 2.5 },
    { age: 40 },
    "",
  );
  assert.deepEqual(problems, []);
  assert.ok(instance);
  assert.deepEqual([...instance.row], [Number.NaN, 3, 1, 1, 2.5]);
  assert.deepEqual(instance.subject, { age: 40 });
  assert.deepEqual(instance.inputs, { income: null, years: 3, home: "own", records: true, toString: 2.5 });
});

test("every bad field is listed with expected, found and a fix", () => {
  const { instance, problems } = validateInstance(
    manifest,
    { income: "12", years: 2.5, home: "Rent", records: "yes", extra: 1, age: 30 },
    { age: 12, colour: "red" },
    "instances[2].",
  );
  assert.equal(instance, undefined);
  const byField = new Map(problems.map((p) => [p.field, p]));
  assert.deepEqual([...byField.keys()].sort(), [
    "instances[2].features.age",
    "instances[2].features.extra",
    "instances[2].features.home",
    "instances[2].features.income",
    "instances[2].features.records",
    "instances[2].features.toString",
    "instances[2].features.years",
    "instances[2].subject.age",
    "instances[2].subject.colour",
  ]);
  assert.equal(byField.get("instances[2].features.income")!.fix, "send a JSON number, not a string");
  assert.equal(byField.get("instances[2].features.years")!.expected, "an integer between 0 and 60");
  assert.equal(byField.get("instances[2].features.home")!.found, '"Rent" (string)');
  assert.match(byField.get("instances[2].features.age")!.fix!, /sensitive: send it in "subject"/);
  // A feature named like an Object.prototype member is missing, not a function.
  assert.equal(byField.get("instances[2].features.toString")!.found, "missing");
  assert.match(byField.get("instances[2].subject.age")!.expected, /between 18 and 100/);
});

test("NaN, Infinity, out-of-range and non-object bodies are refused", () => {
  for (const income of [Number.NaN, Number.POSITIVE_INFINITY, -1, 101]) {
    const { problems } = validateInstance(
      manifest,
      { income, years: 1, home: "rent", records: false, toString: 1 },
      undefined,
      "",
    );
    assert.equal(problems.length, 1, String(income));
    assert.equal(problems[0]!.field, "features.income");
  }
  assert.equal(validateInstance(manifest, [1, 2], undefined, "").problems[0]!.field, "features");
  // Finite as a double, infinite as the float32 the model receives.
  const unbounded = parseManifest({ ...raw, features: [{ name: "x", type: "number" }] }, "/m.yaml");
  const huge = validateInstance(unbounded, { x: 1e39 }, undefined, "");
  assert.match(huge.problems[0]!.fix ?? "", /float32 range/);
  // Long unknown keys are cut in errors, never echoed whole.
  const long = validateInstance(unbounded, { x: 1, ["k".repeat(10_000)]: 1 }, undefined, "");
  assert.ok(long.problems[0]!.field.length < 100);
  assert.equal(validateInstance(manifest, {}, "x", "").problems[0]!.field, "subject");
});

function row(values: number[], kind: RowResult["kind"] = "probabilities"): RowResult {
  return {
    values: Float64Array.from(values),
    margins: undefined,
    kind,
    batchSize: 1,
    queueMs: 0,
    inferenceMs: 0,
  };
}

test("binary policy: P(positive) against the threshold, either label order", () => {
  assert.deepEqual(applyPolicy(manifest, row([0.75, 0.25])), {
    score: 0.25,
    probabilities: { good: 0.75, bad: 0.25 },
    decision: "good",
  });
  assert.equal(applyPolicy(manifest, row([0.7, 0.3])).decision, "bad"); // score == threshold → positive
  assert.equal(applyPolicy(manifest, row([0.4], "values")).score, 0.4);
  const flipped = parseManifest(
    { ...raw, output: { labels: ["bad", "good"], positive_label: "bad", threshold: 0.5 } },
    "/m.yaml",
  );
  const outcome = applyPolicy(flipped, row([0.6, 0.4]));
  assert.equal(outcome.score, 0.6);
  assert.equal(outcome.decision, "bad");
  assert.throws(() => applyPolicy(manifest, row([0.2, 0.3, 0.5])), /returned 3 values per row/);
  assert.throws(() => applyPolicy(manifest, row([Number.NaN, 0.3])), /non-finite output/);
});

test("multiclass picks the most probable label; regression has no label", () => {
  const multi = parseManifest({ ...raw, task: "multiclass", output: { labels: ["a", "b", "c"] } }, "/m.yaml");
  assert.deepEqual(applyPolicy(multi, row([0.2, 0.5, 0.3])), {
    score: 0.5,
    probabilities: { a: 0.2, b: 0.5, c: 0.3 },
    decision: "b",
  });
  const regression = parseManifest({ ...raw, task: "regression", output: {} }, "/m.yaml");
  assert.deepEqual(applyPolicy(regression, row([12.5], "values")), { score: 12.5, decision: null });
});
