/**
 * Reference statistics: what typical rows look like, worked out once when a model loads from its reference
 * rows (`policy.explanations.reference`, e.g. a holdout set) and the model's scores for them.
 *
 * Reason codes quote the values of typical approved subjects ("typical approved: at most 450"), so the
 * quantiles and category counts are taken over the rows the model decides favourably. Counterfactual
 * distances divide a change by the feature's spread over all rows (the median absolute deviation, as in
 * Wachter, Mittelstadt and Russell 2017), so one unit means "a typical difference between subjects" for
 * every feature.
 *
 * The result is plain JSON data (no typed arrays, no NaN): it can be stored, sent to a worker, and read back.
 */
import { parse } from "csv-parse/sync";
import { type FeatureSpec, MAX_REFERENCE_BYTES, type Manifest, readBoundedFile } from "../config/index.js";
import { coerceCsvCell, validateInstance } from "../decision/index.js";
import { capProblems, type FieldProblem, formatProblems, WardenError } from "../errors/index.js";
import { binaryOutcomes } from "./outcome.js";

/** Quantile levels kept for each numeric feature, over the favourable rows. */
export const QUANTILE_LEVELS: readonly number[] = Object.freeze([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]);

/** The most reference rows read: statistics settle long before, and every row is scored at load. */
export const MAX_REFERENCE_ROWS = 100_000;

/** Statistics of a number or integer feature. */
export interface NumericStats {
  readonly name: string;
  readonly kind: "numeric";
  /** Over the rows decided favourably. */
  readonly favorable: {
    /** Rows with a value, and rows without (missing). */
    readonly present: number;
    readonly missing: number;
    /** Values at {@link QUANTILE_LEVELS} (linear interpolation between order statistics); empty when present is 0. */
    readonly quantiles: readonly number[];
  };
  /** Over all reference rows. */
  readonly all: {
    readonly present: number;
    readonly missing: number;
    /** Smallest, middle and largest value; null when no row has a value. */
    readonly min: number | null;
    readonly median: number | null;
    readonly max: number | null;
    /**
     * The feature's spread, in its own units, always > 0: the median absolute deviation; where that is 0
     * (more than half the rows share one value), half the interquartile range; then the mean absolute
     * deviation from the median; 1 for a constant or absent feature.
     */
    readonly scale: number;
  };
}

/** Statistics of a boolean or category feature: counts per value (booleans as "true" and "false"). */
export interface DiscreteStats {
  readonly name: string;
  readonly kind: "discrete";
  readonly favorable: {
    readonly present: number;
    readonly missing: number;
    /** Rows per value, every value listed (0 when unseen), in the feature's order. */
    readonly counts: Readonly<Record<string, number>>;
  };
  readonly all: {
    readonly present: number;
    readonly missing: number;
    readonly counts: Readonly<Record<string, number>>;
  };
}

export type FeatureStats = NumericStats | DiscreteStats;

/** Reference statistics of one model, per model feature. */
export interface ReferenceStats {
  /** Reference rows, and how many of them the model decides favourably. */
  readonly rows: number;
  readonly favorableRows: number;
  /** The favourable label the split was made by. */
  readonly favorableLabel: string;
  /** The levels of every numeric feature's `quantiles`. */
  readonly quantileLevels: readonly number[];
  /** One entry per model feature, in model-feature order. */
  readonly features: readonly FeatureStats[];
}

/** Reference rows in the model's encoding (see explain/types.ts). */
export interface ReferenceRows {
  /** `rows × manifest.modelFeatures.length` float32 values, row-major, NaN = missing. */
  readonly input: Float32Array;
  readonly rows: number;
}

/**
 * Read a CSV file of reference rows (a header naming at least every model feature; other columns, such
 * as the label or sensitive attributes, are ignored) and encode it as the model sees it. Cells are read as
 * `warden predict` reads CSV input: empty, NA or null are missing; booleans as true/false, yes/no, 1/0.
 * `bytes`: the file's contents, when the caller has read them already.
 *
 * @throws WardenError WARDEN_ERR_MANIFEST_INVALID naming the manifest field, the file, and every bad cell
 *   (line and feature, expected, found), or a missing column, an empty file, or more than
 *   {@link MAX_REFERENCE_ROWS} rows.
 */
export function readReferenceRows(manifest: Manifest, path: string, bytes?: Buffer): ReferenceRows {
  const fail = (problems: FieldProblem[], what: string): never => {
    const capped = capProblems(problems);
    throw new WardenError(
      "WARDEN_ERR_MANIFEST_INVALID",
      `${manifest.manifestPath}: the reference rows of /policy/explanations/reference (${path}) ${what}\n${formatProblems(capped)}`,
      { details: capped },
    );
  };
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parse(bytes ?? readBoundedFile(path, MAX_REFERENCE_BYTES), {
      columns: true,
      bom: true,
      info: true,
      skip_empty_lines: true,
    });
  } catch (error) {
    return fail(
      [
        {
          field: path,
          expected: "a readable CSV file with a header row",
          found: error instanceof Error ? error.message : String(error),
          fix: "check /policy/explanations/reference in the manifest",
        },
      ],
      "cannot be read",
    );
  }
  const features = manifest.modelFeatures;
  const header = records.length > 0 ? Object.keys(records[0]!.record) : [];
  const absent = features.filter((f) => !header.includes(f.name)).map((f) => f.name);
  if (records.length === 0 || absent.length > 0) {
    fail(
      [
        {
          field: `${path}: header`,
          expected: `a header and rows with a column for every model feature (${features.map((f) => f.name).join(", ")})`,
          found: records.length === 0 ? "no rows" : `no column ${absent.join(", ")}`,
        },
      ],
      "do not fit the model",
    );
  }
  if (records.length > MAX_REFERENCE_ROWS) {
    fail(
      [
        {
          field: path,
          expected: `at most ${MAX_REFERENCE_ROWS} rows`,
          found: `${records.length} rows`,
          fix: "keep a random sample of the rows",
        },
      ],
      "are too many",
    );
  }
  const width = features.length;
  const input = new Float32Array(records.length * width);
  const problems: FieldProblem[] = [];
  records.forEach(({ record, info }, r) => {
    const values: Record<string, unknown> = {};
    for (const f of features) values[f.name] = coerceCsvCell(f, record[f.name]);
    const { instance, problems: rowProblems } = validateInstance(manifest, values, undefined, "");
    if (instance === undefined) {
      // csv-parse counts the lines read so far: the record ends on line `lines`.
      for (const p of rowProblems) problems.push({ ...p, field: `${path}:${info.lines}: ${p.field}` });
    } else input.set(instance.row, r * width);
  });
  if (problems.length > 0) fail(problems, `have ${problems.length} invalid cells`);
  return { input, rows: records.length };
}

/**
 * {@link readReferenceRows} for a file a person names (on the command line, in a request) rather than the
 * manifest: the same checks, reported as that input's problem (WARDEN_ERR_INPUT_FILE), not the manifest's.
 */
export function readInputReferenceRows(manifest: Manifest, path: string, bytes: Buffer): ReferenceRows {
  try {
    return readReferenceRows(manifest, path, bytes);
  } catch (error) {
    if (!(error instanceof WardenError)) throw error;
    const details = error.details.map((d) => ({
      ...d,
      fix: "give a CSV with a header naming every model feature, and valid rows (as warden predict reads them)",
    }));
    throw new WardenError(
      "WARDEN_ERR_INPUT_FILE",
      `${path}: cannot profile ${manifest.name} ${manifest.version} on these rows\n${formatProblems(details)}`,
      { details, cause: error },
    );
  }
}

/**
 * Work out the reference statistics from encoded reference rows and the model's scores for them (the
 * score the policy thresholds: P(positive_label)).
 *
 * @throws RangeError when the manifest is not binary, the sizes disagree, or a score is not finite.
 */
export function computeReferenceStats(
  manifest: Manifest,
  reference: ReferenceRows,
  scores: Float64Array,
): ReferenceStats {
  const outcomes = binaryOutcomes(manifest);
  const { input, rows } = reference;
  const features = manifest.modelFeatures;
  const width = features.length;
  if (input.length !== rows * width || scores.length !== rows) {
    throw new RangeError(
      `reference statistics need ${rows} rows of ${width} values and ${rows} scores; got ${input.length} values and ${scores.length} scores`,
    );
  }
  const favorable = new Uint8Array(rows);
  let favorableRows = 0;
  for (let r = 0; r < rows; r++) {
    const score = scores[r]!;
    if (!Number.isFinite(score)) throw new RangeError(`the model scored reference row ${r} ${score}`);
    if (outcomes.isFavorable(score)) {
      favorable[r] = 1;
      favorableRows++;
    }
  }
  const stats = features.map((f, j) =>
    f.type === "number" || f.type === "integer"
      ? numericStats(f, column(input, rows, width, j), favorable)
      : discreteStats(f, column(input, rows, width, j), favorable),
  );
  return deepFreeze({
    rows,
    favorableRows,
    favorableLabel: outcomes.favorable,
    quantileLevels: [...QUANTILE_LEVELS],
    features: stats,
  });
}

/**
 * The `p` quantile (0 ≤ p ≤ 1) of ascending `sorted` values, interpolating linearly between the order
 * statistics at positions p·(n − 1) (Hyndman and Fan's type 7, the default of R and NumPy). NaN when empty.
 */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** The statistics of a model feature by name, or undefined. */
export function statsOf(stats: ReferenceStats, name: string): FeatureStats | undefined {
  return stats.features.find((f) => f.name === name);
}

/** A feature's favourable quantile at `level` (one of {@link QUANTILE_LEVELS}), or undefined when there is none. */
export function favorableQuantile(stats: NumericStats, level: number): number | undefined {
  const i = QUANTILE_LEVELS.indexOf(level);
  return i >= 0 && stats.favorable.quantiles.length > 0 ? stats.favorable.quantiles[i] : undefined;
}

function column(input: Float32Array, rows: number, width: number, j: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) out[r] = input[r * width + j]!;
  return out;
}

function numericStats(f: FeatureSpec, values: Float64Array, favorable: Uint8Array): NumericStats {
  const all: number[] = [];
  const good: number[] = [];
  values.forEach((v, r) => {
    if (Number.isNaN(v)) return;
    all.push(v);
    if (favorable[r] === 1) good.push(v);
  });
  const ascending = (a: number, b: number) => a - b;
  all.sort(ascending);
  good.sort(ascending);
  const favorableRows = favorable.reduce((sum, x) => sum + x, 0);
  const median = quantile(all, 0.5);
  return {
    name: f.name,
    kind: "numeric",
    favorable: {
      present: good.length,
      missing: favorableRows - good.length,
      quantiles: good.length === 0 ? [] : QUANTILE_LEVELS.map((p) => quantile(good, p)),
    },
    all: {
      present: all.length,
      missing: values.length - all.length,
      min: all.length === 0 ? null : all[0]!,
      median: all.length === 0 ? null : median,
      max: all.length === 0 ? null : all[all.length - 1]!,
      scale: spread(all, median),
    },
  };
}

/** The scale documented on {@link NumericStats}: MAD, else IQR / 2, else mean absolute deviation, else 1. */
function spread(sorted: readonly number[], median: number): number {
  if (sorted.length === 0) return 1;
  const deviations = sorted.map((v) => Math.abs(v - median)).sort((a, b) => a - b);
  const mad = quantile(deviations, 0.5);
  if (mad > 0) return mad;
  const halfIqr = (quantile(sorted, 0.75) - quantile(sorted, 0.25)) / 2;
  if (halfIqr > 0) return halfIqr;
  const meanDeviation = deviations.reduce((sum, d) => sum + d, 0) / deviations.length;
  return meanDeviation > 0 ? meanDeviation : 1;
}

function discreteStats(f: FeatureSpec, values: Float64Array, favorable: Uint8Array): DiscreteStats {
  const names = f.type === "boolean" ? ["false", "true"] : [...(f.categories ?? [])];
  const all = new Array<number>(names.length).fill(0);
  const good = new Array<number>(names.length).fill(0);
  let allMissing = 0;
  let goodMissing = 0;
  values.forEach((v, r) => {
    if (Number.isNaN(v)) {
      allMissing++;
      goodMissing += favorable[r]!;
      return;
    }
    all[v]! += 1;
    good[v]! += favorable[r]!;
  });
  const record = (counts: number[]) => Object.fromEntries(names.map((name, i) => [name, counts[i]!]));
  const sum = (counts: number[]) => counts.reduce((a, b) => a + b, 0);
  return {
    name: f.name,
    kind: "discrete",
    favorable: { present: sum(good), missing: goodMissing, counts: record(good) },
    all: { present: sum(all), missing: allMissing, counts: record(all) },
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
