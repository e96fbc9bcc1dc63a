/**
 * The native XGBoost engine: serves an XGBoost JSON model in-process, with no native dependency, giving
 * the same numbers as XGBoost's own CPU predictor.
 */
import { readFile } from "node:fs/promises";
import type { Manifest, Task } from "../../config/index.js";
import { type FieldProblem, formatProblems, WardenError } from "../../errors/index.js";
import type { EngineDescription, EngineOutput, ModelEngine } from "../types.js";
import { parseXGBoostModel, readXGBoostModel, type XGBoostModel } from "./model.js";
import { computeMargins, sigmoid, softmaxRows } from "./predict.js";

/** Which manifest tasks each objective may serve. */
function tasksOf(objective: string): readonly Task[] {
  if (objective === "binary:logistic") return ["binary"];
  // reg:logistic predicts a probability: P(class 1) for a binary task, or a proportion for regression.
  if (objective === "reg:logistic") return ["binary", "regression"];
  if (objective.startsWith("multi:")) return ["multiclass"];
  return ["regression"];
}

const SUGGESTED_OBJECTIVE: Readonly<Record<Task, string>> = {
  binary: "binary:logistic",
  multiclass: "multi:softprob",
  regression: "reg:squarederror",
};

/**
 * An XGBoost model bound to its manifest, usable synchronously in-process. Construction validates the
 * model against the manifest (feature count and names, task versus objective, class count).
 *
 * Outputs: binary:logistic → `probabilities` `[P(class 0), P(class 1)]`; multi:softprob and multi:softmax
 * → `probabilities` per class (multi:softmax too: the class XGBoost would pick is their argmax);
 * reg:logistic and the regression objectives → `values`, one per row. Margins always come along.
 */
export class XGBoostEngine implements ModelEngine {
  /** The parsed model (typed-array trees), for explainers that walk the same trees. */
  readonly model: XGBoostModel;
  readonly #output: { readonly kind: EngineOutput["kind"]; readonly width: number };
  readonly #description: EngineDescription;

  /**
   * @param manifest the model's manifest; its artifact is read synchronously unless `model` is given.
   * @param model the already-parsed artifact (as {@link createXGBoostEngine} passes after an async read).
   * @throws WardenError WARDEN_ERR_ARTIFACT_INVALID when the file is not a usable XGBoost model or does not
   *   fit the manifest.
   */
  constructor(manifest: Manifest, model: XGBoostModel = readXGBoostModel(manifest.artifact.absolutePath)) {
    checkFitsManifest(model, manifest);
    this.model = model;
    const objective = model.objective;
    this.#output =
      objective === "binary:logistic"
        ? { kind: "probabilities", width: 2 }
        : model.objectiveSpec.link === "softmax"
          ? { kind: "probabilities", width: model.groups }
          : { kind: "values", width: 1 };
    const { kind, width } = this.#output;
    this.#description = Object.freeze({
      format: "xgboost-json",
      featureCount: model.numFeature,
      inputs: Object.freeze([{ name: "input", datatype: "FP32", shape: [-1, model.numFeature] }]),
      outputs: Object.freeze([
        { name: kind, datatype: "FP64", shape: [-1, width] },
        { name: "margins", datatype: "FP64", shape: [-1, model.groups] },
      ]),
      details: Object.freeze({
        objective,
        booster: model.booster,
        trees: model.trees.count,
        num_class: model.numClass,
        base_score: model.baseScore,
        ...(model.xgboostVersion === undefined ? {} : { xgboost_version: model.xgboostVersion }),
        // Early stopping recorded: every round is used, as Booster.predict does (not scikit-learn's predict_proba).
        ...(model.bestIteration === undefined
          ? {}
          : {
              best_iteration: model.bestIteration,
              early_stopping:
                "every tree is used, as Booster.predict does; to serve the best iteration, save booster[: best_iteration + 1]",
            }),
      }),
    });
  }

  /**
   * Predict `rows` rows of `input` (row-major `rows × featureCount` float32, NaN = missing).
   *
   * @throws WardenError WARDEN_ERR_INTERNAL when `input` does not hold `rows × featureCount` numbers.
   */
  predict(input: Float32Array, rows: number): EngineOutput {
    const model = this.model;
    if (!Number.isInteger(rows) || rows < 0 || input.length !== rows * model.numFeature) {
      throw new WardenError(
        "WARDEN_ERR_INTERNAL",
        `XGBoost engine for ${model.file}: input holds ${input.length} numbers, expected ${rows} rows × ` +
          `${model.numFeature} features`,
      );
    }
    const groups = model.groups;
    const margins = new Float64Array(rows * groups);
    computeMargins(model, input, rows, margins);
    const { kind, width } = this.#output;
    const values = new Float64Array(rows * width);
    switch (model.objectiveSpec.link) {
      case "sigmoid":
        for (let row = 0; row < rows; row++) {
          const p = sigmoid(margins[row]!);
          if (width === 2) {
            values[2 * row] = 1 - p;
            values[2 * row + 1] = p;
          } else {
            values[row] = p;
          }
        }
        break;
      case "softmax":
        softmaxRows(margins, groups, values);
        break;
      case "exp":
        // count:poisson, reg:gamma and reg:tweedie predict exp(margin), in float32 like XGBoost.
        for (let row = 0; row < rows; row++) values[row] = Math.fround(Math.exp(margins[row]!));
        break;
      case "identity":
        values.set(margins);
        break;
    }
    return { kind, width, values, margins, marginWidth: groups };
  }

  /** Format, feature count, tensors and the model's objective, tree count, class count and base_score. */
  describe(): EngineDescription {
    return this.#description;
  }

  /** Nothing to release: the model is plain memory. */
  close(): void {}
}

/**
 * Build the engine for a manifest whose artifact is an XGBoost JSON model, reading the file without
 * blocking the thread.
 *
 * @throws WardenError WARDEN_ERR_ARTIFACT_INVALID (unreadable file, not a usable model, or a model that
 *   does not fit the manifest).
 */
export async function createXGBoostEngine(manifest: Manifest): Promise<XGBoostEngine> {
  const file = manifest.artifact.absolutePath;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_ARTIFACT_INVALID",
      `${manifest.manifestPath}: cannot read the XGBoost model ${file} ` +
        `(${error instanceof Error ? error.message : String(error)})`,
      {
        details: [
          {
            field: `${manifest.manifestPath}#/artifact/path`,
            expected: "a readable XGBoost JSON model file, relative to the manifest",
            found: file,
          },
        ],
      },
    );
  }
  return new XGBoostEngine(manifest, parseXGBoostModel(text, file));
}

/** Every way the model and the manifest can disagree, reported together. */
function checkFitsManifest(model: XGBoostModel, manifest: Manifest): void {
  const problems: FieldProblem[] = [];
  const at = (pointer: string) => `${manifest.manifestPath}#${pointer}`;
  if (manifest.artifact.format !== "xgboost-json") {
    problems.push({
      field: at("/artifact/format"),
      expected: "xgboost-json for the XGBoost engine",
      found: JSON.stringify(manifest.artifact.format),
    });
  }
  const names = manifest.modelFeatures.map((f) => f.name);
  if (model.numFeature !== names.length) {
    problems.push({
      field: at("/features"),
      expected: `${model.numFeature} non-sensitive features, the model's input columns (learner_model_param.num_feature)`,
      found: `${names.length} non-sensitive features (${names.join(", ")})`,
      fix:
        "list the model's training columns, in training order, as the manifest's non-sensitive features; " +
        "sensitive features are never fed to the model",
    });
  } else if (model.featureNames?.some((name, i) => name !== names[i])) {
    problems.push({
      field: at("/features"),
      expected: `the model's feature names, in order: ${model.featureNames.join(", ")}`,
      found: names.join(", "),
      fix: "name and order the non-sensitive features exactly as the columns the model was trained on",
    });
  }
  const tasks = tasksOf(model.objective);
  if (!tasks.includes(manifest.task)) {
    problems.push({
      field: at("/task"),
      expected: `${tasks.join(" or ")} for a model trained with objective ${model.objective}`,
      found: JSON.stringify(manifest.task),
      fix: `set task to ${tasks[0]}, or serve a model trained with ${SUGGESTED_OBJECTIVE[manifest.task]}`,
    });
  } else if (manifest.task === "multiclass" && manifest.output.labels?.length !== model.numClass) {
    problems.push({
      field: at("/output/labels"),
      expected: `${model.numClass} labels, one per class of the model (learner_model_param.num_class)`,
      found: `${manifest.output.labels?.length ?? 0} labels`,
    });
  }
  if (problems.length > 0) {
    throw new WardenError(
      "WARDEN_ERR_ARTIFACT_INVALID",
      `${model.file}: the XGBoost model does not fit the manifest ${manifest.manifestPath}\n` +
        formatProblems(problems),
      { details: problems },
    );
  }
}
