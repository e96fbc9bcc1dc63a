import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { encodeValue, type FeatureValue } from "../decision/input.js";
import { readXGBoostModel, type XGBoostTrees } from "../runtime/xgboost/model.js";
import { computeMargins } from "../runtime/xgboost/predict.js";
import { DEMO_XGB, holdoutInstances, loadManifest, REPO_ROOT } from "../testing/index.js";
import { weightedBackground } from "./background.js";
import { attributionOf, interventionalTreeShap, type TreeEnsemble } from "./interventional.js";
import { type Random, seededRandom } from "./random.js";
import { exactInterventionalShapley } from "./shapley.js";

/** What scripts/fixtures/make_explain_fixtures.py writes to fixtures/explain/interventional.json. */
interface Case {
  readonly name: string;
  readonly features: number;
  readonly rows: (number | null)[][];
  readonly background: (number | null)[][];
  readonly weights: number[];
  readonly base: number[];
  /** rows × groups × features, from XGBoost's own margins by brute-force enumeration. */
  readonly values: number[][][];
}

const FIXTURE = `${REPO_ROOT}fixtures/explain/interventional.json`;

function encode(rows: (number | null)[][]): Float32Array {
  return Float32Array.from(rows.flat(), (v) => (v === null ? Number.NaN : v));
}

/** The model's margins summed in float64, an evaluator written separately from the walk under test. */
function float64Margins(model: TreeEnsemble, input: Float32Array, rows: number): Float64Array {
  const { trees, numFeature: m, groups } = model;
  const out = new Float64Array(rows * groups).fill(model.baseMargin);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < trees.count; t++) {
      let node = trees.treeStart[t]!;
      while (trees.left[node] !== -1) {
        const x = input[r * m + trees.feature[node]!]!;
        const left = Number.isNaN(x) ? trees.defaultLeft[node] === 1 : x < trees.threshold[node]!;
        node = left ? trees.left[node]! : trees.right[node]!;
      }
      out[r * groups + trees.treeGroup[t]!]! += trees.leafValue[node]!;
    }
  }
  return out;
}

/** A scorer for one group's float64 margin. */
function groupScorer(model: TreeEnsemble, group: number) {
  return (input: Float32Array, rows: number) => {
    const all = float64Margins(model, input, rows);
    return Float64Array.from({ length: rows }, (_, r) => all[r * model.groups + group]!);
  };
}

/**
 * A random ensemble over `features` features: trees up to `depth` deep that reuse features along a path,
 * with thresholds drawn from a small grid (so rows hit them exactly) and random default directions.
 */
function randomEnsemble(
  random: Random,
  features: number,
  trees: number,
  depth: number,
  groups = 1,
): TreeEnsemble {
  const left: number[] = [];
  const right: number[] = [];
  const feature: number[] = [];
  const threshold: number[] = [];
  const defaultLeft: number[] = [];
  const leafValue: number[] = [];
  const treeStart: number[] = [];
  const grow = (level: number): number => {
    const node = left.length;
    left.push(-1);
    right.push(-1);
    feature.push(0);
    threshold.push(0);
    defaultLeft.push(0);
    leafValue.push(0);
    if (level === depth || (level > 0 && random.next() < 0.2)) {
      leafValue[node] = Math.fround(random.normal());
      return node;
    }
    feature[node] = random.int(features);
    threshold[node] = (random.int(9) - 4) / 2;
    defaultLeft[node] = random.int(2);
    left[node] = grow(level + 1);
    right[node] = grow(level + 1);
    return node;
  };
  for (let t = 0; t < trees; t++) {
    treeStart.push(left.length);
    grow(0);
  }
  treeStart.push(left.length);
  const nodes = left.length;
  const model: XGBoostTrees = {
    count: trees,
    treeStart: Int32Array.from(treeStart),
    treeGroup: Int32Array.from({ length: trees }, (_, t) => t % groups),
    left: Int32Array.from(left),
    right: Int32Array.from(right),
    feature: Int32Array.from(feature),
    threshold: Float32Array.from(threshold),
    defaultLeft: Uint8Array.from(defaultLeft),
    leafValue: Float32Array.from(leafValue),
    cover: new Float32Array(nodes),
    baseWeight: new Float32Array(nodes),
  };
  return { trees: model, numFeature: features, groups, baseMargin: 0.25 };
}

/** Rows on the thresholds' grid and between its points, with missing values. */
function randomRows(random: Random, rows: number, features: number): Float32Array {
  return Float32Array.from({ length: rows * features }, () => {
    const u = random.next();
    return u < 0.15 ? Number.NaN : u < 0.5 ? (random.int(9) - 4) / 2 : random.normal() * 2;
  });
}

async function assertMatchesEnumeration(
  model: TreeEnsemble,
  seed: number,
  rows: number,
  backgroundRows: number,
) {
  const random = seededRandom(seed);
  const m = model.numFeature;
  const input = randomRows(random, rows, m);
  const background = weightedBackground(
    randomRows(random, backgroundRows, m),
    backgroundRows,
    m,
    Array.from({ length: backgroundRows }, () => 0.1 + random.next()),
  );
  const result = interventionalTreeShap(model, input, rows, background);
  for (let row = 0; row < rows; row++) {
    const x = input.subarray(row * m, (row + 1) * m);
    for (let g = 0; g < model.groups; g++) {
      const exact = await exactInterventionalShapley(groupScorer(model, g), x, background);
      const got = attributionOf(result, row, g);
      assert.ok(Math.abs(got.base - exact.base) < 1e-9, `base ${got.base} vs ${exact.base}`);
      for (let j = 0; j < m; j++) {
        const diff = Math.abs(got.values[j]! - exact.values[j]!);
        assert.ok(
          diff < 1e-9,
          `seed ${seed} row ${row} group ${g} feature ${j}: ${got.values[j]} vs ${exact.values[j]}`,
        );
      }
    }
  }
}

test("random trees: equal to brute-force enumeration of the interventional game to 1e-9", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const random = seededRandom(1000 + seed);
    const features = 2 + random.int(5); // 2 to 6
    const model = randomEnsemble(random, features, 1 + random.int(6), 2 + random.int(5));
    await assertMatchesEnumeration(model, seed, 3, 5);
  }
});

test("random multiclass ensembles: each group equals its own enumeration", async () => {
  for (let seed = 1; seed <= 3; seed++) {
    const random = seededRandom(2000 + seed);
    const model = randomEnsemble(random, 5, 9, 4, 3);
    await assertMatchesEnumeration(model, 100 + seed, 2, 4);
  }
});

test("a single split: the feature gets the whole difference, split over the background", () => {
  // One stump on feature 1 (x < 0 → −1, else 2; missing goes right); feature 0 is never used.
  const stump: TreeEnsemble = {
    trees: {
      count: 1,
      treeStart: Int32Array.from([0, 3]),
      treeGroup: Int32Array.from([0]),
      left: Int32Array.from([1, -1, -1]),
      right: Int32Array.from([2, -1, -1]),
      feature: Int32Array.from([1, 0, 0]),
      threshold: Float32Array.from([0, 0, 0]),
      defaultLeft: Uint8Array.from([0, 0, 0]),
      leafValue: Float32Array.from([0, -1, 2]),
      cover: new Float32Array(3),
      baseWeight: new Float32Array(3),
    },
    numFeature: 2,
    groups: 1,
    baseMargin: 0,
  };
  // Background: one row left (weight 1/4), one right through a missing value (weight 3/4): mean 1.25.
  const background = weightedBackground(Float32Array.from([5, -3, 5, Number.NaN]), 2, 2, [1, 3]);
  const result = interventionalTreeShap(stump, Float32Array.from([9, -1]), 1, background);
  assert.deepEqual([...result.values], [0, -1 - 1.25]);
  assert.deepEqual([...result.base], [1.25]);
});

test("XGBoost fixtures and the credit demo: XGBoost's own brute-force values, and additivity", () => {
  const fixture = JSON.parse(readFileSync(FIXTURE, "utf8")) as { cases: Case[] };
  for (const c of fixture.cases) {
    const file =
      c.name === "credit-demo"
        ? `${REPO_ROOT}models/credit-demo/model.json`
        : `${REPO_ROOT}fixtures/xgboost/${c.name}/model.json`;
    const model = readXGBoostModel(file);
    const input = encode(c.rows);
    const background = weightedBackground(encode(c.background), c.background.length, c.features, c.weights);
    const result = interventionalTreeShap(model, input, c.rows.length, background);
    // XGBoost rounds each coalition's margin to float32 (relative 6e-8) before the enumeration combines
    // them, so the reference carries that much noise, scaled by the margins' size.
    const scale = Math.max(1, ...c.values.flat(2).map(Math.abs), ...c.base.map(Math.abs));
    const tolerance = 2e-6 * scale;
    for (let g = 0; g < model.groups; g++) {
      assert.ok(Math.abs(result.base[g]! - c.base[g]!) < tolerance, `${c.name} base ${g}`);
    }
    const margins = new Float64Array(c.rows.length * model.groups);
    computeMargins(model, input, c.rows.length, margins);
    c.values.forEach((groups, row) => {
      groups.forEach((expected, g) => {
        const got = attributionOf(result, row, g);
        expected.forEach((v, j) => {
          const diff = Math.abs(got.values[j]! - v);
          assert.ok(
            diff < tolerance,
            `${c.name} row ${row} group ${g} feature ${j}: ${got.values[j]} vs ${v}`,
          );
        });
        const total = got.values.reduce((s, v) => s + v, got.base);
        const margin = margins[row * model.groups + g]!;
        assert.ok(Math.abs(total - margin) < tolerance, `${c.name} row ${row}: ${total} vs margin ${margin}`);
      });
    });
  }
});

test("credit demo, 40 holdout rows against 60 others: base + Σ values = XGBoost margin", () => {
  const manifest = loadManifest(DEMO_XGB);
  const model = readXGBoostModel(manifest.artifact.absolutePath);
  const m = manifest.modelFeatures.length;
  const rows = holdoutInstances(manifest).map(({ features }) =>
    manifest.modelFeatures.map((f) => encodeValue(f, (features[f.name] ?? null) as FeatureValue)),
  );
  const input = Float32Array.from(rows.slice(0, 40).flat());
  const background = weightedBackground(Float32Array.from(rows.slice(100, 160).flat()), 60, m);
  const result = interventionalTreeShap(model, input, 40, background);
  const margins = new Float64Array(40);
  computeMargins(model, input, 40, margins);
  const backgroundMargins = new Float64Array(60);
  computeMargins(model, background.data, 60, backgroundMargins);
  const meanMargin = backgroundMargins.reduce((s, v) => s + v, 0) / 60;
  // float32 rounding of 150 leaf additions: a few 1e-7 at margins of order 1.
  assert.ok(Math.abs(result.base[0]! - meanMargin) < 1e-5, `base ${result.base[0]} vs ${meanMargin}`);
  for (let row = 0; row < 40; row++) {
    const { values, base } = attributionOf(result, row);
    const total = values.reduce((s, v) => s + v, base);
    assert.ok(Math.abs(total - margins[row]!) < 1e-5, `row ${row}: ${total} vs ${margins[row]}`);
  }
  assert.throws(
    () => interventionalTreeShap(model, input, 40, weightedBackground(input, 10, 10)),
    RangeError,
  );
  assert.throws(() => attributionOf(result, 40), RangeError);
});
