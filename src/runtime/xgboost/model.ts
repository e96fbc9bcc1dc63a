/**
 * Parser for XGBoost's JSON model format (`booster.save_model("model.json")`, XGBoost 1.0 and later).
 *
 * The trees are flattened into one set of typed arrays shared by all trees, so prediction walks flat
 * memory and a later TreeSHAP module can walk the same arrays (including node covers) without re-parsing.
 */
import { MAX_JSON_MODEL_BYTES, readBoundedFile } from "../../config/index.js";
import { describeValue, WardenError } from "../../errors/index.js";

/** How an objective turns margins into outputs, and how its `base_score` becomes a margin offset. */
export interface ObjectiveSpec {
  /** The link applied to margins: what `booster.predict()` returns compared to `output_margin=True`. */
  readonly link: "sigmoid" | "softmax" | "exp" | "identity";
  /** How XGBoost maps `base_score` (given in output space) to the margin space (`ProbToMargin`). */
  readonly baseScore: "logit" | "log" | "identity";
}

/**
 * The objectives the engine serves, with what XGBoost does for each (src/objective/*.cc, 1.7). Anything
 * else (ranking, survival, binary:hinge, binary:logitraw, ...) is refused rather than guessed.
 */
export const OBJECTIVES: Readonly<Record<string, ObjectiveSpec>> = Object.freeze({
  "binary:logistic": { link: "sigmoid", baseScore: "logit" },
  "reg:logistic": { link: "sigmoid", baseScore: "logit" },
  "multi:softprob": { link: "softmax", baseScore: "identity" },
  "multi:softmax": { link: "softmax", baseScore: "identity" },
  "reg:squarederror": { link: "identity", baseScore: "identity" },
  "reg:squaredlogerror": { link: "identity", baseScore: "identity" },
  "reg:pseudohubererror": { link: "identity", baseScore: "identity" },
  "reg:absoluteerror": { link: "identity", baseScore: "identity" },
  "count:poisson": { link: "exp", baseScore: "log" },
  "reg:gamma": { link: "exp", baseScore: "log" },
  "reg:tweedie": { link: "exp", baseScore: "log" },
});

/**
 * All trees of a model, flattened: tree `t` owns nodes `treeStart[t] .. treeStart[t + 1] - 1` and its root
 * is node `treeStart[t]`. Node arrays are indexed by global node number; child links are global too.
 */
export interface XGBoostTrees {
  /** Number of trees. */
  readonly count: number;
  /** First node of each tree, plus one final entry: the total node count (length `count + 1`). */
  readonly treeStart: Int32Array;
  /** Output group (class, for multi:*) each tree adds to: XGBoost's `tree_info`. */
  readonly treeGroup: Int32Array;
  /** Left child of each node, or -1 for a leaf (a leaf has no right child either). */
  readonly left: Int32Array;
  /** Right child of each node, or -1 for a leaf. */
  readonly right: Int32Array;
  /** Feature (input column) an internal node splits on. */
  readonly feature: Int32Array;
  /** Split threshold of an internal node, as float32: rows with `x < threshold` go left. 0 for leaves. */
  readonly threshold: Float32Array;
  /** 1 when rows missing the split feature (NaN) go left, 0 when they go right. */
  readonly defaultLeft: Uint8Array;
  /** Value a leaf adds to its tree's group margin (DART weight already applied). 0 for internal nodes. */
  readonly leafValue: Float32Array;
  /** Sum of hessians of the training rows that reached each node (XGBoost's `sum_hessian`, the cover). */
  readonly cover: Float32Array;
  /** XGBoost's `base_weights`: each node's weight before the learning rate (and DART weight). */
  readonly baseWeight: Float32Array;
}

/** A parsed, validated XGBoost model. */
export interface XGBoostModel {
  /** The file it came from (used in messages). */
  readonly file: string;
  /** XGBoost version that saved it (`1.7.4`), when recorded. */
  readonly xgboostVersion: string | undefined;
  /** `gbtree`, or `dart` (served with each tree's `weight_drop` folded into its leaves). */
  readonly booster: "gbtree" | "dart";
  /** Objective name (`binary:logistic`, ...), one of {@link OBJECTIVES}. */
  readonly objective: string;
  readonly objectiveSpec: ObjectiveSpec;
  /** Number of input columns (`learner_model_param.num_feature`). */
  readonly numFeature: number;
  /** `learner_model_param.num_class`: the class count for multi:*, 0 otherwise. */
  readonly numClass: number;
  /** Margins per row: `num_class` for multi:*, else 1. */
  readonly groups: number;
  /** Feature names saved with the model (training data frame columns), when any. */
  readonly featureNames: readonly string[] | undefined;
  /** `base_score` as saved (output space: a probability for logistic objectives). */
  readonly baseScore: number;
  /** The margin every row starts from: `base_score` mapped to margin space, as XGBoost computes it. */
  readonly baseMargin: number;
  readonly trees: XGBoostTrees;
  /**
   * `learner.attributes.best_iteration`, when it is before the last round held (training with early stopping
   * kept rounds after the best one): every tree is still used (as `Booster.predict` does), but scikit-learn's
   * `predict_proba` would use only the first best_iteration + 1 rounds.
   */
  readonly bestIteration: number | undefined;
}

const BOOSTER_PATH = "/learner/gradient_booster";

/**
 * Read and parse an XGBoost JSON model file.
 *
 * @throws WardenError WARDEN_ERR_ARTIFACT_INVALID when the file cannot be read or is not a usable model.
 */
export function readXGBoostModel(file: string): XGBoostModel {
  let text: string;
  try {
    text = readBoundedFile(file, MAX_JSON_MODEL_BYTES).toString("utf8");
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_ARTIFACT_INVALID",
      `${file}: cannot read the XGBoost model (${error instanceof Error ? error.message : String(error)})`,
      { details: [{ field: file, expected: "a readable XGBoost JSON model file", found: "unreadable" }] },
    );
  }
  return parseXGBoostModel(text, file);
}

/**
 * Parse and validate the text of an XGBoost JSON model. Every structural fact the predictor relies on
 * (array lengths, child links forming a tree, feature indices in range) is checked here, so a corrupt
 * or hostile file fails at load time instead of crashing or looping at prediction time.
 *
 * @throws WardenError WARDEN_ERR_ARTIFACT_INVALID naming the file, the JSON path, what was expected and found.
 */
export function parseXGBoostModel(text: string, file: string): XGBoostModel {
  let json: unknown;
  try {
    json = parseJsonAllowingNaN(text);
  } catch (error) {
    invalid(
      file,
      "",
      "an XGBoost model in JSON format",
      `text that is not JSON (${error instanceof Error ? error.message : String(error)})`,
      'save the booster with booster.save_model("model.json") — the .json extension selects JSON; ' +
        "the binary (.ubj, .bin, .model) formats are not supported",
    );
  }
  const root = object(json, file, "", "an XGBoost model: an object with a 'learner'");
  const learner = object(root.learner, file, "/learner", "the learner object of an XGBoost JSON model");
  const params = object(
    learner.learner_model_param,
    file,
    "/learner/learner_model_param",
    "an object with base_score, num_class, num_feature",
  );
  const objective = object(
    learner.objective,
    file,
    "/learner/objective",
    "an object with the objective name",
  );
  const objectiveName = objective.name;
  const spec = typeof objectiveName === "string" ? OBJECTIVES[objectiveName] : undefined;
  if (typeof objectiveName !== "string" || spec === undefined) {
    invalid(
      file,
      "/learner/objective/name",
      `one of ${Object.keys(OBJECTIVES).join(", ")}`,
      describeValue(objectiveName),
      "retrain with a supported objective",
    );
  }

  const numFeature = integerParam(params.num_feature, file, "/learner/learner_model_param/num_feature", 1);
  const numClass = integerParam(params.num_class ?? "0", file, "/learner/learner_model_param/num_class", 0);
  const multi = spec.link === "softmax";
  if (multi ? numClass < 2 : numClass > 1) {
    invalid(
      file,
      "/learner/learner_model_param/num_class",
      multi ? `at least 2 for ${objectiveName}` : `0 or 1 for ${objectiveName}`,
      describeValue(numClass),
    );
  }
  const groups = multi ? numClass : 1;
  const numTarget = integerParam(
    params.num_target ?? "1",
    file,
    "/learner/learner_model_param/num_target",
    1,
  );
  if (numTarget !== 1) {
    invalid(
      file,
      "/learner/learner_model_param/num_target",
      "1 (one target)",
      describeValue(numTarget),
      "multi-target models are not supported: train one model per target",
    );
  }
  const baseScore = parseBaseScore(params.base_score, file);
  const baseMargin = marginOfBaseScore(baseScore, spec, objectiveName, file);

  const gradientBooster = object(learner.gradient_booster, file, BOOSTER_PATH, "the gradient booster object");
  let gbtree = gradientBooster;
  let gbtreePath = BOOSTER_PATH;
  let treeWeights: readonly unknown[] | undefined;
  if (gradientBooster.name === "dart") {
    gbtreePath = `${BOOSTER_PATH}/gbtree`;
    gbtree = object(gradientBooster.gbtree, file, gbtreePath, "the trees of a DART booster");
    treeWeights = array(
      gradientBooster.weight_drop,
      file,
      `${BOOSTER_PATH}/weight_drop`,
      "the DART tree weights",
    );
  } else if (gradientBooster.name !== "gbtree") {
    invalid(
      file,
      `${BOOSTER_PATH}/name`,
      'a tree booster: "gbtree" (the default) or "dart"',
      describeValue(gradientBooster.name),
      gradientBooster.name === "gblinear"
        ? "linear boosters (gblinear) are not supported: retrain with booster='gbtree'"
        : "retrain with booster='gbtree'",
    );
  }
  const model = object(gbtree.model, file, `${gbtreePath}/model`, "the tree ensemble");
  const trees = parseTrees(model, `${gbtreePath}/model`, file, numFeature, groups, treeWeights);

  const names = learner.feature_names;
  const featureNames =
    Array.isArray(names) && names.length > 0 && names.every((n) => typeof n === "string")
      ? Object.freeze([...(names as string[])])
      : undefined;
  const version = root.version;
  const attributes = learner.attributes;
  const best =
    typeof attributes === "object" && attributes !== null
      ? (attributes as { best_iteration?: unknown }).best_iteration
      : undefined;
  const recorded = typeof best === "string" && /^\d{1,9}$/.test(best) ? Number(best) : undefined;
  // Boosting rounds held: trees / (output groups × parallel trees per round).
  const param = (model as { gbtree_model_param?: { num_parallel_tree?: unknown } }).gbtree_model_param;
  const parallel = Number(param?.num_parallel_tree ?? 1);
  const rounds = trees.count / (groups * (Number.isSafeInteger(parallel) && parallel > 0 ? parallel : 1));
  // Only when it stopped before the last round held (XGBoost also records it when the last round was best).
  const bestIteration = recorded !== undefined && recorded + 1 < rounds ? recorded : undefined;
  return Object.freeze({
    file,
    xgboostVersion: Array.isArray(version) ? version.join(".") : undefined,
    booster: treeWeights === undefined ? "gbtree" : "dart",
    objective: objectiveName,
    objectiveSpec: spec,
    numFeature,
    numClass,
    groups,
    featureNames,
    baseScore,
    baseMargin,
    trees,
    bestIteration,
  });
}

/**
 * XGBoost's own JSON writer emits a bare `NaN` for some numbers (for instance the split condition of a
 * categorical split), which its reader accepts but JSON does not. Read such numbers as null, so those
 * files reach validation and get a message about what is actually wrong with them.
 */
function parseJsonAllowingNaN(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const lenient = text.replace(/([[,:]\s*)-?NaN(?=\s*[,\]}])/g, "$1null");
    if (lenient === text) throw error;
    return JSON.parse(lenient);
  }
}

/** The per-node arrays every tree in the JSON carries, one entry per node. */
const NODE_ARRAYS = [
  "left_children",
  "right_children",
  "split_indices",
  "split_conditions",
  "default_left",
  "base_weights",
  "sum_hessian",
] as const;

function parseTrees(
  model: Record<string, unknown>,
  path: string,
  file: string,
  numFeature: number,
  groups: number,
  treeWeights: readonly unknown[] | undefined,
): XGBoostTrees {
  const list = array(model.trees, file, `${path}/trees`, "the list of trees");
  const info = array(model.tree_info, file, `${path}/tree_info`, "the output group of each tree");
  if (info.length !== list.length) {
    invalid(file, `${path}/tree_info`, `one entry per tree (${list.length})`, describeValue(info));
  }
  if (treeWeights !== undefined && treeWeights.length !== list.length) {
    invalid(
      file,
      `${BOOSTER_PATH}/weight_drop`,
      `one weight per tree (${list.length})`,
      describeValue(treeWeights),
    );
  }

  // First pass: validate each tree's own arrays and learn the total node count.
  const parsed = list.map((raw, t) => {
    const at = `${path}/trees/${t}`;
    const tree = object(raw, file, at, "a tree object");
    rejectCategorical(tree, at, file);
    const treeParam = object(tree.tree_param, file, `${at}/tree_param`, "the tree's parameters");
    const leafVector = integerParam(
      treeParam.size_leaf_vector ?? "0",
      file,
      `${at}/tree_param/size_leaf_vector`,
      0,
    );
    if (leafVector > 1) {
      invalid(
        file,
        `${at}/tree_param/size_leaf_vector`,
        "0 or 1 (scalar leaves)",
        describeValue(leafVector),
        "vector-leaf (multi-target) trees are not supported",
      );
    }
    const nodes = integerParam(treeParam.num_nodes, file, `${at}/tree_param/num_nodes`, 1);
    const arrays = {} as Record<(typeof NODE_ARRAYS)[number], readonly unknown[]>;
    for (const key of NODE_ARRAYS) {
      const values = array(tree[key], file, `${at}/${key}`, `${nodes} numbers (tree_param.num_nodes)`);
      if (values.length !== nodes) {
        invalid(file, `${at}/${key}`, `${nodes} entries (tree_param.num_nodes)`, describeValue(values));
      }
      arrays[key] = values;
    }
    const group = info[t];
    if (typeof group !== "number" || !Number.isInteger(group) || group < 0 || group >= groups) {
      invalid(
        file,
        `${path}/tree_info/${t}`,
        `an output group from 0 to ${groups - 1}`,
        describeValue(group),
      );
    }
    const weight = treeWeights === undefined ? 1 : treeWeights[t];
    if (typeof weight !== "number" || !Number.isFinite(weight)) {
      invalid(file, `${BOOSTER_PATH}/weight_drop/${t}`, "a finite number", describeValue(weight));
    }
    return { at, nodes, arrays, group, weight };
  });

  const total = parsed.reduce((sum, tree) => sum + tree.nodes, 0);
  const treeStart = new Int32Array(parsed.length + 1);
  const treeGroup = new Int32Array(parsed.length);
  const left = new Int32Array(total);
  const right = new Int32Array(total);
  const feature = new Int32Array(total);
  const threshold = new Float32Array(total);
  const defaultLeft = new Uint8Array(total);
  const leafValue = new Float32Array(total);
  const cover = new Float32Array(total);
  const baseWeight = new Float32Array(total);

  let start = 0;
  parsed.forEach(({ at, nodes, arrays, group, weight }, t) => {
    treeStart[t] = start;
    treeGroup[t] = group;
    const num = (key: (typeof NODE_ARRAYS)[number], i: number): number => {
      const value = arrays[key][i];
      if (typeof value !== "number" || !Number.isFinite(value)) {
        invalid(file, `${at}/${key}/${i}`, "a finite number", describeValue(value));
      }
      return value;
    };
    // Walk from the root so that every reachable node is checked once: child links must stay inside the
    // tree and never revisit a node, or prediction could read out of bounds or loop forever. Unreachable
    // nodes (XGBoost keeps deleted nodes in the arrays) stay zero and are never visited.
    const seen = new Uint8Array(nodes);
    const stack = [0];
    seen[0] = 1;
    while (stack.length > 0) {
      const i = stack.pop()!;
      const g = start + i;
      const l = num("left_children", i);
      const r = num("right_children", i);
      cover[g] = num("sum_hessian", i);
      baseWeight[g] = num("base_weights", i);
      if (l === -1) {
        left[g] = -1;
        right[g] = -1;
        // XGBoost keeps a leaf's value in split_conditions. DART scales each tree's output by its weight,
        // a float32 product of float32 operands: the same rounding here keeps margins bit-identical.
        leafValue[g] = Math.fround(num("split_conditions", i)) * Math.fround(weight);
        continue;
      }
      for (const [key, child] of [
        ["left_children", l],
        ["right_children", r],
      ] as const) {
        if (!Number.isInteger(child) || child <= 0 || child >= nodes || seen[child] === 1) {
          invalid(
            file,
            `${at}/${key}/${i}`,
            `the index of a node of this tree not yet linked (1 to ${nodes - 1})`,
            describeValue(child),
            "the model file is corrupt: save it again from XGBoost",
          );
        }
        seen[child] = 1;
        stack.push(child);
      }
      left[g] = start + l;
      right[g] = start + r;
      const f = num("split_indices", i);
      if (!Number.isInteger(f) || f < 0 || f >= numFeature) {
        invalid(
          file,
          `${at}/split_indices/${i}`,
          `a feature index from 0 to ${numFeature - 1}`,
          describeValue(f),
        );
      }
      feature[g] = f;
      threshold[g] = num("split_conditions", i);
      // 0/1 since XGBoost 1.6; true/false in the files of earlier versions.
      const missingLeft = arrays.default_left[i];
      defaultLeft[g] =
        typeof missingLeft === "boolean" ? Number(missingLeft) : num("default_left", i) !== 0 ? 1 : 0;
    }
    start += nodes;
  });
  treeStart[parsed.length] = total;
  return Object.freeze({
    count: parsed.length,
    treeStart,
    treeGroup,
    left,
    right,
    feature,
    threshold,
    defaultLeft,
    leafValue,
    cover,
    baseWeight,
  });
}

/** Categorical splits test set membership, not `x < threshold`; Warden's encoding makes them unnecessary. */
function rejectCategorical(tree: Record<string, unknown>, at: string, file: string): void {
  const types = tree.split_type;
  const nodes = tree.categories_nodes;
  const node = Array.isArray(types) ? types.findIndex((type) => type !== 0) : -1;
  if (node >= 0 || (Array.isArray(nodes) && nodes.length > 0)) {
    invalid(
      file,
      node >= 0 ? `${at}/split_type/${node}` : `${at}/categories_nodes`,
      "numeric splits only",
      "a categorical split (the model was trained with enable_categorical=True)",
      "Warden feeds a category feature as its index in the manifest's categories list: retrain on those " +
        "codes as ordinary numeric columns (enable_categorical=False)",
    );
  }
}

/** `base_score` is saved as a string (`"5E-1"`; `"[5E-1]"` from XGBoost 2). */
function parseBaseScore(raw: unknown, file: string): number {
  const at = "/learner/learner_model_param/base_score";
  const text = typeof raw === "string" ? raw.trim().replace(/^\[(.*)\]$/, "$1") : "";
  const value = text === "" || text.includes(",") ? Number.NaN : Number(text);
  if (!Number.isFinite(value)) {
    invalid(
      file,
      at,
      'one number as a string ("5E-1")',
      describeValue(raw),
      text.includes(",") ? "models with one intercept per class or target are not supported" : undefined,
    );
  }
  return value;
}

/**
 * The margin offset XGBoost starts every row from (`ObjFunction::ProbToMargin`), computed with the same
 * float32 steps so that margins match XGBoost's bit for bit: `-logf(1.0f / base_score - 1.0f)` for the
 * logistic objectives, `logf(base_score)` for the log-link ones, `base_score` itself otherwise.
 */
function marginOfBaseScore(baseScore: number, spec: ObjectiveSpec, objective: string, file: string): number {
  const b = Math.fround(baseScore);
  const at = "/learner/learner_model_param/base_score";
  switch (spec.baseScore) {
    case "logit":
      if (!(b > 0 && b < 1))
        invalid(file, at, `a probability strictly between 0 and 1 for ${objective}`, `${b}`);
      return Math.fround(-Math.log(Math.fround(Math.fround(1 / b) - 1)));
    case "log":
      if (!(b > 0)) invalid(file, at, `a positive number for ${objective}`, `${b}`);
      return Math.fround(Math.log(b));
    case "identity":
      return b;
  }
}

function integerParam(raw: unknown, file: string, at: string, minimum: number): number {
  // learner_model_param values are strings ("6"); tree_param ones too. Accept plain numbers as well.
  const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < minimum) {
    invalid(file, at, `an integer >= ${minimum}`, describeValue(raw));
  }
  return value;
}

function object(value: unknown, file: string, at: string, expected: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    invalid(
      file,
      at,
      expected,
      describeValue(value),
      'is this an XGBoost JSON model? Save it with booster.save_model("model.json")',
    );
  }
  return value as Record<string, unknown>;
}

function array(value: unknown, file: string, at: string, expected: string): readonly unknown[] {
  if (!Array.isArray(value)) invalid(file, at, expected, describeValue(value));
  return value;
}

function invalid(file: string, at: string, expected: string, found: string, fix?: string): never {
  const where = at === "" ? file : `${file}#${at}`;
  throw new WardenError(
    "WARDEN_ERR_ARTIFACT_INVALID",
    `${where}: not a usable XGBoost model: expected ${expected}, found ${found}${fix ? ` — ${fix}` : ""}`,
    {
      details: [
        fix === undefined ? { field: where, expected, found } : { field: where, expected, found, fix },
      ],
    },
  );
}
