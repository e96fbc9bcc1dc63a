import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { parse } from "yaml";
import { WardenError } from "../errors/index.js";
import { DEMO_ONNX, DEMO_XGB, HOLDOUT_CSV } from "../testing/index.js";
import { DEFAULT_COUNTERFACTUAL_EVALUATIONS, loadManifest, parseManifest } from "./index.js";

const demo = parse(readFileSync(DEMO_XGB, "utf8")) as Record<string, unknown>;
const FILE = "/models/m/manifest.yaml";

type Raw = Record<string, unknown>;
const build = (changes: Raw) => ({ ...demo, ...changes });
const manifest = (changes: Raw) => parseManifest(build(changes), FILE);

/** The problems a refused manifest reports, as "path expected" lines. */
function refused(changes: Raw): { fields: string[]; error: WardenError } {
  try {
    manifest(changes);
  } catch (error) {
    assert.ok(error instanceof WardenError, String(error));
    assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
    return { fields: error.details.map((d) => d.field.replace(`${FILE}#`, "")), error };
  }
  assert.fail("expected the manifest to be refused");
}

/** The demo's features with `changes` merged into the named one. */
function featuresWith(name: string, changes: Raw): Raw[] {
  return (demo.features as Raw[]).map((f) => (f.name === name ? { ...f, ...changes } : f));
}

test("defaults: high risk explains always with TreeSHAP and 4 reasons; no reference, no counterfactuals", () => {
  const m = manifest({ policy: {} });
  assert.deepEqual(m.explanations, {
    when: "always",
    method: "treeshap",
    maxReasons: 4,
    referencePath: undefined,
    counterfactuals: { enabled: false, max: 3, maxEvaluations: DEFAULT_COUNTERFACTUAL_EVALUATIONS },
    kernelshap: { background: 20, samples: undefined },
  });
  assert.ok(Object.isFrozen(m.explanations) && Object.isFrozen(m.explanations.counterfactuals));
  assert.ok(Object.isFrozen(m.explanations.kernelshap));
  assert.equal(manifest({ risk_tier: "limited", policy: {} }).explanations.when, "on_request");
  assert.equal(manifest({ risk_tier: "minimal", policy: {} }).explanations.when, "on_request");
  const onnx = manifest({
    policy: {},
    artifact: { ...(demo.artifact as Raw), format: "onnx" },
  });
  assert.equal(onnx.explanations.method, "kernelshap");
});

test("a reference turns counterfactuals on and resolves against the manifest's folder", () => {
  const m = manifest({ policy: { explanations: { reference: "data/ref.csv" } } });
  assert.equal(m.explanations.referencePath, "/models/m/data/ref.csv");
  assert.equal(m.explanations.counterfactuals.enabled, true);
  const never = manifest({ policy: { explanations: { reference: "r.csv", when: "never" } } });
  assert.equal(never.explanations.counterfactuals.enabled, false);
  const set = manifest({
    policy: {
      explanations: {
        when: "on_request",
        method: "kernelshap",
        max_reasons: 2,
        reference: "../shared/r.csv",
        counterfactuals: { enabled: false, max: 5, max_evaluations: 500 },
        kernelshap: { background: 8, samples: 100 },
      },
    },
  });
  assert.deepEqual(set.explanations, {
    when: "on_request",
    method: "kernelshap",
    maxReasons: 2,
    referencePath: "/models/shared/r.csv",
    counterfactuals: { enabled: false, max: 5, maxEvaluations: 500 },
    kernelshap: { background: 8, samples: 100 },
  });
  assert.deepEqual(m.explanations.kernelshap, { background: 20, samples: undefined });
});

test("favorable_label defaults to the label that is not scored, and may name either class", () => {
  const m = manifest({ policy: {} });
  assert.equal(m.output.favorable_label, "good");
  assert.equal(m.output.favorableIndex, 0);
  // A model that scores approval: the scored label is the favourable one.
  const approval = manifest({
    output: { labels: ["declined", "approved"], positive_label: "approved", favorable_label: "approved" },
  });
  assert.equal(approval.output.favorableIndex, 1);
  assert.equal(approval.output.positiveIndex, 1);
  const unset = manifest({ output: { labels: ["bad", "good"], positive_label: "bad" } });
  assert.equal(unset.output.favorable_label, "good");
  assert.equal(unset.output.favorableIndex, 1);
  const multi = manifest({ task: "multiclass", output: { labels: ["a", "b", "c"] }, policy: {} });
  assert.equal(multi.output.favorable_label, undefined);
  assert.equal(multi.output.favorableIndex, -1);
});

test("bad explanation policies are refused field by field, with what was expected and a fix", () => {
  const { fields, error } = refused({
    policy: {
      explanations: {
        when: "sometimes",
        max_reasons: 11,
        colour: "red",
        counterfactuals: { max: 0, max_evaluations: 10, extra: 1 },
        kernelshap: { background: 0, samples: 1.5 },
      },
    },
  });
  assert.deepEqual(fields.sort(), [
    "/policy/explanations/colour",
    "/policy/explanations/counterfactuals/extra",
    "/policy/explanations/counterfactuals/max",
    "/policy/explanations/counterfactuals/max_evaluations",
    "/policy/explanations/kernelshap/background",
    "/policy/explanations/kernelshap/samples",
    "/policy/explanations/max_reasons",
    "/policy/explanations/when",
  ]);
  const when = error.details.find((d) => d.field.endsWith("/when"))!;
  assert.equal(when.expected, "one of always, on_request, never");
  assert.equal(when.found, '"sometimes" (string)');
  const max = error.details.find((d) => d.field.endsWith("/max_reasons"))!;
  assert.equal(max.expected, "a whole number from 1 to 10");
  assert.equal(max.found, "11 (number)");
  assert.match(error.details.find((d) => d.field.endsWith("/colour"))!.fix!, /remove it/);
  const notMapping = refused({ policy: { explanations: "yes" } });
  assert.deepEqual(notMapping.fields, ["/policy/explanations"]);
  assert.match(notMapping.error.details[0]!.expected, /a mapping of when, method/);
});

test("contradictions: TreeSHAP on ONNX, counterfactuals with never, without a reference, or for regression", () => {
  const onnx = refused({
    artifact: { ...(demo.artifact as Raw), format: "onnx" },
    policy: { explanations: { method: "treeshap" } },
  });
  assert.deepEqual(onnx.fields, ["/policy/explanations/method"]);
  assert.match(onnx.error.details[0]!.expected, /kernelshap for an onnx artifact/);
  assert.match(onnx.error.details[0]!.fix!, /method: kernelshap/);
  const never = refused({
    policy: { explanations: { when: "never", reference: "r.csv", counterfactuals: { enabled: true } } },
  });
  assert.deepEqual(never.fields, ["/policy/explanations/counterfactuals/enabled"]);
  assert.match(never.error.details[0]!.expected, /false while when is never/);
  const noReference = refused({ policy: { explanations: { counterfactuals: { enabled: true } } } });
  assert.match(noReference.error.details[0]!.fix!, /add reference/);
  const regression = refused({
    task: "regression",
    output: {},
    policy: { explanations: { reference: "r.csv", counterfactuals: { enabled: true } } },
  });
  assert.match(regression.error.details[0]!.expected, /false for a regression task/);
  // Off by default for regression, rather than refused.
  const quiet = manifest({
    task: "regression",
    output: {},
    policy: { explanations: { reference: "r.csv" } },
  });
  assert.equal(quiet.explanations.counterfactuals.enabled, false);
});

test("favorable_label must be one of the labels, and only for a binary task", () => {
  const unknown = refused({
    output: { labels: ["good", "bad"], positive_label: "bad", favorable_label: "fine" },
  });
  assert.deepEqual(unknown.fields, ["/output/favorable_label"]);
  assert.match(unknown.error.details[0]!.expected, /one of the labels \(good, bad\)/);
  const multi = refused({
    task: "multiclass",
    output: { labels: ["a", "b", "c"], favorable_label: "a" },
  });
  assert.deepEqual(multi.fields, ["/output/favorable_label"]);
});

test("feature fields: reason texts, groups, monotone and immutable are checked against the feature", () => {
  const m = manifest({});
  const debt = m.features.find((f) => f.name === "Debt")!;
  assert.deepEqual(debt.reason, {
    high: "Outstanding debt too high",
    low: "Outstanding debt low",
    missing: "Outstanding debt not provided",
  });
  assert.ok(Object.isFrozen(debt.reason));
  assert.equal(m.features.find((f) => f.name === "Price")!.group, "Loan size");
  assert.equal(m.features.find((f) => f.name === "Records")!.immutable, true);
  assert.equal(m.features.find((f) => f.name === "Time")!.immutable, false);
  assert.equal(m.features.find((f) => f.name === "Income")!.monotone, "increase_only");

  const cases: [string, Raw, string, RegExp][] = [
    ["Home", { reason: { high: "x" } }, "/features/1/reason", /single text .* for a category/],
    ["Time", { reason: { missing: "x" } }, "/features/2/reason/missing", /not nullable/],
    ["Job", { monotone: "increase_only" }, "/features/6/monotone", /category/],
    ["Records", { monotone: "decrease_only" }, "/features/5/monotone", /immutable/],
    ["Price", { group: "Amount" }, "/features/12/group", /not another feature's name/],
    ["Age", { reason: "Age" }, "/features/3/reason", /sensitive attribute/],
    ["Marital", { group: "family" }, "/features/4/group", /sensitive attribute/],
    ["Time", { reason: 3 }, "/features/2/reason", /a text, or a mapping of high, low and missing/],
    ["Time", { reason: {} }, "/features/2/reason", /a text, or a mapping/],
    ["Time", { monotone: "up" }, "/features/2/monotone", /one of increase_only, decrease_only/],
    ["Time", { immutable: "yes" }, "/features/2/immutable", /boolean/],
  ];
  for (const [name, changes, field, expected] of cases) {
    const { fields, error } = refused({ features: featuresWith(name, changes) });
    assert.deepEqual(fields, [field], `${name} ${JSON.stringify(changes)}`);
    assert.match(error.details[0]!.expected, expected);
  }
  // A feature's group may carry the feature's own name; an immutable sensitive attribute is harmless.
  const ownName = featuresWith("Amount", { group: "Amount" }).map((f) => {
    if (f.name !== "Price") return f;
    const { group: _, ...rest } = f;
    return rest;
  });
  assert.equal(manifest({ features: ownName }).features[11]!.group, "Amount");
  manifest({ features: featuresWith("Age", { immutable: true }) });
});

const dir = mkdtempSync(join(tmpdir(), "warden-explanations-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("loading checks that the reference file can be read; the demo manifests name theirs", () => {
  const xgb = loadManifest(DEMO_XGB);
  assert.equal(xgb.explanations.referencePath, HOLDOUT_CSV);
  assert.equal(xgb.explanations.counterfactuals.enabled, true);
  assert.equal(xgb.explanations.method, "treeshap");
  const onnx = loadManifest(DEMO_ONNX);
  assert.equal(onnx.explanations.referencePath, HOLDOUT_CSV);
  assert.equal(onnx.explanations.method, "kernelshap");

  const text = readFileSync(DEMO_XGB, "utf8")
    .replace("reference: holdout.csv", "reference: missing.csv")
    .replace("path: model.json", `path: ${join(dirname(DEMO_XGB), "model.json")}`);
  const file = join(dir, "manifest.yaml");
  writeFileSync(file, text);
  assert.throws(
    () => loadManifest(file),
    (error: WardenError) => {
      assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
      assert.equal(error.details[0]!.field, `${file}#/policy/explanations/reference`);
      assert.match(error.details[0]!.found, /"missing.csv" \(string\): ENOENT/);
      assert.match(error.message, /\/policy\/explanations\/reference/);
      return true;
    },
  );
  // Without the artifact check (export tools) the reference is not needed either.
  assert.equal(
    loadManifest(file, { checkArtifact: false }).explanations.referencePath,
    join(dir, "missing.csv"),
  );
});
