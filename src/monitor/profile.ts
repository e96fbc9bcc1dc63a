/**
 * A reference profile of a model version: what its inputs and scores looked like on reference rows (a
 * holdout or training sample), the baseline the drift monitors compare live windows against.
 *
 * Per model feature: numbers get a DDSketch (quantiles), running moments, the missing and out-of-range
 * rates (against the manifest's min and max) and a seeded reservoir sample of raw values, kept for exact
 * two-sample tests (KS, Wasserstein) later; booleans and categories get their counts, missing included. The
 * model's scores get a sketch, moments and a sample too, and for a binary model the share decided positive.
 * An Isolation Forest fitted on the rows scores each request's strangeness (see anomaly.ts). Provenance
 * (model, version, manifest, artifact and reference file sha256, rows, time) ties the profile to what it
 * describes.
 *
 * The profile is plain JSON data; {@link referenceProfileFromJSON} checks a stored one field by field.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { FeatureSpec, Manifest } from "../config/index.js";
import { seededRandom } from "../explain/random.js";
import {
  fitIsolationForest,
  type IsolationForestJSON,
  type IsolationForestOptions,
  isolationForestFromJSON,
} from "./anomaly.js";
import { createQuantileSketch, type QuantileSketchJSON, quantileSketchFromJSON } from "./sketch.js";
import {
  type CategoryCountsJSON,
  categoryCountsFromJSON,
  createCategoryCounts,
  createMoments,
  type MomentsJSON,
  momentsFromJSON,
} from "./sketch-counts.js";

/** Raw values kept per feature (and for the scores) by default. */
export const DEFAULT_SAMPLE_SIZE = 1000;

/** A seeded uniform sample of values (reservoir sampling, Vitter's Algorithm R), ascending. */
export interface ValueSample {
  /** Values seen; the sample holds min(seen, capacity) of them. */
  readonly seen: number;
  readonly capacity: number;
  readonly values: readonly number[];
}

/** The profile of a number or integer feature, over its present values. */
export interface NumericFeatureProfile {
  readonly name: string;
  readonly type: "number" | "integer";
  readonly kind: "numeric";
  readonly rows: number;
  readonly missing: number;
  readonly missingRate: number;
  /** Present values below the manifest's min or above its max (0 for rows validated as requests are). */
  readonly outOfRange: number;
  readonly outOfRangeRate: number;
  /** The manifest's bounds, null where it sets none. */
  readonly min: number | null;
  readonly max: number | null;
  readonly sketch: QuantileSketchJSON;
  readonly moments: MomentsJSON;
  readonly sample: ValueSample;
}

/** The profile of a boolean ("true"/"false") or category feature: counts per value, missing apart. */
export interface DiscreteFeatureProfile {
  readonly name: string;
  readonly type: "boolean" | "category";
  readonly kind: "discrete";
  readonly rows: number;
  readonly missing: number;
  readonly missingRate: number;
  /** Every value of the feature listed, 0 when unseen, in the manifest's order. */
  readonly counts: CategoryCountsJSON;
}

export type FeatureProfile = NumericFeatureProfile | DiscreteFeatureProfile;

/** The model's policy score on the reference rows (P(positive_label) for binary models). */
export interface ScoreProfile {
  readonly task: Manifest["task"];
  readonly sketch: QuantileSketchJSON;
  readonly moments: MomentsJSON;
  readonly sample: ValueSample;
  /** Binary models: the label decided when score ≥ threshold, the threshold, and the share so decided. */
  readonly positiveLabel: string | null;
  readonly threshold: number | null;
  readonly positiveShare: number | null;
}

/** Where a profile comes from. */
export interface ProfileProvenance {
  readonly model: string;
  readonly version: string;
  readonly manifestSha256: string;
  readonly artifactSha256: string;
  /** sha256 of the reference file's bytes, and its name as given. */
  readonly referenceSha256: string;
  readonly referenceFile: string;
  readonly rows: number;
  /** ISO 8601. */
  readonly createdAt: string;
  /** The seed of the samples and the forest. */
  readonly seed: number;
}

/** A reference profile (JSON data). */
export interface ReferenceProfile {
  readonly kind: "reference-profile";
  readonly version: 1;
  readonly provenance: ProfileProvenance;
  /** One entry per model feature, in model-feature order. */
  readonly features: readonly FeatureProfile[];
  readonly score: ScoreProfile;
  readonly anomaly: IsolationForestJSON;
}

/** Options of {@link buildReferenceProfile}. */
export interface ReferenceProfileOptions {
  /** sha256 of the reference file and its name, for the provenance. */
  readonly referenceSha256: string;
  readonly referenceFile: string;
  /** Seed of the reservoir samples and the Isolation Forest (default 0). */
  readonly seed?: number;
  /** Raw values kept per feature and for the scores (default {@link DEFAULT_SAMPLE_SIZE}). */
  readonly sampleSize?: number;
  /** Relative accuracy of the quantile sketches (default 0.01). */
  readonly relativeAccuracy?: number;
  /** Options of the anomaly forest (its seed is `seed`). */
  readonly anomaly?: Omit<IsolationForestOptions, "seed">;
  /** The time the profile is dated (default now). */
  readonly createdAt?: Date;
}

/**
 * Profile a model version from its reference rows (`rows × manifest.modelFeatures.length` encoded values,
 * row-major, NaN = missing; see explain/reference-stats.ts `readReferenceRows`) and its policy scores for
 * them (explain/model-explainer.ts `policyScores`).
 *
 * @throws RangeError when the sizes disagree, a score is not finite, or an option is out of range.
 */
export function buildReferenceProfile(
  manifest: Manifest,
  input: Float32Array,
  rows: number,
  scores: ArrayLike<number>,
  options: ReferenceProfileOptions,
): ReferenceProfile {
  const features = manifest.modelFeatures;
  const width = features.length;
  const seed = options.seed ?? 0;
  const sampleSize = options.sampleSize ?? DEFAULT_SAMPLE_SIZE;
  const accuracy = options.relativeAccuracy ?? 0.01;
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(sampleSize) || sampleSize < 1) {
    throw new RangeError(`sampleSize must be an integer >= 1, got ${sampleSize}`);
  }
  if (!Number.isInteger(rows) || rows < 1 || input.length !== rows * width || scores.length !== rows) {
    throw new RangeError(
      `a profile needs at least one row: ${rows} rows of ${width} values and ${rows} scores; got ${input.length} values and ${scores.length} scores`,
    );
  }
  const random = seededRandom(seed);
  const profiles = features.map((f, j): FeatureProfile => {
    const values = new Float64Array(rows);
    for (let r = 0; r < rows; r++) values[r] = input[r * width + j]!;
    return f.type === "number" || f.type === "integer"
      ? numericProfile(f, f.type, values, accuracy, reservoir(sampleSize, random))
      : discreteProfile(f, f.type, values);
  });
  const scoreSketch = createQuantileSketch({ relativeAccuracy: accuracy });
  const scoreMoments = createMoments();
  const scoreSample = reservoir(sampleSize, random);
  const binary = manifest.task === "binary" && manifest.output.labels !== undefined;
  const threshold = manifest.output.threshold;
  let positive = 0;
  for (let r = 0; r < rows; r++) {
    const s = scores[r]!;
    if (!Number.isFinite(s)) throw new RangeError(`the model scored reference row ${r} ${s}`);
    scoreSketch.add(s);
    scoreMoments.add(s);
    scoreSample.add(s);
    if (s >= threshold) positive++;
  }
  const forest = fitIsolationForest(input, rows, width, { ...options.anomaly, seed });
  return deepFreeze({
    kind: "reference-profile",
    version: 1,
    provenance: {
      model: manifest.name,
      version: manifest.version,
      manifestSha256: manifest.manifestSha256,
      artifactSha256: manifest.artifact.sha256,
      referenceSha256: options.referenceSha256,
      referenceFile: options.referenceFile,
      rows,
      createdAt: (options.createdAt ?? new Date()).toISOString(),
      seed,
    },
    features: profiles,
    score: {
      task: manifest.task,
      sketch: scoreSketch.toJSON(),
      moments: scoreMoments.toJSON(),
      sample: scoreSample.toJSON(),
      positiveLabel: binary ? manifest.output.labels![manifest.output.positiveIndex]! : null,
      threshold: binary ? threshold : null,
      positiveShare: binary ? positive / rows : null,
    },
    anomaly: forest.toJSON(),
  } satisfies ReferenceProfile);
}

function numericProfile(
  f: FeatureSpec,
  type: "number" | "integer",
  values: Float64Array,
  relativeAccuracy: number,
  sample: Reservoir,
): NumericFeatureProfile {
  const sketch = createQuantileSketch({ relativeAccuracy });
  const moments = createMoments();
  let missing = 0;
  let outOfRange = 0;
  for (const v of values) {
    if (Number.isNaN(v)) {
      missing++;
      continue;
    }
    sketch.add(v);
    moments.add(v);
    sample.add(v);
    if ((f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max)) outOfRange++;
  }
  const rows = values.length;
  const present = rows - missing;
  return {
    name: f.name,
    type,
    kind: "numeric",
    rows,
    missing,
    missingRate: missing / rows,
    outOfRange,
    outOfRangeRate: present > 0 ? outOfRange / present : 0,
    min: f.min ?? null,
    max: f.max ?? null,
    sketch: sketch.toJSON(),
    moments: moments.toJSON(),
    sample: sample.toJSON(),
  };
}

function discreteProfile(
  f: FeatureSpec,
  type: "boolean" | "category",
  values: Float64Array,
): DiscreteFeatureProfile {
  const levels = type === "boolean" ? ["false", "true"] : [...(f.categories ?? [])];
  const tally = new Array<number>(levels.length).fill(0);
  let missing = 0;
  for (const v of values) {
    if (Number.isNaN(v)) missing++;
    else tally[v]! += 1;
  }
  // Counts are added in the manifest's order, every level listed, so that profiles compare key by key.
  const counts = createCategoryCounts({ maxCategories: Math.max(1, levels.length) });
  levels.forEach((level, i) => {
    const n = tally[i]!;
    if (n > 0) counts.add(level, n);
  });
  if (missing > 0) counts.add(null, missing);
  const json = counts.toJSON();
  const all = Object.fromEntries(levels.map((level) => [level, json.counts[level] ?? 0]));
  return {
    name: f.name,
    type,
    kind: "discrete",
    rows: values.length,
    missing,
    missingRate: missing / values.length,
    counts: { ...json, counts: all },
  };
}

interface Reservoir {
  add(value: number): void;
  toJSON(): ValueSample;
}

/** Vitter's Algorithm R: the i-th value (0-based) replaces a random slot with probability capacity/(i + 1). */
function reservoir(capacity: number, random: { int(n: number): number }): Reservoir {
  const kept: number[] = [];
  let seen = 0;
  return {
    add(value) {
      if (kept.length < capacity) kept.push(value);
      else {
        const slot = random.int(seen + 1);
        if (slot < capacity) kept[slot] = value;
      }
      seen++;
    },
    toJSON: () => ({ seen, capacity, values: [...kept].sort((a, b) => a - b) }),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Read a reference profile from its JSON form (as written by `JSON.stringify`), checking every field,
 * the nested sketches, counts and forest included, and that the features agree with each other.
 *
 * @throws TypeError naming the first bad field, e.g. `features[2].sketch: not a DDSketch JSON: ...`.
 */
export function referenceProfileFromJSON(json: unknown): ReferenceProfile {
  const fail = (field: string, what: string): never => {
    throw new TypeError(`not a reference profile: ${field}: ${what}`);
  };
  const nested = (field: string, read: () => unknown): void => {
    try {
      read();
    } catch (error) {
      fail(field, error instanceof Error ? error.message : String(error));
    }
  };
  const object = (v: unknown, field: string): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(field, "expected an object");
    return v as Record<string, unknown>;
  };
  const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
  const isRate = (v: unknown): boolean => typeof v === "number" && v >= 0 && v <= 1;
  const isText = (v: unknown): v is string => typeof v === "string" && v.length > 0;
  const isSha = (v: unknown): boolean => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
  const j = object(json, "(root)");
  if (j.kind !== "reference-profile") fail("kind", `must be "reference-profile", got ${String(j.kind)}`);
  if (j.version !== 1) fail("version", `must be 1, got ${String(j.version)}`);
  const p = object(j.provenance, "provenance");
  for (const key of ["model", "version", "referenceFile"]) {
    if (!isText(p[key])) fail(`provenance.${key}`, "must be a non-empty string");
  }
  // A manifest parsed from an object, not a file, has no sha256 of its own.
  if (!(p.manifestSha256 === "" || isSha(p.manifestSha256))) {
    fail("provenance.manifestSha256", "must be 64 lower-case hex digits");
  }
  for (const key of ["artifactSha256", "referenceSha256"]) {
    if (!isSha(p[key])) fail(`provenance.${key}`, "must be 64 lower-case hex digits");
  }
  if (!isCount(p.rows) || p.rows < 1) fail("provenance.rows", "must be an integer >= 1");
  if (typeof p.createdAt !== "string" || Number.isNaN(Date.parse(p.createdAt))) {
    fail("provenance.createdAt", "must be an ISO 8601 time");
  }
  if (!Number.isInteger(p.seed)) fail("provenance.seed", "must be an integer");
  const rows = p.rows as number;
  const sample = (v: unknown, field: string): void => {
    const s = object(v, field);
    if (!isCount(s.seen) || !isCount(s.capacity) || (s.capacity as number) < 1) {
      fail(field, "seen and capacity must be counts (capacity >= 1)");
    }
    const values = s.values;
    if (
      !Array.isArray(values) ||
      values.length !== Math.min(s.seen as number, s.capacity as number) ||
      !values.every((x) => typeof x === "number" && Number.isFinite(x))
    ) {
      fail(`${field}.values`, "must hold min(seen, capacity) finite numbers");
    }
  };
  if (!Array.isArray(j.features) || j.features.length === 0) fail("features", "must be a non-empty array");
  const features = j.features as unknown[];
  features.forEach((raw, i) => {
    const field = `features[${i}]`;
    const f = object(raw, field);
    if (!isText(f.name)) fail(`${field}.name`, "must be a non-empty string");
    if (f.rows !== rows) fail(`${field}.rows`, `must equal provenance.rows (${rows})`);
    if (!isCount(f.missing) || f.missing > rows) fail(`${field}.missing`, `must be a count <= ${rows}`);
    if (!isRate(f.missingRate)) fail(`${field}.missingRate`, "must lie in [0, 1]");
    if (f.kind === "numeric") {
      if (f.type !== "number" && f.type !== "integer") fail(`${field}.type`, "must be number or integer");
      if (!isCount(f.outOfRange)) fail(`${field}.outOfRange`, "must be a count");
      if (!isRate(f.outOfRangeRate)) fail(`${field}.outOfRangeRate`, "must lie in [0, 1]");
      for (const key of ["min", "max"]) {
        if (f[key] !== null && !(typeof f[key] === "number" && Number.isFinite(f[key]))) {
          fail(`${field}.${key}`, "must be a finite number or null");
        }
      }
      nested(`${field}.sketch`, () => quantileSketchFromJSON(f.sketch));
      nested(`${field}.moments`, () => momentsFromJSON(f.moments));
      sample(f.sample, `${field}.sample`);
    } else if (f.kind === "discrete") {
      if (f.type !== "boolean" && f.type !== "category") fail(`${field}.type`, "must be boolean or category");
      nested(`${field}.counts`, () => categoryCountsFromJSON(f.counts));
    } else {
      fail(`${field}.kind`, `must be "numeric" or "discrete", got ${String(f.kind)}`);
    }
  });
  const width = features.length;
  const score = object(j.score, "score");
  if (!["binary", "multiclass", "regression"].includes(score.task as string)) {
    fail("score.task", "must be binary, multiclass or regression");
  }
  nested("score.sketch", () => quantileSketchFromJSON(score.sketch));
  nested("score.moments", () => momentsFromJSON(score.moments));
  sample(score.sample, "score.sample");
  if (score.task === "binary") {
    if (!isText(score.positiveLabel)) fail("score.positiveLabel", "must name the positive label");
    if (!isRate(score.threshold)) fail("score.threshold", "must lie in [0, 1]");
    if (!isRate(score.positiveShare)) fail("score.positiveShare", "must lie in [0, 1]");
  } else {
    for (const key of ["positiveLabel", "threshold", "positiveShare"]) {
      if (score[key] !== null) fail(`score.${key}`, "must be null for a model that is not binary");
    }
  }
  let forestWidth = 0;
  nested("anomaly", () => {
    forestWidth = isolationForestFromJSON(j.anomaly).width;
  });
  if (forestWidth !== width) fail("anomaly.width", `must equal the number of features (${width})`);
  return deepFreeze(structuredClone(j) as unknown as ReferenceProfile);
}

/** Where a data folder keeps a model version's profile: `<data_dir>/profiles/<model>/<version>.json`. */
export function profilePath(dataDir: string, model: string, version: string): string {
  return join(resolve(dataDir), "profiles", model, `${version}.json`);
}

/**
 * Write a profile to `target` through a temporary file and a rename, so a reader never sees half of one.
 *
 * @throws the file system's error when the folder or file cannot be written.
 */
export function saveProfile(target: string, profile: ReferenceProfile): void {
  const temporary = `${target}.${process.pid}.tmp`;
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(temporary, `${JSON.stringify(profile)}\n`);
  renameSync(temporary, target);
}
