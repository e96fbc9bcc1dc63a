import { InferenceSession, Tensor } from "onnxruntime-node";
import type { Manifest } from "../../config/index.js";
import { type FieldProblem, WardenError } from "../../errors/index.js";
import type { EngineDescription, EngineOutput, ModelEngine, TensorInfo } from "../types.js";
import { type OnnxModelInfo, readOnnxModelInfo } from "./model-info.js";

/** Element types Warden can feed and read, with their Open Inference Protocol names. */
const FLOAT_TYPES = { float32: "FP32", float64: "FP64" } as const;
type FloatType = keyof typeof FLOAT_TYPES;

type ValueMetadata = InferenceSession.ValueMetadata;
type TensorMetadata = InferenceSession.TensorValueMetadata;
type FloatTensorMetadata = TensorMetadata & { readonly type: FloatType };

/** How the chosen output maps onto an {@link EngineOutput}. */
interface Layout {
  readonly kind: EngineOutput["kind"];
  readonly width: number;
}

/**
 * Load a manifest's ONNX artifact into an onnxruntime-node session and wrap it as a {@link ModelEngine}.
 *
 * The session runs on `runtime.device` (`cpu`, or `cuda` when onnxruntime-node's CUDA provider is installed)
 * with `runtime.intra_op_threads` threads inside each operator and one between operators: Warden scales with
 * `runtime.instances`, not with parallel branches inside one run. Which tensors are used:
 * - input: `artifact.input`, else the model's only input; float32 `[N, F]` (float64 models get a widened copy)
 *   with a dynamic batch dimension and F = the number of non-sensitive features when F is static;
 * - output: `artifact.output`, else the output named `probabilities`, else the first float tensor output.
 *   For binary and multiclass tasks `[N, C]` is read as class probabilities (binary: C = 2); `[N]` or `[N, 1]`
 *   as one value per row (regression, or P(class 1) for a binary model that gives only that).
 *
 * Note that onnxruntime-node runs a model synchronously on the calling thread (its promise only defers the
 * call with `setImmediate`), so a server keeps its event loop free by calling this from a worker thread.
 *
 * @throws WardenError WARDEN_ERR_ARTIFACT_INVALID when the file is not a usable ONNX model or does not fit the
 *   manifest (ZipMap output, feature count, input or output type or shape); WARDEN_ERR_DEVICE_UNAVAILABLE
 *   when `runtime.device` is `cuda` and CUDA cannot be used.
 */
export async function createOnnxEngine(manifest: Manifest): Promise<ModelEngine> {
  const session = await openSession(manifest);
  try {
    const input = chooseInput(session, manifest);
    const output = chooseOutput(session, manifest);
    // The header facts only enrich describe(); onnxruntime has already accepted the file.
    const info = await readOnnxModelInfo(manifest.artifact.absolutePath).catch(() => undefined);
    const engine = new OnnxEngine(manifest, session, input, output, info);
    await tryOut(engine, manifest);
    return engine;
  } catch (error) {
    await session.release();
    throw error;
  }
}

/** How far outside [0, 1] a float32 probability may land by rounding. */
const PROBABILITY_SLACK = 1e-6;

/**
 * Run the model once on one row and once on two (typical values: each feature's midpoint, else 0) at load, so
 * that a model whose graph does not do what its declared shapes say (a batch dimension reshaped to one row
 * inside, a width it does not take, an output of another shape, logits instead of probabilities) is refused
 * now, naming the problem, rather than failing requests later (or only those batched with others).
 */
async function tryOut(engine: OnnxEngine, manifest: Manifest): Promise<void> {
  const row = manifest.modelFeatures.map((f) =>
    f.min !== undefined && f.max !== undefined ? (f.min + f.max) / 2 : (f.min ?? f.max ?? 0),
  );
  for (const rows of [1, 2]) {
    const input = new Float32Array(rows * row.length);
    for (let r = 0; r < rows; r++) input.set(row, r * row.length);
    try {
      await engine.predict(input, rows);
    } catch (error) {
      const reason = error instanceof WardenError ? error.message : errorText(error);
      throw artifactInvalid(
        manifest,
        `the model fails a trial run on ${rows} row${rows === 1 ? "" : "s"} of typical values: ${reason}`,
        {
          field: "/artifact/path",
          expected: `a model that answers batches of any size (${rows} tried) as its declared shapes say`,
          found: reason.slice(0, 300),
          fix:
            rows === 2
              ? "export the model with a dynamic batch dimension all the way through (no reshape to a fixed batch)"
              : "check the model's input width and output against the manifest",
        },
      );
    }
  }
}

async function openSession(manifest: Manifest): Promise<InferenceSession> {
  const { device, intra_op_threads } = manifest.runtime;
  try {
    return await InferenceSession.create(manifest.artifact.absolutePath, {
      executionProviders: [device],
      intraOpNumThreads: intra_op_threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
    });
  } catch (error) {
    const reason = errorText(error);
    // The CUDA provider fails while the session options are built, before the model is read, so a CUDA
    // problem is reported as such even when the file is also bad.
    if (device === "cuda" && /cuda|cudnn|cublas|providers_shared/i.test(reason)) {
      throw deviceUnavailable(manifest, reason, error);
    }
    throw artifactInvalid(
      manifest,
      `${manifest.artifact.absolutePath} is not a usable ONNX model (onnxruntime: ${reason})`,
      { field: "/artifact/path", expected: "an ONNX model file", found: reason },
      error,
    );
  }
}

function deviceUnavailable(manifest: Manifest, reason: string, cause: unknown): WardenError {
  // onnxruntime-node's npm package bundles only the CPU provider; its install script downloads the CUDA 12
  // provider libraries, unless that script is skipped (a skip flag, or a package manager that blocks scripts).
  const missingLibrary = /failed to load|cannot open shared object|providers_shared/i.test(reason);
  const fix = missingLibrary
    ? "install onnxruntime-node's CUDA binaries: on a Linux x64 machine with CUDA 12 and cuDNN 9, reinstall it " +
      "with its install script allowed and without the skip flag (npm rebuild onnxruntime-node " +
      "--onnxruntime-node-install=cuda12, or ONNXRUNTIME_NODE_INSTALL=cuda12); or set runtime.device: cpu"
    : "check the GPU, the CUDA 12 and cuDNN 9 libraries on the library path and the driver; or set " +
      "runtime.device: cpu";
  const what = missingLibrary
    ? "CUDA is not available in this installation of onnxruntime-node (its CUDA provider is not installed)"
    : "onnxruntime could not start its CUDA provider";
  return new WardenError(
    "WARDEN_ERR_DEVICE_UNAVAILABLE",
    `${manifest.manifestPath}: model ${manifest.name} asks for runtime.device "cuda", but ${what}: ${reason}. ` +
      `To fix it, ${fix}.`,
    {
      details: [
        {
          field: `${manifest.manifestPath}#/runtime/device`,
          expected: "a device this installation can use",
          found: '"cuda"',
          fix,
        },
      ],
      cause,
    },
  );
}

function chooseInput(session: InferenceSession, manifest: Manifest): FloatTensorMetadata {
  const wanted = manifest.artifact.input;
  const names = session.inputNames;
  // Every input of an ONNX model must be fed, and Warden has one tensor to feed.
  if (names.length !== 1) {
    throw artifactInvalid(
      manifest,
      `the model has ${names.length} inputs (${quoteAll(names)}); Warden feeds a single [N, features] tensor`,
      { field: "/artifact/path", expected: "a model with one input", found: `${names.length} inputs` },
    );
  }
  const metadata = findValue(session.inputMetadata, wanted ?? names[0]);
  if (metadata === undefined) {
    throw artifactInvalid(manifest, `the model has no input "${wanted}" (inputs: ${quoteAll(names)})`, {
      field: "/artifact/input",
      expected: `one of ${quoteAll(names)}`,
      found: JSON.stringify(wanted),
    });
  }
  if (!isFloatTensor(metadata)) {
    throw artifactInvalid(
      manifest,
      `input "${metadata.name}" is ${describeValueType(metadata)}; Warden feeds float32 (or float64) features`,
      {
        field: "/artifact/input",
        expected: "a float32 or float64 tensor",
        found: describeValueType(metadata),
      },
    );
  }
  const featureCount = manifest.modelFeatures.length;
  const shape = metadata.shape;
  // An empty shape: the model declares none (or a scalar); onnxruntime checks the fed tensor at run time.
  if (shape.length === 0) return metadata;
  const [batch, width] = shape;
  if (shape.length !== 2 || typeof batch === "number") {
    throw artifactInvalid(
      manifest,
      `input "${metadata.name}" has shape ${shapeText(shape)}; Warden feeds [N, ${featureCount}] with N the ` +
        "batch size, so the model needs a rank-2 input with a dynamic first dimension",
      {
        field: "/artifact/input",
        expected: `shape [N, ${featureCount}] with N dynamic`,
        found: shapeText(shape),
        fix: "export with a dynamic batch axis (skl2onnx: FloatTensorType([None, n]); torch.onnx.export: dynamic_axes)",
      },
    );
  }
  if (typeof width === "number" && width !== featureCount) {
    throw artifactInvalid(
      manifest,
      `input "${metadata.name}" takes ${width} feature columns, but the manifest lists ${featureCount} ` +
        "non-sensitive features (the model's inputs, in order; sensitive features are never fed to it)",
      {
        field: "/features",
        expected: `${width} non-sensitive features, as the model's input has ${width} columns`,
        found: `${featureCount} non-sensitive features`,
      },
    );
  }
  return metadata;
}

function chooseOutput(session: InferenceSession, manifest: Manifest): FloatTensorMetadata {
  const outputs = session.outputMetadata;
  const wanted = manifest.artifact.output;
  const floats = outputs.filter(isFloatTensor);
  if (wanted === undefined && findValue(outputs, "probabilities") === undefined && floats.length > 1) {
    // Which one holds the probabilities or values cannot be told from the graph (a label output ranks first in
    // some exporters): a guess could serve class labels as probabilities.
    const names = quoteAll(floats.map((o) => o.name));
    throw artifactInvalid(manifest, `the model has several float outputs (${names}); name the one to read`, {
      field: "/artifact/output",
      expected: `the name of the output with the ${manifest.task === "regression" ? "predicted values" : "class probabilities"}: one of ${names}`,
      found: "missing",
      fix: "set artifact.output in the manifest",
    });
  }
  const metadata =
    wanted !== undefined
      ? findValue(outputs, wanted)
      : (findValue(outputs, "probabilities") ??
        floats[0] ??
        // Only non-float outputs besides maps: pick the map so the ZipMap advice below applies.
        outputs.find((o) => !o.isTensor));
  if (metadata === undefined) {
    const names = quoteAll(session.outputNames);
    throw wanted !== undefined
      ? artifactInvalid(manifest, `the model has no output "${wanted}" (outputs: ${names})`, {
          field: "/artifact/output",
          expected: `one of ${names}`,
          found: JSON.stringify(wanted),
        })
      : artifactInvalid(manifest, `the model has no float tensor output (outputs: ${names})`, {
          field: "/artifact/output",
          expected: "a float32 or float64 output tensor with probabilities or values",
          found: describeOutputs(outputs),
        });
  }
  if (!metadata.isTensor) {
    const fix =
      'export the classifier with zipmap disabled: skl2onnx options={id(model): {"zipmap": False}} ' +
      '(or to_onnx(..., options={"zipmap": False})), which gives a "probabilities" tensor [N, classes]';
    throw artifactInvalid(
      manifest,
      `output "${metadata.name}" is not a tensor but a sequence of maps (a ZipMap, skl2onnx's default for ` +
        `classifiers); Warden reads class probabilities from a tensor. To fix it, ${fix}`,
      {
        field: "/artifact/output",
        expected: "a probability tensor",
        found: `"${metadata.name}" (ZipMap)`,
        fix,
      },
    );
  }
  if (!isFloatTensor(metadata)) {
    throw artifactInvalid(
      manifest,
      `output "${metadata.name}" is ${describeValueType(metadata)}; Warden reads float32 or float64 ` +
        `probabilities or values (outputs: ${describeOutputs(outputs)})`,
      {
        field: "/artifact/output",
        expected: "a float32 or float64 tensor",
        found: `"${metadata.name}" (${describeValueType(metadata)})`,
        fix: "set artifact.output to the output holding probabilities or predicted values",
      },
    );
  }
  // Check the width now when the model declares it; otherwise every run checks the real shape.
  const trailing = metadata.shape.slice(1);
  if (metadata.shape.length > 0 && trailing.every((d) => typeof d === "number")) {
    const layout = outputLayout(trailing as number[], manifest);
    if (typeof layout === "string") {
      throw artifactInvalid(
        manifest,
        `output "${metadata.name}" has shape ${shapeText(metadata.shape)}; a ${manifest.task} model needs ${layout}`,
        { field: "/artifact/output", expected: layout, found: shapeText(metadata.shape) },
      );
    }
  }
  return metadata;
}

/**
 * Read an output of shape `[N, ...trailing]` for the manifest's task: the layout, or (a string) what the task
 * needs instead.
 */
function outputLayout(trailing: readonly number[], manifest: Manifest): Layout | string {
  const width = trailing.length === 0 ? 1 : trailing.length === 1 ? trailing[0] : undefined;
  switch (manifest.task) {
    case "binary":
      if (width === 2) return { kind: "probabilities", width };
      if (width === 1) return { kind: "values", width };
      return "[N, 2] class probabilities, or [N] / [N, 1] holding P(class 1)";
    case "multiclass": {
      const classes = manifest.output.labels?.length;
      if (width !== undefined && width === classes) return { kind: "probabilities", width };
      return `[N, ${classes ?? "C"}] class probabilities, one column per label in output.labels`;
    }
    case "regression":
      return width === 1 ? { kind: "values", width } : "[N] or [N, 1], one predicted value per row";
  }
}

/** A loaded ONNX model; see {@link createOnnxEngine}. */
class OnnxEngine implements ModelEngine {
  readonly #manifest: Manifest;
  readonly #session: InferenceSession;
  readonly #input: FloatTensorMetadata;
  readonly #output: FloatTensorMetadata;
  readonly #info: OnnxModelInfo | undefined;
  readonly #featureCount: number;
  #closed = false;

  constructor(
    manifest: Manifest,
    session: InferenceSession,
    input: FloatTensorMetadata,
    output: FloatTensorMetadata,
    info: OnnxModelInfo | undefined,
  ) {
    this.#manifest = manifest;
    this.#session = session;
    this.#input = input;
    this.#output = output;
    this.#info = info;
    this.#featureCount = manifest.modelFeatures.length;
  }

  async predict(input: Float32Array, rows: number): Promise<EngineOutput> {
    const label = `model ${this.#manifest.name} ${this.#manifest.version}`;
    if (this.#closed) throw new WardenError("WARDEN_ERR_MODEL_NOT_READY", `${label} has been unloaded`);
    if (input.length !== rows * this.#featureCount) {
      throw new WardenError(
        "WARDEN_ERR_INTERNAL",
        `${label}: got ${input.length} input values for ${rows} rows of ${this.#featureCount} features`,
      );
    }
    const dims = [rows, this.#featureCount];
    const tensor =
      this.#input.type === "float64"
        ? new Tensor("float64", Float64Array.from(input), dims)
        : new Tensor("float32", input, dims);
    const outputName = this.#output.name;
    let result: InferenceSession.ReturnType;
    try {
      // Fetch only the chosen output: onnxruntime-node cannot return maps ("Non tensor type is temporarily
      // not supported"), so fetching a ZipMap next to the probability tensor would fail every run.
      result = await this.#session.run({ [this.#input.name]: tensor }, [outputName]);
    } catch (error) {
      throw new WardenError(
        "WARDEN_ERR_INFERENCE_FAILED",
        `${label}: onnxruntime failed: ${errorText(error)}`,
        {
          cause: error,
        },
      );
    }
    const output = result[outputName];
    const data = output?.data;
    if (!(data instanceof Float32Array || data instanceof Float64Array)) {
      throw new WardenError(
        "WARDEN_ERR_INFERENCE_FAILED",
        `${label}: output "${outputName}" is not a float tensor`,
      );
    }
    const shape = output?.dims ?? [];
    const layout = outputLayout(shape.slice(1), this.#manifest);
    if (shape[0] !== rows || typeof layout === "string") {
      throw new WardenError(
        "WARDEN_ERR_INFERENCE_FAILED",
        `${label}: output "${outputName}" has shape ${shapeText(shape)} for ${rows} rows; expected ` +
          (typeof layout === "string" ? layout : `[${rows}, ${layout.width}]`),
      );
    }
    const values = Float64Array.from(data);
    if (layout.kind === "probabilities" || this.#manifest.task === "binary") {
      // Decisions compare these with a threshold: scores or logits exported by mistake must not pass as
      // probabilities. A non-finite value (a missing input the model propagates as NaN) is one row's problem,
      // refused by the decision policy for that row's request alone, not a reason to fail the whole batch.
      // Float32 sums may land a rounding error outside [0, 1] (0.1f added ten times is 1.0000001): tolerated, and
      // clamped so that what is decided on and recorded is a probability.
      const bad = values.findIndex(
        (v) => Number.isFinite(v) && !(v >= -PROBABILITY_SLACK && v <= 1 + PROBABILITY_SLACK),
      );
      if (bad < 0) {
        for (let i = 0; i < values.length; i++) {
          const v = values[i]!;
          if (v < 0) values[i] = 0;
          else if (v > 1) values[i] = 1;
        }
      }
      if (bad >= 0) {
        throw new WardenError(
          "WARDEN_ERR_INFERENCE_FAILED",
          `${label}: output "${outputName}" gave ${values[bad]} (row ${Math.floor(bad / layout.width)}), which ` +
            "is not a probability; export the model with its probability output (softmax or sigmoid applied)",
        );
      }
    }
    return { kind: layout.kind, width: layout.width, values };
  }

  describe(): EngineDescription {
    const details: Record<string, string | number | boolean> = {
      input: this.#input.name,
      output: this.#output.name,
      device: this.#manifest.runtime.device,
      intraOpThreads: this.#manifest.runtime.intra_op_threads,
    };
    const info = this.#info;
    if (info !== undefined) {
      const opset = info.opsets.get("ai.onnx");
      if (opset !== undefined) details.opset = opset;
      for (const [domain, version] of info.opsets) {
        if (domain !== "ai.onnx") details[`opset.${domain}`] = version;
      }
      if (info.irVersion !== undefined) details.irVersion = info.irVersion;
      if (info.producer !== undefined) details.producer = info.producer;
    }
    return {
      format: "onnx",
      featureCount: this.#featureCount,
      inputs: [tensorInfo(this.#input, [-1, this.#featureCount])],
      outputs: [
        tensorInfo(
          this.#output,
          this.#output.shape.map((d) => (typeof d === "number" ? d : -1)),
        ),
      ],
      details,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#session.release();
  }
}

function tensorInfo(metadata: FloatTensorMetadata, shape: readonly number[]): TensorInfo {
  return { name: metadata.name, datatype: FLOAT_TYPES[metadata.type], shape };
}

function findValue(values: readonly ValueMetadata[], name: string | undefined): ValueMetadata | undefined {
  return values.find((v) => v.name === name);
}

function isFloatTensor(metadata: ValueMetadata): metadata is FloatTensorMetadata {
  return metadata.isTensor && Object.hasOwn(FLOAT_TYPES, metadata.type);
}

function describeValueType(metadata: ValueMetadata): string {
  return metadata.isTensor ? `of type ${metadata.type}, shape ${shapeText(metadata.shape)}` : "not a tensor";
}

function describeOutputs(outputs: readonly ValueMetadata[]): string {
  return outputs.map((o) => `"${o.name}" (${describeValueType(o)})`).join(", ");
}

/** A shape for messages; symbolic dimensions keep their names, unnamed dynamic ones show as `?`. */
function shapeText(shape: readonly (number | string)[]): string {
  return `[${shape.map((d) => (d === "" ? "?" : String(d))).join(", ")}]`;
}

function quoteAll(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

function artifactInvalid(
  manifest: Manifest,
  problem: string,
  detail: FieldProblem,
  cause?: unknown,
): WardenError {
  return new WardenError(
    "WARDEN_ERR_ARTIFACT_INVALID",
    `${manifest.manifestPath}: artifact ${manifest.artifact.path} of model ${manifest.name}: ${problem}`,
    {
      details: [{ ...detail, field: `${manifest.manifestPath}#${detail.field}` }],
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim();
}
