import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadManifest, type Manifest, parseManifest, sha256File } from "../../config/index.js";
import { WardenError } from "../../errors/index.js";
import type { ModelEngine } from "../types.js";
import { createOnnxEngine } from "./engine.js";
import { readOnnxModelInfo } from "./model-info.js";

// Paths from the compiled file (dist/runtime/onnx/engine.test.js) to the repository's data.
const FIXTURES = fileURLToPath(new URL("../../../fixtures/onnx/", import.meta.url));
const MODELS = fileURLToPath(new URL("../../../models/", import.meta.url));

// onnxruntime-node's install script puts the CUDA provider next to the binding; this installation skips it.
const CUDA_PROVIDER = join(
  dirname(createRequire(import.meta.url).resolve("onnxruntime-node")),
  "..",
  "bin",
  "napi-v6",
  process.platform,
  process.arch,
  "libonnxruntime_providers_cuda.so",
);

interface Reference {
  readonly inputs: readonly (readonly (number | null)[])[];
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

/** Reference rows as Warden feeds them: row-major float32, null (missing) as NaN. */
function encodeRows(rows: Reference["inputs"]): Float32Array {
  return Float32Array.from(rows.flat(), (v) => (v === null ? Number.NaN : v));
}

function maxAbsDiff(actual: Float64Array, expected: readonly number[]): number {
  assert.equal(actual.length, expected.length);
  return expected.reduce((worst, e, i) => Math.max(worst, Math.abs(actual[i]! - e)), 0);
}

interface TestManifestOptions {
  readonly task?: "binary" | "multiclass" | "regression";
  readonly features?: number;
  readonly labels?: readonly string[];
  readonly device?: "cpu" | "cuda";
  readonly input?: string;
  readonly output?: string;
}

/** A valid manifest for an artifact `file` (absolute path) with `features` numeric features. */
function manifestFor(file: string, options: TestManifestOptions = {}): Manifest {
  const task = options.task ?? "regression";
  const labels = options.labels ?? (task === "binary" ? ["no", "yes"] : undefined);
  return parseManifest(
    {
      name: "onnx-test",
      version: "1",
      owner: "tests",
      intended_use: "engine tests",
      risk_tier: "minimal",
      task,
      artifact: {
        path: file,
        format: "onnx",
        sha256: sha256File(file),
        ...(options.input === undefined ? {} : { input: options.input }),
        ...(options.output === undefined ? {} : { output: options.output }),
      },
      runtime: { device: options.device ?? "cpu" },
      features: Array.from({ length: options.features ?? 4 }, (_, i) => ({ name: `x${i}`, type: "number" })),
      ...(labels === undefined ? {} : { output: { labels } }),
    },
    join(dirname(file), "test-manifest.yaml"),
  );
}

/** Assert that `promise` rejects with a WardenError of `code` whose message matches every pattern. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  ...patterns: RegExp[]
): Promise<WardenError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}, but it succeeded`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WardenError, `expected a WardenError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  for (const pattern of patterns) assert.match(error.message, pattern);
  return error;
}

describe("ONNX engine", () => {
  const engines: ModelEngine[] = [];
  const open = async (manifest: Manifest): Promise<ModelEngine> => {
    const engine = await createOnnxEngine(manifest);
    engines.push(engine);
    return engine;
  };
  after(async () => {
    for (const engine of engines) await engine.close();
  });

  test("the demo credit model matches scikit-learn's probabilities on the holdout", async () => {
    const manifest = loadManifest(join(MODELS, "credit-demo-onnx", "manifest.yaml"));
    const reference = readJson<Reference & { probabilities: number[][]; features: string[] }>(
      join(FIXTURES, "credit-demo-onnx-reference.json"),
    );
    assert.deepEqual(
      manifest.modelFeatures.map((f) => f.name),
      reference.features,
    );
    const engine = await open(manifest);
    const rows = reference.inputs.length;
    const out = await engine.predict(encodeRows(reference.inputs), rows);
    assert.equal(out.kind, "probabilities");
    assert.equal(out.width, 2);
    assert.equal(out.values.length, rows * 2);
    // The reference is float64 scikit-learn; the graph runs in float32. Inputs are standardised values of a
    // few units and the network's logits stay within ±20, so float32 rounding (2^-24 ≈ 6e-8 relative) moves a
    // probability by about 1e-7 (measured: 1.5e-7). 1e-6 leaves room for other CPUs' SIMD summation order.
    assert.ok(maxAbsDiff(out.values, reference.probabilities.flat()) <= 1e-6);

    const described = engine.describe();
    assert.equal(described.format, "onnx");
    assert.equal(described.featureCount, 11);
    assert.deepEqual(described.inputs, [{ name: "features", datatype: "FP32", shape: [-1, 11] }]);
    assert.deepEqual(described.outputs, [{ name: "probabilities", datatype: "FP32", shape: [-1, 2] }]);
    assert.equal(described.details.device, "cpu");
    assert.equal(described.details.opset, 17);
    assert.equal(described.details.irVersion, 8);
  });

  test("a batch gives the same probabilities as its rows one by one", async () => {
    const manifest = loadManifest(join(MODELS, "credit-demo-onnx", "manifest.yaml"));
    const reference = readJson<Reference>(join(FIXTURES, "credit-demo-onnx-reference.json"));
    const engine = await open(manifest);
    const batch = reference.inputs.slice(0, 8);
    const together = await engine.predict(encodeRows(batch), batch.length);
    for (const [i, row] of batch.entries()) {
      const alone = await engine.predict(encodeRows([row]), 1);
      assert.ok(maxAbsDiff(alone.values, Array.from(together.values.subarray(i * 2, i * 2 + 2))) <= 1e-6);
    }
  });

  test("a multiclass softmax model gives [N, 3] probabilities matching numpy", async () => {
    const reference = readJson<Reference & { labels: string[]; expected: number[][] }>(
      join(FIXTURES, "multiclass-reference.json"),
    );
    const engine = await open(
      manifestFor(join(FIXTURES, "multiclass.onnx"), { task: "multiclass", labels: reference.labels }),
    );
    const out = await engine.predict(encodeRows(reference.inputs), reference.inputs.length);
    assert.equal(out.kind, "probabilities");
    assert.equal(out.width, 3);
    // Probabilities are at most 1, so float32 rounding is below 1e-7 absolute.
    assert.ok(maxAbsDiff(out.values, reference.expected.flat()) <= 1e-6);
  });

  test("a float32 regression model with output [N] gives one value per row", async () => {
    const reference = readJson<Reference & { expected: number[] }>(
      join(FIXTURES, "regression-reference.json"),
    );
    const engine = await open(manifestFor(join(FIXTURES, "regression.onnx")));
    const out = await engine.predict(encodeRows(reference.inputs), reference.inputs.length);
    assert.equal(out.kind, "values");
    assert.equal(out.width, 1);
    // Values reach about ±30; float32 keeps about 7 significant digits, so 1e-5 absolute.
    assert.ok(maxAbsDiff(out.values, reference.expected) <= 1e-5);
    assert.deepEqual(engine.describe().outputs, [{ name: "prediction", datatype: "FP32", shape: [-1] }]);
  });

  test("a float64 model gets its input widened and its [N, 1] output read", async () => {
    const reference = readJson<Reference & { expected: number[] }>(
      join(FIXTURES, "regression-reference.json"),
    );
    const engine = await open(manifestFor(join(FIXTURES, "regression-f64.onnx")));
    const out = await engine.predict(encodeRows(reference.inputs), reference.inputs.length);
    assert.equal(out.kind, "values");
    // Same float64 arithmetic as the reference: only summation order differs.
    assert.ok(maxAbsDiff(out.values, reference.expected) <= 1e-9);
    assert.deepEqual(engine.describe().inputs, [{ name: "features", datatype: "FP64", shape: [-1, 4] }]);
  });

  test("a ZipMap output is refused with advice to export with zipmap disabled", async () => {
    const file = join(FIXTURES, "zipmap.onnx");
    const error = await rejectsWith(
      createOnnxEngine(manifestFor(file, { task: "binary" })),
      "WARDEN_ERR_ARTIFACT_INVALID",
      /zipmap/i,
      /"zipmap": False/,
      /output_probability/,
    );
    assert.match(error.details[0]?.field ?? "", /#\/artifact\/output$/);
    // Naming the map output explicitly gives the same answer.
    await rejectsWith(
      createOnnxEngine(manifestFor(file, { task: "binary", output: "output_probability" })),
      "WARDEN_ERR_ARTIFACT_INVALID",
      /zipmap/i,
    );
  });

  test('device "cuda" without onnxruntime-node\'s CUDA provider is WARDEN_ERR_DEVICE_UNAVAILABLE', {
    skip: existsSync(CUDA_PROVIDER) && "the CUDA provider is installed here",
  }, async () => {
    const error = await rejectsWith(
      createOnnxEngine(manifestFor(join(FIXTURES, "regression.onnx"), { device: "cuda" })),
      "WARDEN_ERR_DEVICE_UNAVAILABLE",
      /CUDA is not available in this installation/,
      /CUDA 12/,
      /runtime\.device: cpu/,
    );
    assert.match(error.details[0]?.field ?? "", /#\/runtime\/device$/);
  });

  describe("artifacts that do not fit", () => {
    const scratch = mkdtempSync(join(tmpdir(), "warden-onnx-"));
    after(() => rmSync(scratch, { recursive: true, force: true }));

    test("a file that is not an ONNX model is WARDEN_ERR_ARTIFACT_INVALID naming the file", async () => {
      const file = join(scratch, "garbage.onnx");
      writeFileSync(file, "this is not a protobuf message\n");
      const error = await rejectsWith(
        createOnnxEngine(manifestFor(file)),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /not a usable ONNX model/,
        /\(onnxruntime: \S/,
      );
      assert.ok(error.message.includes(file), error.message);
    });

    test("a feature count that differs from the model's input width is explained", async () => {
      await rejectsWith(
        createOnnxEngine(
          manifestFor(join(FIXTURES, "multiclass.onnx"), {
            task: "multiclass",
            features: 3,
            labels: ["a", "b", "c"],
          }),
        ),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /input "features" takes 4 feature columns, but the manifest lists 3 non-sensitive features/,
      );
    });

    test("an output width that does not fit the task is refused at load", async () => {
      await rejectsWith(
        createOnnxEngine(manifestFor(join(FIXTURES, "multiclass.onnx"), { task: "binary" })),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /output "probabilities" has shape \[N, 3\]; a binary model needs \[N, 2\]/,
      );
      await rejectsWith(
        createOnnxEngine(
          manifestFor(join(FIXTURES, "multiclass.onnx"), { task: "multiclass", labels: ["a", "b"] }),
        ),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /\[N, 2\] class probabilities/,
      );
    });

    test("unknown input and output names list the model's names", async () => {
      const file = join(FIXTURES, "regression.onnx");
      await rejectsWith(
        createOnnxEngine(manifestFor(file, { input: "x" })),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /no input "x" \(inputs: "features"\)/,
      );
      await rejectsWith(
        createOnnxEngine(manifestFor(file, { output: "y" })),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /no output "y" \(outputs: "prediction"\)/,
      );
    });

    test("an integer output is refused with the outputs listed", async () => {
      await rejectsWith(
        createOnnxEngine(
          manifestFor(join(FIXTURES, "zipmap.onnx"), { task: "binary", output: "output_label" }),
        ),
        "WARDEN_ERR_ARTIFACT_INVALID",
        /output "output_label" is of type int64, shape \[N\]/,
      );
    });
  });

  test("a row whose output is NaN (a missing input the model propagates) does not fail the other rows of its batch", async () => {
    const reference = readJson<Reference & { labels: string[]; expected: number[][] }>(
      join(FIXTURES, "multiclass-reference.json"),
    );
    const engine = await open(
      manifestFor(join(FIXTURES, "multiclass.onnx"), { task: "multiclass", labels: reference.labels }),
    );
    const input = encodeRows(reference.inputs.slice(0, 2));
    input[0] = Number.NaN;
    const out = await engine.predict(input, 2);
    assert.ok(
      [0, 1, 2].every((k) => Number.isNaN(out.values[k]!)),
      "row 0 is NaN, left to the policy",
    );
    assert.ok(maxAbsDiff(out.values.subarray(3), reference.expected[1]!) <= 1e-6, "row 1 is answered");
  });

  test("several float outputs and none named: refused at load, asking which one (a label output could pass as probabilities)", async () => {
    const file = join(FIXTURES, "label-and-scores.onnx");
    const error = await rejectsWith(
      createOnnxEngine(manifestFor(file, { task: "binary", features: 3 })),
      "WARDEN_ERR_ARTIFACT_INVALID",
      /several float outputs \("label", "scores"\)/,
    );
    assert.equal(error.details[0]!.field.endsWith("/artifact/output"), true);
    assert.equal(error.details[0]!.fix, "set artifact.output in the manifest");
    // Named, it serves the probabilities: softmax rows sum to 1.
    const engine = await open(manifestFor(file, { task: "binary", features: 3, output: "scores" }));
    const out = await engine.predict(Float32Array.from([1, 2, 3, -1, 0, 2]), 2);
    assert.equal(out.width, 2);
    assert.ok(Math.abs(out.values[0]! + out.values[1]! - 1) < 1e-6);
  });

  test("a model that declares a dynamic batch but reshapes to one row inside is refused at load, not per batch", async () => {
    await rejectsWith(
      createOnnxEngine(manifestFor(join(FIXTURES, "batch-of-one.onnx"), { features: 3 })),
      "WARDEN_ERR_ARTIFACT_INVALID",
      /fails a trial run on 2 rows of typical values: .*onnxruntime failed/,
    );
  });

  test("a closed engine refuses to predict", async () => {
    const engine = await createOnnxEngine(manifestFor(join(FIXTURES, "regression.onnx")));
    await engine.close();
    await engine.close();
    await assert.rejects(Promise.resolve(engine.predict(new Float32Array(4), 1)), {
      code: "WARDEN_ERR_MODEL_NOT_READY",
    });
  });
});

describe("readOnnxModelInfo", () => {
  test("reads IR version, producer and every operator set", async () => {
    const info = await readOnnxModelInfo(join(FIXTURES, "zipmap.onnx"));
    assert.equal(info?.irVersion, 8);
    assert.match(info?.producer ?? "", /make_onnx_fixtures\.py/);
    assert.deepEqual(
      [...(info?.opsets ?? [])],
      [
        ["ai.onnx", 17],
        ["ai.onnx.ml", 3],
      ],
    );
  });

  test("gives undefined for a file that is not protobuf", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "warden-onnx-info-"));
    try {
      const file = join(scratch, "not-a-model.onnx");
      writeFileSync(file, "plain text, not protobuf\n");
      assert.equal(await readOnnxModelInfo(file), undefined);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
