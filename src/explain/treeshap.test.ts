import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WardenError } from "../errors/index.js";
import { OBJECTIVES, readXGBoostModel, type XGBoostModel } from "../runtime/xgboost/model.js";
import { computeMargins } from "../runtime/xgboost/predict.js";
import { seededRandom } from "./random.js";
import { prepareTreeShap, SUBTREE_GROWTH } from "./treeshap.js";

// Compiled to dist/explain/treeshap.test.js: two levels below the repository root.
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FIXTURES = join(ROOT, "fixtures/shap");

/** What scripts/fixtures/make_shap_fixtures.py writes for each model. */
interface ShapFixture {
  readonly name: string;
  readonly model: string;
  readonly num_feature: number;
  readonly groups: number;
  readonly inputs: readonly (readonly (number | null)[])[];
  /** XGBoost's pred_contribs (rows × (M + 1), or rows × groups × (M + 1)). */
  readonly contribs: readonly unknown[];
  /** XGBoost's output_margin predictions (rows, or rows × groups). */
  readonly margins: readonly unknown[];
  /** Shapley values by enumeration of all coalitions, float64, same layout as contribs. */
  readonly exact: readonly unknown[];
}

const fixtureNames = readdirSync(FIXTURES)
  .filter((file) => file.endsWith(".json"))
  .map((file) => file.slice(0, -".json".length))
  .sort();

function readFixture(name: string): ShapFixture {
  return JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8")) as ShapFixture;
}

const flat = (values: readonly unknown[]): number[] => values.flat(2) as number[];

/** Largest absolute value of each consecutive block of `width` numbers. */
function blockScales(values: ArrayLike<number>, width: number): number[] {
  const scales: number[] = [];
  for (let at = 0; at < values.length; at += width) {
    let max = 0;
    for (let i = at; i < at + width; i++) max = Math.max(max, Math.abs(values[i]!));
    scales.push(max);
  }
  return scales;
}

describe("TreeSHAP on the reference models (fixtures/shap)", () => {
  test("the fixtures cover missing values, base_score, DART, regression, several classes and the demo", () => {
    for (const name of [
      "binary-logistic-missing",
      "binary-base-score",
      "binary-dart",
      "reg-squarederror",
      "multi-softprob",
      "credit-demo",
    ]) {
      assert.ok(fixtureNames.includes(name), `fixtures/shap/${name}.json`);
    }
  });

  for (const [name, algorithm] of fixtureNames.flatMap((n) =>
    (["subtrees", "tables", "path"] as const).map((a) => [n, a] as const),
  )) {
    test(`${name} (${algorithm})`, () => {
      const fixture = readFixture(name);
      const model = readXGBoostModel(join(ROOT, fixture.model));
      const shap = prepareTreeShap(model, { algorithm });
      assert.equal(shap.algorithm, algorithm);
      const rows = fixture.inputs.length;
      const width = fixture.num_feature + 1;
      assert.equal(shap.numFeature, fixture.num_feature);
      assert.equal(shap.groups, fixture.groups);
      const input = Float32Array.from(fixture.inputs.flat(), (v) => (v === null ? Number.NaN : v));
      const ours = shap.contributions(input, rows);
      const exact = flat(fixture.exact);
      const xgboost = flat(fixture.contribs);
      assert.equal(ours.length, rows * fixture.groups * width);
      assert.equal(exact.length, ours.length);
      assert.equal(xgboost.length, ours.length);

      // Against the enumeration in float64: only rounding separates the two.
      const exactScales = blockScales(exact, width);
      // Against XGBoost, which runs the same algorithm in float32: its rounding grows with the size of the
      // numbers it adds up, so the tolerance is 1e-5 of the row's largest value (or 1e-5 when that is < 1).
      const xgboostScales = blockScales(xgboost, width);
      for (let i = 0; i < ours.length; i++) {
        const block = Math.floor(i / width);
        const where = `row ${Math.floor(block / fixture.groups)} group ${block % fixture.groups} column ${i % width}`;
        const exactGap = Math.abs(ours[i]! - exact[i]!);
        assert.ok(
          exactGap <= 1e-9 * Math.max(1, exactScales[block]!),
          `${where}: ${ours[i]} vs exact ${exact[i]}`,
        );
        const xgboostGap = Math.abs(ours[i]! - xgboost[i]!);
        assert.ok(
          xgboostGap <= 1e-5 * Math.max(1, xgboostScales[block]!),
          `${where}: ${ours[i]} vs XGBoost ${xgboost[i]}`,
        );
      }

      // Efficiency: each row's contributions and bias add up to its margin, XGBoost's and the engine's.
      const xgboostMargins = flat(fixture.margins);
      const engineMargins = new Float64Array(rows * model.groups);
      computeMargins(model, input, rows, engineMargins);
      for (let block = 0; block < rows * fixture.groups; block++) {
        let sum = 0;
        for (let c = 0; c < width; c++) sum += ours[block * width + c]!;
        const tolerance = 1e-5 * Math.max(1, Math.abs(sum));
        assert.ok(Math.abs(sum - xgboostMargins[block]!) <= tolerance, `block ${block}: sum ${sum}`);
        assert.ok(Math.abs(sum - engineMargins[block]!) <= tolerance, `block ${block}: sum ${sum}`);
      }
    });
  }
});

/** A tree written out by hand: a leaf, or a split `x[feature] < threshold` with NaN going `missing`. */
type HandNode =
  | { readonly leaf: number; readonly cover: number }
  | {
      readonly feature: number;
      readonly threshold: number;
      readonly missing?: "left" | "right";
      readonly cover: number;
      readonly yes: HandNode;
      readonly no: HandNode;
    };

/** A regression model (reg:squarederror, identity link) of hand-written trees over `features` columns. */
function handModel(
  trees: readonly HandNode[],
  options: { features: number; groups?: number; treeGroups?: readonly number[]; baseMargin?: number },
): XGBoostModel {
  const nodes: HandNode[][] = trees.map((tree) => {
    const list: HandNode[] = [];
    const stack = [tree];
    while (stack.length > 0) {
      const node = stack.shift()!;
      list.push(node);
      if (!("leaf" in node)) stack.push(node.yes, node.no);
    }
    return list;
  });
  const total = nodes.reduce((sum, list) => sum + list.length, 0);
  const treeStart = new Int32Array(trees.length + 1);
  const left = new Int32Array(total);
  const right = new Int32Array(total);
  const feature = new Int32Array(total);
  const threshold = new Float32Array(total);
  const defaultLeft = new Uint8Array(total);
  const leafValue = new Float32Array(total);
  const cover = new Float32Array(total);
  let start = 0;
  nodes.forEach((list, t) => {
    treeStart[t] = start;
    list.forEach((node, i) => {
      const g = start + i;
      cover[g] = node.cover;
      if ("leaf" in node) {
        left[g] = -1;
        right[g] = -1;
        leafValue[g] = node.leaf;
        return;
      }
      left[g] = start + list.indexOf(node.yes);
      right[g] = start + list.indexOf(node.no);
      feature[g] = node.feature;
      threshold[g] = node.threshold;
      defaultLeft[g] = node.missing === "right" ? 0 : 1;
    });
    start += list.length;
  });
  treeStart[trees.length] = total;
  const groups = options.groups ?? 1;
  return {
    file: "hand-written",
    xgboostVersion: undefined,
    bestIteration: undefined,
    booster: "gbtree",
    objective: groups > 1 ? "multi:softprob" : "reg:squarederror",
    objectiveSpec: OBJECTIVES[groups > 1 ? "multi:softprob" : "reg:squarederror"]!,
    numFeature: options.features,
    numClass: groups > 1 ? groups : 0,
    groups,
    featureNames: undefined,
    baseScore: options.baseMargin ?? 0,
    baseMargin: options.baseMargin ?? 0,
    trees: {
      count: trees.length,
      treeStart,
      treeGroup: Int32Array.from(options.treeGroups ?? trees.map(() => 0)),
      left,
      right,
      feature,
      threshold,
      defaultLeft,
      leafValue,
      cover,
      baseWeight: new Float32Array(total),
    },
  };
}

/**
 * Path-dependent Shapley values by brute force, written independently of the module: the value of a set S
 * of known features is the cover-weighted expectation of each tree given x_S, and φ_i is the Shapley
 * average of v(S ∪ {i}) − v(S) over all S. Returns rows of (features + 1) per group, bias last.
 */
function bruteForce(trees: readonly HandNode[], treeGroups: readonly number[], groups: number, x: number[]) {
  const m = x.length;
  const expectation = (node: HandNode, known: number): number => {
    if ("leaf" in node) return Math.fround(node.leaf); // the model holds leaves as float32
    if ((known >> node.feature) & 1) {
      const v = x[node.feature]!;
      const yes = Number.isNaN(v) ? node.missing !== "right" : v < Math.fround(node.threshold);
      return expectation(yes ? node.yes : node.no, known);
    }
    return (
      (expectation(node.yes, known) * node.yes.cover + expectation(node.no, known) * node.no.cover) /
      node.cover
    );
  };
  const value = (group: number, known: number) =>
    trees.reduce((sum, tree, t) => sum + (treeGroups[t] === group ? expectation(tree, known) : 0), 0);
  const factorial = (k: number): number => (k <= 1 ? 1 : k * factorial(k - 1));
  const out: number[] = [];
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i < m; i++) {
      let phi = 0;
      for (let s = 0; s < 1 << m; s++) {
        if ((s >> i) & 1) continue;
        let size = 0;
        for (let b = 0; b < m; b++) size += (s >> b) & 1;
        const weight = (factorial(size) * factorial(m - size - 1)) / factorial(m);
        phi += weight * (value(g, s | (1 << i)) - value(g, s));
      }
      out.push(phi);
    }
    out.push(value(g, 0));
  }
  return out;
}

describe("TreeSHAP on trees written by hand", () => {
  test("the AND function of two features: SHAP's published values", () => {
    // y = 80 when both features are 1, else 0, over the four rows of {0,1}²: one row per leaf.
    const and: HandNode = {
      feature: 0,
      threshold: 0.5,
      cover: 4,
      yes: {
        feature: 1,
        threshold: 0.5,
        cover: 2,
        yes: { leaf: 0, cover: 1 },
        no: { leaf: 0, cover: 1 },
      },
      no: {
        feature: 1,
        threshold: 0.5,
        cover: 2,
        yes: { leaf: 0, cover: 1 },
        no: { leaf: 80, cover: 1 },
      },
    };
    const shap = prepareTreeShap(handModel([and], { features: 2 }));
    assert.deepEqual(shap.expectedMargins, [20]);
    const out = shap.contributions(Float32Array.of(0, 0, 0, 1, 1, 0, 1, 1), 4);
    assert.deepEqual(Array.from(out), [-10, -10, 20, -30, 10, 20, 10, -30, 20, 30, 30, 20]);
    const attribution = shap.explain(Float32Array.of(1, 1));
    assert.deepEqual(Array.from(attribution.values), [30, 30]);
    assert.equal(attribution.base, 20);
  });

  test("a feature the trees never split on gets exactly 0; missing values take the default branch; a lone leaf is bias", () => {
    const tree: HandNode = {
      feature: 1,
      threshold: 0,
      missing: "right",
      cover: 10,
      yes: { leaf: -1, cover: 4 },
      no: { leaf: 2, cover: 6 },
    };
    // A tree that is a single leaf (0.5) moves the bias only.
    const stump: HandNode = { leaf: 0.5, cover: 10 };
    const shap = prepareTreeShap(handModel([tree, stump], { features: 3, baseMargin: 0.25 }));
    // E = 0.25 + (−1·4 + 2·6)/10 + 0.5 = 1.55; x1 missing goes right (2): φ1 = 2 − 0.8 = 1.2.
    const [phi0, phi1, phi2, bias] = shap.contributions(Float32Array.of(5, Number.NaN, 7), 1);
    assert.equal(phi0, 0);
    assert.ok(Math.abs(phi1! - 1.2) < 1e-12, `${phi1}`);
    assert.equal(phi2, 0);
    assert.ok(Math.abs(bias! - 1.55) < 1e-12, `${bias}`);
  });

  test("random trees (depth ≤ 3, ≤ 4 features, repeated features, missing values): brute force to 1e-9", () => {
    const random = seededRandom(20180612);
    const randomTree = (depth: number, features: number): HandNode => {
      if (depth === 3 || (depth > 0 && random.next() < 0.25)) {
        // Now and then an empty leaf: a branch no training row took.
        return {
          leaf: Math.round(random.normal() * 100) / 10,
          cover: random.next() < 0.1 ? 0 : 1 + random.int(20),
        };
      }
      const yes = randomTree(depth + 1, features);
      const no = randomTree(depth + 1, features);
      // A split needs cover: give an empty pair a row.
      const cover = yes.cover + no.cover;
      const fixed = cover > 0 ? { yes, no } : { yes: { ...yes, cover: 1 }, no };
      return {
        feature: random.int(features),
        threshold: Math.round(random.normal() * 4) / 4,
        missing: random.next() < 0.5 ? "left" : "right",
        cover: fixed.yes.cover + fixed.no.cover,
        ...fixed,
      };
    };
    let checked = 0;
    for (let seed = 0; seed < 40; seed++) {
      const features = 1 + random.int(4);
      const groups = seed % 4 === 3 ? 2 : 1;
      const trees = Array.from({ length: 1 + random.int(4) }, () => randomTree(0, features));
      const treeGroups = trees.map((_, t) => t % groups);
      const model = handModel(trees, { features, groups, treeGroups });
      const subtrees = prepareTreeShap(model);
      const tables = prepareTreeShap(model, { algorithm: "tables" });
      const path = prepareTreeShap(model, { algorithm: "path" });
      assert.equal(subtrees.algorithm, "subtrees");
      assert.equal(tables.algorithm, "tables");
      for (let row = 0; row < 8; row++) {
        // Values on the quarter grid land on thresholds too, and a fifth are missing.
        const x = Array.from({ length: features }, () =>
          random.next() < 0.2 ? Number.NaN : Math.round(random.normal() * 4) / 4,
        );
        const expected = bruteForce(trees, treeGroups, groups, x);
        for (const shap of [subtrees, tables, path]) {
          const ours = shap.contributions(Float32Array.from(x), 1);
          assert.equal(ours.length, expected.length);
          for (let i = 0; i < expected.length; i++) {
            assert.ok(
              Math.abs(ours[i]! - expected[i]!) <= 1e-9 * Math.max(1, Math.abs(expected[i]!)),
              `model ${seed} row ${row} [${i}] (${shap.algorithm}): ${ours[i]} vs ${expected[i]}`,
            );
            checked++;
          }
        }
      }
    }
    assert.ok(checked > 1000, `${checked} values checked`);
  });
});

/**
 * Assert two contribution arrays agree to 1e-9 of each row's largest value (`rowWidth` numbers a row: every
 * group's contributions and bias).
 */
function assertSameValues(ours: Float64Array, reference: Float64Array, rowWidth: number, what: string): void {
  assert.equal(ours.length, reference.length, what);
  for (let at = 0; at < reference.length; at += rowWidth) {
    let scale = 0;
    for (let i = at; i < at + rowWidth; i++) scale = Math.max(scale, Math.abs(reference[i]!));
    for (let i = at; i < at + rowWidth; i++) {
      assert.ok(
        Math.abs(ours[i]! - reference[i]!) <= 1e-9 * scale,
        `${what}, row ${at / rowWidth} [${i - at}]: ${ours[i]} vs ${reference[i]}`,
      );
    }
  }
}

describe("TreeSHAP's three algorithms give the same values", () => {
  test("on the reference models (fixtures/shap)", () => {
    for (const name of fixtureNames) {
      const fixture = readFixture(name);
      const model = readXGBoostModel(join(ROOT, fixture.model));
      const input = Float32Array.from(fixture.inputs.flat(), (v) => (v === null ? Number.NaN : v));
      const rows = fixture.inputs.length;
      const subtrees = prepareTreeShap(model);
      assert.equal(subtrees.algorithm, "subtrees", name);
      const ours = subtrees.contributions(input, rows);
      const rowWidth = model.groups * (model.numFeature + 1);
      for (const algorithm of ["tables", "path"] as const) {
        const reference = prepareTreeShap(model, { algorithm });
        assert.equal(reference.algorithm, algorithm);
        assertSameValues(ours, reference.contributions(input, rows), rowWidth, `${name} vs ${algorithm}`);
      }
    }
  });

  test("on random ensembles (unbalanced, repeated features, empty leaves, missing and infinite values, classes, smaller budgets)", () => {
    const random = seededRandom(20211103);
    const grid = () => Math.round(random.normal() * 4) / 4;
    const randomTree = (depth: number, maxDepth: number, features: number): HandNode => {
      const stop = depth === maxDepth ? 1 : depth === 0 ? 0.05 : 0.3;
      if (random.next() < stop) {
        return {
          leaf: Math.round(random.normal() * 100) / 10,
          cover: random.next() < 0.1 ? 0 : 1 + random.int(20),
        };
      }
      const yes = randomTree(depth + 1, maxDepth, features);
      const no = randomTree(depth + 1, maxDepth, features);
      const fixed = yes.cover + no.cover > 0 ? { yes, no } : { yes: { ...yes, cover: 1 }, no };
      const edge = random.next();
      return {
        feature: random.int(features),
        // Now and then an infinite threshold: every finite value goes left (∞) or right (−∞).
        threshold: edge < 0.03 ? Number.POSITIVE_INFINITY : edge < 0.06 ? Number.NEGATIVE_INFINITY : grid(),
        missing: random.next() < 0.5 ? "left" : "right",
        cover: fixed.yes.cover + fixed.no.cover,
        ...fixed,
      };
    };
    let compared = 0;
    let cheaperCuts = 0;
    for (let seed = 0; seed < 40; seed++) {
      const features = 2 + random.int(7);
      const groups = 1 + random.int(3);
      const maxDepth = 2 + random.int(6);
      const trees = Array.from({ length: 1 + random.int(6) }, () => randomTree(0, maxDepth, features));
      const treeGroups = trees.map(() => random.int(groups));
      const model = handModel(trees, { features, groups, treeGroups, baseMargin: grid() });
      const rows = 16;
      const input = Float32Array.from({ length: rows * features }, () => {
        const kind = random.next();
        return kind < 0.2
          ? Number.NaN
          : kind < 0.23
            ? Number.POSITIVE_INFINITY
            : kind < 0.26
              ? -Infinity
              : grid();
      });
      const rowWidth = groups * (features + 1);
      const tables = prepareTreeShap(model, { algorithm: "tables" }).contributions(input, rows);
      const path = prepareTreeShap(model, { algorithm: "path" }).contributions(input, rows);
      assertSameValues(tables, path, rowWidth, `model ${seed}: tables vs path`);
      const subtrees = prepareTreeShap(model);
      assert.equal(subtrees.algorithm, "subtrees");
      for (const reference of [tables, path]) {
        assertSameValues(subtrees.contributions(input, rows), reference, rowWidth, `model ${seed}`);
        compared++;
      }
      // Tighter budgets force cheaper cuts, down to the per-leaf tables' fallback.
      for (const fraction of [0.5, 0.1]) {
        const budget = Math.floor(subtrees.tableEntries * fraction);
        const shap = prepareTreeShap(model, { maxTableEntries: budget });
        assert.ok(
          shap.tableEntries <= budget,
          `model ${seed}: ${shap.tableEntries} entries, budget ${budget}`,
        );
        if (shap.algorithm === "subtrees") cheaperCuts++;
        assertSameValues(shap.contributions(input, rows), path, rowWidth, `model ${seed}, budget ${budget}`);
      }
    }
    assert.ok(compared === 80 && cheaperCuts >= 10, `${cheaperCuts} cheaper cuts`);
  });

  test("with a budget too small for subtree tables, the per-leaf tables answer; too small for those, the path algorithm", () => {
    // Four splits on one feature down one side. The per-leaf tables take 5 leaves × 2 entries; a subtree's
    // table takes 2^(its directions) entries, and the deepest leaves depend on 4 directions: 16 at least.
    const leaf = (value: number): HandNode => ({ leaf: value, cover: 2 });
    const chain = [1, 0.5, 0, -0.5].reduceRight<HandNode>(
      (yes, threshold, i) => ({ feature: 0, threshold, cover: yes.cover + 2, yes, no: leaf(i + 1) }),
      leaf(-3),
    );
    const model = handModel([chain, { feature: 1, threshold: 0, cover: 4, yes: leaf(1), no: leaf(-1) }], {
      features: 2,
    });
    const input = Float32Array.of(-1, 0, 0.25, 1, 0.75, Number.NaN, 2, -1, Number.NaN, 3);
    const expected = prepareTreeShap(model, { algorithm: "path" }).contributions(input, 5);
    // Beside it a stump: 2 per-leaf tables of 2 entries, or one subtree table of 2. So 18 entries for subtree
    // tables, 14 for per-leaf ones.
    for (const [budget, algorithm] of [
      [18, "subtrees"],
      [17, "tables"],
      [14, "tables"],
      [13, "path"],
    ] as const) {
      const shap = prepareTreeShap(model, { maxTableEntries: budget });
      assert.equal(shap.algorithm, algorithm, `budget ${budget}`);
      assert.ok(shap.tableEntries <= budget, `budget ${budget}: ${shap.tableEntries} entries`);
      assertSameValues(shap.contributions(input, 5), expected, 3, `budget ${budget}`);
    }
    assert.equal(prepareTreeShap(model, { algorithm: "tables" }).algorithm, "tables");
    assert.equal(prepareTreeShap(model, { algorithm: "tables", maxTableEntries: 13 }).algorithm, "path");
    assert.equal(prepareTreeShap(model, { algorithm: "path" }).tableEntries, 0);
  });

  test("a leaf too deep for a subtree table (more than 22 directions) leaves the model to the per-leaf tables", () => {
    // 23 splits on one feature down one side: each per-leaf table has 2 entries, but the deepest leaves
    // depend on 23 directions.
    const model = chainModel(23);
    const shap = prepareTreeShap(model);
    assert.equal(shap.algorithm, "tables");
    assert.equal(shap.tableEntries, 48);
    const input = Float32Array.of(0.5, 7, 22.5, 30, Number.NaN);
    const expected = prepareTreeShap(model, { algorithm: "path" }).contributions(input, 5);
    assertSameValues(shap.contributions(input, 5), expected, 2, "deep chain");
  });

  test("subtree tables give way to the per-leaf ones past SUBTREE_GROWTH times their entries (deep, narrow trees)", () => {
    // 12 splits on one feature down one side: 13 leaves of 2 per-leaf entries each (26), while the deepest
    // leaves depend on 12 directions, so any subtree table over them takes 4,096 entries or more (> 16 × 26).
    const model = chainModel(12);
    const shap = prepareTreeShap(model);
    assert.equal(shap.algorithm, "tables");
    assert.ok(shap.tableEntries <= SUBTREE_GROWTH * 26, `${shap.tableEntries} entries`);
    const input = Float32Array.of(0.5, 7, 11.5, 30, Number.NaN);
    const expected = prepareTreeShap(model, { algorithm: "path" }).contributions(input, 5);
    assertSameValues(shap.contributions(input, 5), expected, 2, "deep narrow chain");
  });

  test("a table budget that is not a whole number from 0 to 2^31 − 1 is refused", () => {
    const model = handModel(
      [{ feature: 0, threshold: 0, cover: 2, yes: { leaf: 1, cover: 1 }, no: { leaf: -1, cover: 1 } }],
      {
        features: 1,
      },
    );
    for (const bad of [Number.NaN, -1, 1.5, 2 ** 31, Number.POSITIVE_INFINITY]) {
      assert.throws(() => prepareTreeShap(model, { maxTableEntries: bad }), RangeError, String(bad));
    }
    assert.equal(prepareTreeShap(model, { maxTableEntries: 0 }).algorithm, "path");
  });
});

/** One tree of `splits` splits on feature 0 down its yes side (thresholds splits … 1), a leaf off each split. */
function chainModel(splits: number): XGBoostModel {
  const chain = Array.from({ length: splits }, (_, i) => splits - i).reduce<HandNode>(
    (yes, threshold) => ({
      feature: 0,
      threshold,
      cover: yes.cover + 1,
      yes,
      no: { leaf: threshold / 10, cover: 1 },
    }),
    { leaf: -1, cover: 1 },
  );
  return handModel([chain], { features: 1 });
}

describe("TreeSHAP's interface", () => {
  const model = readXGBoostModel(join(ROOT, "fixtures/xgboost/multi-softprob/model.json"));
  const shap = prepareTreeShap(model);

  test("explain gives one group's values and bias, the same as the batch call", () => {
    const fixture = readFixture("multi-softprob");
    const row = Float32Array.from(fixture.inputs[7]!, (v) => (v === null ? Number.NaN : v));
    const all = shap.contributions(row, 1);
    const width = model.numFeature + 1;
    for (let group = 0; group < model.groups; group++) {
      const attribution = shap.explain(row, group);
      assert.deepEqual(
        Array.from(attribution.values),
        Array.from(all.subarray(group * width, group * width + width - 1)),
      );
      assert.equal(attribution.base, all[group * width + width - 1]);
      assert.equal(attribution.base, shap.expectedMargins[group]);
    }
  });

  test("a caller's output buffer is overwritten, not added to", () => {
    const fixture = readFixture("multi-softprob");
    const input = Float32Array.from(fixture.inputs.slice(0, 3).flat(), (v) => (v === null ? Number.NaN : v));
    const fresh = shap.contributions(input, 3);
    const out = new Float64Array(fresh.length).fill(123);
    assert.equal(shap.contributions(input, 3, out), out);
    assert.deepEqual(out, fresh);
  });

  test("wrong lengths and groups are refused", () => {
    const internal = (error: unknown) => error instanceof WardenError && error.code === "WARDEN_ERR_INTERNAL";
    assert.throws(() => shap.contributions(new Float32Array(model.numFeature + 1), 1), internal);
    assert.throws(
      () => shap.contributions(new Float32Array(model.numFeature), 1, new Float64Array(3)),
      internal,
    );
    assert.throws(() => shap.explain(new Float32Array(model.numFeature), model.groups), internal);
    assert.throws(() => shap.explain(new Float32Array(model.numFeature), -1), internal);
  });

  test("a split node without cover is refused when preparing", () => {
    const tree: HandNode = {
      feature: 0,
      threshold: 1,
      cover: 0,
      yes: { leaf: 1, cover: 0 },
      no: { leaf: 2, cover: 0 },
    };
    assert.throws(
      () => prepareTreeShap(handModel([tree], { features: 1 })),
      (error: unknown) => error instanceof WardenError && error.code === "WARDEN_ERR_ARTIFACT_INVALID",
    );
  });
});
