import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { WardenError } from "../errors/index.js";
import { DEMO_XGB } from "../testing/index.js";
import { bucketLabels, parseManifest } from "./index.js";

const demo = parse(readFileSync(DEMO_XGB, "utf8")) as Record<string, unknown>;
const FILE = "/models/m/manifest.yaml";
const manifest = (fairness: unknown) =>
  parseManifest({ ...demo, policy: fairness === undefined ? {} : { fairness } }, FILE);

function problem(fairness: unknown, path: string) {
  try {
    manifest(fairness);
  } catch (error) {
    assert.ok(error instanceof WardenError);
    assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
    const found = error.details.find((d) => d.field === `${FILE}#/policy/fairness${path}`);
    assert.ok(found, JSON.stringify(error.details));
    assert.match(error.message, new RegExp(`/policy/fairness${path.replace(/[[\]]/g, "\\$&")}`));
    return found;
  }
  assert.fail("expected the manifest to be refused");
}

test("the demo manifest's policy: Age in four buckets, Marital by category, its thresholds and label column", () => {
  const f = parseManifest(demo, FILE).fairness;
  assert.equal(f.configured, true);
  assert.deepEqual(
    f.attributes.map((a) => [a.name, a.levels]),
    [
      ["Age", ["<25", "25-35", "35-50", ">=50"]],
      ["Marital", ["single", "married", "widow", "separated", "divorced"]],
    ],
  );
  assert.equal(f.labelColumn, "Status");
  assert.deepEqual(f.thresholds, {
    selectionRateRatio: 0.8,
    equalOpportunityDifference: 0.1,
    equalizedOddsDifference: 0.1,
  });
  assert.deepEqual(f.bootstrap, { resamples: 200, seed: 0 });
});

test("without policy.fairness: categorical attributes with defaults, numeric ones listed as unbucketed", () => {
  const f = manifest(undefined).fairness;
  assert.equal(f.configured, false);
  assert.deepEqual(
    f.attributes.map((a) => a.name),
    ["Marital"],
  );
  assert.deepEqual(f.unbucketed, ["Age"]);
  assert.equal(f.reference, "largest");
  assert.equal(f.minGroupSize, 30);
  assert.equal(f.labelColumn, "label");
  assert.deepEqual(f.live, { window: 1000, hours: 24, outcomeMemory: 100_000 });
  assert.deepEqual(bucketLabels([0.5]), ["<0.5", ">=0.5"]);
});

test("a numeric attribute without buckets is refused, with the fix", () => {
  const byDefault = problem({ min_group_size: 20 }, "/attributes");
  assert.match(byDefault.expected, /buckets for the numeric sensitive attribute Age/);
  assert.match(byDefault.fix ?? "", /Age: \{ buckets/);
  const named = problem({ attributes: { Age: {} } }, "/attributes/Age/buckets");
  assert.equal(named.found, "missing");
});

test("bucket edges must increase; categories take no buckets; references must be groups", () => {
  const edges = problem({ attributes: { Age: { buckets: [25, 25, 50] } } }, "/attributes/Age/buckets/1");
  assert.match(edges.expected, /above 25/);
  assert.equal(edges.found, "25 (number)");
  const cat = problem(
    { attributes: { Age: { buckets: [30] }, Marital: { buckets: [1] } } },
    "/attributes/Marital/buckets",
  );
  assert.match(cat.expected, /no buckets for the category attribute/);
  const ref = problem(
    { attributes: { Age: { buckets: [30], reference: "30-40" } } },
    "/attributes/Age/reference",
  );
  assert.match(ref.expected, /<30, >=30, \(missing\)/);
  const model = problem({ attributes: { Income: {} } }, "/attributes/Income");
  assert.match(model.fix ?? "", /model input/);
  const unknown = problem({ attributes: { Colour: {} } }, "/attributes/Colour");
  assert.match(unknown.expected, /Age, Marital/);
});

test("thresholds, alpha, bootstrap, live window and unknown fields are checked by the schema", () => {
  assert.match(
    problem({ thresholds: { selection_rate_ratio: 1.5 } }, "/thresholds/selection_rate_ratio").expected,
    /at most 1/,
  );
  assert.match(problem({ alpha: 0 }, "/alpha").expected, /above 0/);
  assert.match(problem({ bootstrap: { resamples: -1 } }, "/bootstrap/resamples").expected, /0 to 100000/);
  assert.match(problem({ live: { window: 15 } }, "/live/window").expected, /multiple of 10/);
  assert.match(problem({ reference: "smallest" }, "/reference").expected, /largest, best/);
  assert.equal(problem({ colour: 1 }, "/colour").expected, "no such field");
});
