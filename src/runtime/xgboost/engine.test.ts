import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadManifest, type Manifest, parseManifest, sha256File, type Task } from "../../config/index.js";
import { WardenError } from "../../errors/index.js";
import { createXGBoostEngine, XGBoostEngine } from "./index.js";

// Compiled to dist/runtime/xgboost/engine.test.js: three levels below the repository root.
const FIXTURES = fileURLToPath(new URL("../../../fixtures/xgboost/", import.meta.url));
const DEMO_MANIFEST = fileURLToPath(new URL("../../../models/credit-demo/manifest.yaml", import.meta.url));
const TOLERANCE = 1e-6;

/** What scripts/fixtures/make_xgboost_fixtures.py records for each model (nested as XGBoost shapes it). */
interface Reference {
  readonly objective: string;
  readonly num_feature: number;
  readonly num_class: number;
  readonly inputs: readonly (readonly (number | null)[])[];
  readonly predictions: readonly unknown[];
  readonly margins: readonly unknown[];
}

const scratch = mkdtempSync(join(tmpdir(), "warden-xgboost-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function readReference(file: string): Reference {
  return JSON.parse(readFileSync(file, "utf8")) as Reference;
}

/** Row-major float32 input, null → NaN (missing), exactly as Warden encodes requests. */
function encode(rows: Reference["inputs"]): Float32Array {
  return Float32Array.from(rows.flat(), (v) => (v === null ? Number.NaN : v));
}

function flat(values: readonly unknown[]): number[] {
  return (values as unknown[]).flat(2) as number[];
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  tolerance = TOLERANCE,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i]! - expected[i]!);
    assert.ok(diff <= tolerance, `${what}[${i}]: ${actual[i]} vs XGBoost ${expected[i]} (diff ${diff})`);
  }
}

function taskOf(objective: string): Task {
  if (objective.startsWith("binary:")) return "binary";
  return objective.startsWith("multi:") ? "multiclass" : "regression";
}

/** A valid manifest for `artifact` (a path next to `manifestPath`), with `features` numeric features. */
function manifestFor(
  manifestPath: string,
  artifact: string,
  options: { task: Task; features: number; classes?: number; featureName?: (i: number) => string },
): Manifest {
  const artifactPath = join(manifestPath, "..", artifact);
  const name = options.featureName ?? ((i: number) => `f${i}`);
  return parseManifest(
    {
      name: "fixture",
      version: "1",
      owner: "tests",
      intended_use: "engine tests",
      risk_tier: "minimal",
      task: options.task,
      artifact: { path: artifact, format: "xgboost-json", sha256: sha256File(artifactPath) },
      features: Array.from({ length: options.features }, (_, i) => ({ name: name(i), type: "number" })),
      ...(options.task === "multiclass"
        ? { output: { labels: Array.from({ length: options.classes ?? 0 }, (_, k) => `class${k}`) } }
        : {}),
    },
    manifestPath,
  );
}

/** A manifest for a fixture directory's model.json, shaped from its reference.json. */
function fixtureManifest(
  dir: string,
  reference: Reference,
  overrides: { task?: Task; features?: number } = {},
) {
  return manifestFor(join(dir, "manifest.yaml"), "model.json", {
    task: overrides.task ?? taskOf(reference.objective),
    features: overrides.features ?? reference.num_feature,
    classes: reference.num_class,
  });
}

/** Write `text` as a model file in the scratch folder and return a manifest pointing at it. */
function scratchManifest(
  fileName: string,
  text: string,
  options: { task: Task; features: number },
): Manifest {
  writeFileSync(join(scratch, fileName), text);
  return manifestFor(join(scratch, `${fileName}.manifest.yaml`), fileName, options);
}

async function assertArtifactInvalid(manifest: Manifest, message: RegExp): Promise<void> {
  await assert.rejects(createXGBoostEngine(manifest), (error: unknown) => {
    assert.ok(error instanceof WardenError, `expected a WardenError, got ${String(error)}`);
    assert.equal(error.code, "WARDEN_ERR_ARTIFACT_INVALID");
    assert.match(error.message, message);
    assert.ok(error.details.length > 0, "details name the field");
    return true;
  });
}

const fixtureDirs = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name !== "unsupported")
  .map((entry) => entry.name)
  .sort();

describe("XGBoost engine matches XGBoost on every fixture", () => {
  test("fixtures are present", () => {
    assert.ok(
      fixtureDirs.length >= 7,
      `found ${fixtureDirs.join(", ")}; run scripts/fixtures/make_xgboost_fixtures.py`,
    );
  });

  for (const name of fixtureDirs) {
    test(name, async () => {
      const dir = join(FIXTURES, name);
      const reference = readReference(join(dir, "reference.json"));
      const engine = await createXGBoostEngine(fixtureManifest(dir, reference));
      const rows = reference.inputs.length;
      const out = engine.predict(encode(reference.inputs), rows);
      const groups = Math.max(1, reference.num_class);
      const margins = flat(reference.margins);
      assert.equal(out.marginWidth, groups);
      // The engine repeats XGBoost's float32 arithmetic, so margins are not just close but identical.
      assertClose(out.margins!, margins, "margins", 0);

      const predictions = flat(reference.predictions);
      switch (reference.objective) {
        case "binary:logistic":
          assert.equal(out.kind, "probabilities");
          assert.equal(out.width, 2);
          assertClose(
            out.values.filter((_, i) => i % 2 === 1),
            predictions,
            "P(class 1)",
          );
          assertClose(
            out.values.filter((_, i) => i % 2 === 0),
            predictions.map((p) => 1 - p),
            "P(class 0)",
          );
          break;
        case "multi:softprob":
          assert.equal(out.kind, "probabilities");
          assert.equal(out.width, groups);
          assertClose(out.values, predictions, "probabilities");
          break;
        case "multi:softmax": {
          assert.equal(out.kind, "probabilities");
          assert.equal(out.width, groups);
          const softmax: number[] = [];
          for (let row = 0; row < rows; row++) {
            const m = margins.slice(row * groups, (row + 1) * groups);
            const e = m.map((v) => Math.exp(v - Math.max(...m)));
            const sum = e.reduce((a, b) => a + b, 0);
            softmax.push(...e.map((v) => v / sum));
            const p = Array.from(out.values.subarray(row * groups, (row + 1) * groups));
            assert.equal(p.indexOf(Math.max(...p)), predictions[row], `row ${row}: the class XGBoost picks`);
          }
          assertClose(out.values, softmax, "probabilities");
          break;
        }
        default:
          assert.equal(out.kind, "values");
          assert.equal(out.width, 1);
          assertClose(out.values, predictions, "values");
      }
    });
  }
});

describe("XGBoost engine behaviour", () => {
  const dir = join(FIXTURES, "binary-logistic-missing");
  const reference = readReference(join(dir, "reference.json"));
  const manifest = fixtureManifest(dir, reference);

  test("the synchronous class gives the same output as the async factory", async () => {
    const input = encode(reference.inputs);
    const rows = reference.inputs.length;
    const viaFactory = (await createXGBoostEngine(manifest)).predict(input, rows);
    const direct = new XGBoostEngine(manifest).predict(input, rows);
    assert.deepEqual(direct, viaFactory);
  });

  test("describe() reports format, tensors and model facts", () => {
    const description = new XGBoostEngine(manifest).describe();
    assert.equal(description.format, "xgboost-json");
    assert.equal(description.featureCount, 6);
    assert.deepEqual(description.inputs, [{ name: "input", datatype: "FP32", shape: [-1, 6] }]);
    assert.deepEqual(description.outputs, [
      { name: "probabilities", datatype: "FP64", shape: [-1, 2] },
      { name: "margins", datatype: "FP64", shape: [-1, 1] },
    ]);
    assert.equal(description.details.objective, "binary:logistic");
    assert.equal(description.details.trees, 40);
    assert.equal(description.details.num_class, 0);
    assert.equal(description.details.base_score, 0.5);
  });

  test("a model trained with early stopping says so: every tree is used, as Booster.predict does", () => {
    const json = JSON.parse(readFileSync(join(dir, "model.json"), "utf8"));
    json.learner.attributes = { ...json.learner.attributes, best_iteration: "12", best_score: "0.41" };
    const early = new XGBoostEngine(
      scratchManifest("early-stopped.json", JSON.stringify(json), { task: "binary", features: 6 }),
    );
    assert.equal(early.describe().details.best_iteration, 12);
    assert.match(String(early.describe().details.early_stopping), /booster\[: best_iteration \+ 1\]/);
    assert.deepEqual(
      early.predict(encode(reference.inputs), reference.inputs.length),
      new XGBoostEngine(manifest).predict(encode(reference.inputs), reference.inputs.length),
    );
    assert.equal(new XGBoostEngine(manifest).describe().details.best_iteration, undefined);
  });

  test("zero rows give empty outputs", () => {
    const out = new XGBoostEngine(manifest).predict(new Float32Array(0), 0);
    assert.equal(out.values.length, 0);
    assert.equal(out.margins?.length, 0);
  });

  test("an input that is not rows × features is an internal error", () => {
    assert.throws(
      () => new XGBoostEngine(manifest).predict(new Float32Array(7), 1),
      (error: unknown) => error instanceof WardenError && error.code === "WARDEN_ERR_INTERNAL",
    );
  });

  test("the parsed trees keep covers for TreeSHAP", () => {
    const { trees } = new XGBoostEngine(manifest).model;
    assert.equal(trees.treeStart.length, trees.count + 1);
    assert.equal(trees.cover.length, trees.treeStart[trees.count]);
    assert.ok(trees.cover[trees.treeStart[0]!]! > 0, "the root of tree 0 has a positive cover");
  });
});

describe("XGBoost engine refuses what it cannot serve", () => {
  const dir = join(FIXTURES, "binary-logistic-missing");
  const reference = readReference(join(dir, "reference.json"));
  const modelText = readFileSync(join(dir, "model.json"), "utf8");

  test("num_feature different from the manifest's non-sensitive features", async () => {
    await assertArtifactInvalid(fixtureManifest(dir, reference, { features: 7 }), /6 non-sensitive features/);
  });

  test("a task the objective cannot serve", async () => {
    await assertArtifactInvalid(
      fixtureManifest(dir, reference, { task: "regression" }),
      /binary for a model trained with objective binary:logistic/,
    );
    const regression = join(FIXTURES, "reg-squarederror");
    await assertArtifactInvalid(
      fixtureManifest(regression, readReference(join(regression, "reference.json")), { task: "binary" }),
      /regression for a model trained with objective reg:squarederror/,
    );
  });

  test("a multiclass manifest whose labels do not match num_class", async () => {
    const multi = join(FIXTURES, "multi-softprob");
    const manifest = manifestFor(join(multi, "manifest.yaml"), "model.json", {
      task: "multiclass",
      features: 6,
      classes: 3,
    });
    await assertArtifactInvalid(manifest, /4 labels, one per class/);
  });

  test("feature names saved in the model that differ from the manifest's", async () => {
    const demo = loadManifest(DEMO_MANIFEST);
    const manifest = manifestFor(demo.manifestPath, "model.json", { task: "binary", features: 11 });
    await assertArtifactInvalid(manifest, /the model's feature names, in order: Seniority, Home/);
  });

  test("a file that is not JSON", async () => {
    await assertArtifactInvalid(
      scratchManifest("garbage.json", "\u0000\u0001 this is not a model", { task: "binary", features: 6 }),
      /garbage\.json: not a usable XGBoost model: expected an XGBoost model in JSON format/,
    );
    await assertArtifactInvalid(
      scratchManifest("truncated.json", modelText.slice(0, modelText.length / 2), {
        task: "binary",
        features: 6,
      }),
      /not JSON/,
    );
  });

  test("JSON that is not an XGBoost model", async () => {
    await assertArtifactInvalid(
      scratchManifest("other.json", '{"weights": [1, 2, 3]}', { task: "binary", features: 6 }),
      /other\.json#\/learner: not a usable XGBoost model/,
    );
  });

  test("a missing artifact file", async () => {
    const manifest = scratchManifest("gone.json", modelText, { task: "binary", features: 6 });
    rmSync(manifest.artifact.absolutePath);
    await assertArtifactInvalid(manifest, /cannot read the XGBoost model/);
  });

  test("a linear booster (gblinear)", async () => {
    const manifest = manifestFor(join(FIXTURES, "unsupported", "gblinear.manifest.yaml"), "gblinear.json", {
      task: "binary",
      features: 4,
    });
    await assertArtifactInvalid(manifest, /linear boosters \(gblinear\) are not supported/);
  });

  test("categorical splits", async () => {
    const manifest = manifestFor(
      join(FIXTURES, "unsupported", "categorical.manifest.yaml"),
      "categorical.json",
      {
        task: "binary",
        features: 4,
      },
    );
    await assertArtifactInvalid(manifest, /categorical split .* retrain on those codes/);
  });

  test("an unsupported objective", async () => {
    const text = modelText.replace('"name":"binary:logistic"', '"name":"rank:pairwise"');
    await assertArtifactInvalid(
      scratchManifest("ranking.json", text, { task: "binary", features: 6 }),
      /objective\/name: not a usable XGBoost model: expected one of binary:logistic/,
    );
  });

  test("corrupt trees: a child link that loops back, a feature index out of range", async () => {
    const model = JSON.parse(modelText);
    const tree = model.learner.gradient_booster.model.trees[0];
    const internal = tree.left_children.findIndex((child: number, i: number) => i > 0 && child !== -1);
    tree.left_children[internal] = 1;
    await assertArtifactInvalid(
      scratchManifest("cycle.json", JSON.stringify(model), { task: "binary", features: 6 }),
      /trees\/0\/left_children\/\d+: .*not yet linked/,
    );
    const broken = JSON.parse(modelText);
    broken.learner.gradient_booster.model.trees[1].split_indices[0] = 6;
    await assertArtifactInvalid(
      scratchManifest("feature.json", JSON.stringify(broken), { task: "binary", features: 6 }),
      /trees\/1\/split_indices\/0: .*a feature index from 0 to 5/,
    );
  });
});

describe("the bundled credit-demo model", () => {
  test("matches XGBoost on the holdout within 1e-6", async () => {
    const manifest = loadManifest(DEMO_MANIFEST);
    const reference = readReference(join(FIXTURES, "credit-demo-holdout-reference.json"));
    const engine = await createXGBoostEngine(manifest);
    assert.equal(engine.describe().featureCount, manifest.modelFeatures.length);
    const rows = reference.inputs.length;
    const out = engine.predict(encode(reference.inputs), rows);
    assert.equal(out.kind, "probabilities");
    assert.equal(out.width, 2);
    assertClose(out.margins!, flat(reference.margins), "margins", 0);
    assertClose(
      out.values.filter((_, i) => i % 2 === manifest.output.positiveIndex),
      flat(reference.predictions),
      "P(bad)",
    );
  });
});
