import type { FeatureSpec, Manifest } from "../config/index.js";
import { describeValue, type FieldProblem } from "../errors/index.js";

/** A feature value after validation: what is recorded in the ledger. */
export type FeatureValue = number | boolean | string | null;

/** One validated instance: clean records for the ledger and the encoded model row. */
export interface ValidInstance {
  /** Model features by name, as received (validated). */
  readonly inputs: Readonly<Record<string, FeatureValue>>;
  /** Sensitive attributes by name (recorded for fairness, never fed to the model). */
  readonly subject: Readonly<Record<string, FeatureValue>>;
  /** `manifest.modelFeatures.length` float32 values in the model's encoding. */
  readonly row: Float32Array;
}

function expectedText(f: FeatureSpec): string {
  const range =
    f.min !== undefined && f.max !== undefined
      ? ` between ${f.min} and ${f.max}`
      : f.min !== undefined
        ? ` >= ${f.min}`
        : f.max !== undefined
          ? ` <= ${f.max}`
          : "";
  const base =
    f.type === "number"
      ? `a finite number${range}`
      : f.type === "integer"
        ? `an integer${range}`
        : f.type === "boolean"
          ? "true or false"
          : `one of ${(f.categories ?? []).map((c) => JSON.stringify(c)).join(", ")}`;
  return f.nullable ? `${base}, or null` : base;
}

/**
 * Check one value against its feature spec. Returns the problem, or undefined when the value is valid.
 * Missing and null are accepted only for `nullable` features.
 */
export function checkValue(f: FeatureSpec, value: unknown, field: string): FieldProblem | undefined {
  if (value === undefined || value === null) {
    return f.nullable || f.sensitive
      ? undefined
      : {
          field,
          expected: expectedText(f),
          found: describeValue(value),
          fix: value === undefined ? `add "${f.name}"` : `"${f.name}" is not nullable: send a value`,
        };
  }
  const bad = (fix?: string): FieldProblem => ({
    field,
    expected: expectedText(f),
    found: describeValue(value),
    ...(fix ? { fix } : {}),
  });
  switch (f.type) {
    case "number":
    case "integer": {
      if (typeof value !== "number") {
        return bad(
          typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))
            ? "send a JSON number, not a string"
            : undefined,
        );
      }
      if (!Number.isFinite(value)) return bad();
      // The model receives float32: a double beyond its range would arrive as ±Infinity.
      if (!Number.isFinite(Math.fround(value))) return bad("the value is beyond the model's float32 range");
      if (f.type === "integer" && !Number.isInteger(value)) return bad("round it to a whole number");
      if ((f.min !== undefined && value < f.min) || (f.max !== undefined && value > f.max)) {
        return bad("the value is out of the range the model was validated for");
      }
      return undefined;
    }
    case "boolean":
      return typeof value === "boolean" ? undefined : bad();
    case "category":
      if (typeof value !== "string") return bad();
      return f.categories?.includes(value) ? undefined : bad("categories are case-sensitive");
  }
}

/** CSV cells read as missing, true and false (booleans case-insensitively). */
const MISSING = new Set(["", "NA", "na", "null", "NULL", "NaN"]);
const TRUE = new Set(["true", "yes", "y", "t", "1"]);
const FALSE = new Set(["false", "no", "n", "f", "0"]);

/** A CSV cell → a typed value for its feature; unparsable text is kept as-is so validation reports it. */
export function coerceCsvCell(spec: FeatureSpec, cell: string | undefined): unknown {
  if (cell === undefined) return undefined;
  const text = cell.trim();
  if (MISSING.has(text)) return null;
  switch (spec.type) {
    case "number":
    case "integer": {
      const n = Number(text);
      return Number.isNaN(n) ? cell : n;
    }
    case "boolean": {
      const lower = text.toLowerCase();
      return TRUE.has(lower) ? true : FALSE.has(lower) ? false : cell;
    }
    case "category":
      return text;
  }
}

/** Encode one valid value for the model (numbers as-is, booleans 0/1, categories as their index, null NaN). */
export function encodeValue(f: FeatureSpec, value: FeatureValue): number {
  if (value === null) return Number.NaN;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "string") return f.categories!.indexOf(value);
  return value;
}

/** A client-chosen key as shown in an error: long keys are cut, so an error never echoes a huge body. */
function shownKey(key: string): string {
  return key.length > 64 ? `${key.slice(0, 60)}...` : key;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What validation needs from a manifest, worked out once per manifest rather than per request. */
interface FeatureLookup {
  readonly byName: ReadonlyMap<string, FeatureSpec>;
  /** Model features as [column in the row, spec], sorted by name (UTF-16 order, as canonical JSON sorts keys). */
  readonly modelSorted: readonly (readonly [number, FeatureSpec])[];
  /** Sensitive attributes sorted by name. */
  readonly sensitiveSorted: readonly FeatureSpec[];
}

const lookups = new WeakMap<Manifest, FeatureLookup>();

function lookupOf(manifest: Manifest): FeatureLookup {
  let lookup = lookups.get(manifest);
  if (lookup === undefined) {
    const byName = (a: { name: string }, b: { name: string }) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    lookup = {
      byName: new Map(manifest.features.map((f) => [f.name, f])),
      modelSorted: manifest.modelFeatures.map((f, i) => [i, f] as const).sort((a, b) => byName(a[1], b[1])),
      sensitiveSorted: [...manifest.sensitiveFeatures].sort(byName),
    };
    lookups.set(manifest, lookup);
  }
  return lookup;
}

/**
 * Validate one instance's `features` and `subject` against the manifest and encode it. Every problem is
 * reported (unknown, missing, mistyped, out of range, NaN/Infinity, wrong category, sensitive attribute
 * sent as a feature), each with its field path under `prefix`.
 */
export function validateInstance(
  manifest: Manifest,
  features: unknown,
  subject: unknown,
  prefix: string,
): { instance?: ValidInstance; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  if (!isPlainObject(features)) {
    problems.push({
      field: `${prefix}features`,
      expected: "an object of feature name → value",
      found: describeValue(features),
    });
    return { problems };
  }
  if (subject !== undefined && !isPlainObject(subject)) {
    problems.push({
      field: `${prefix}subject`,
      expected: "an object of sensitive attribute name → value",
      found: describeValue(subject),
    });
    return { problems };
  }
  const { byName, modelSorted, sensitiveSorted } = lookupOf(manifest);
  for (const key of Object.keys(features)) {
    const spec = byName.get(key);
    if (spec === undefined) {
      problems.push({
        field: `${prefix}features.${shownKey(key)}`,
        expected: "no such feature",
        found: describeValue(features[key]),
        fix: `remove it; the model's features are ${manifest.modelFeatures.map((f) => f.name).join(", ")}`,
      });
    } else if (spec.sensitive) {
      problems.push({
        field: `${prefix}features.${key}`,
        expected: "no sensitive attribute among the features",
        found: describeValue(features[key]),
        fix: `"${key}" is sensitive: send it in "subject" (recorded for fairness monitoring, never fed to the model)`,
      });
    }
  }
  const subjectRecord = (subject ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(subjectRecord)) {
    const spec = byName.get(key);
    if (spec === undefined || !spec.sensitive) {
      problems.push({
        field: `${prefix}subject.${shownKey(key)}`,
        expected: "a sensitive attribute declared in the manifest",
        found: describeValue(subjectRecord[key]),
        fix:
          spec === undefined
            ? `remove it; the sensitive attributes are ${manifest.sensitiveFeatures.map((f) => f.name).join(", ") || "(none)"}`
            : `"${key}" is a model feature: send it in "features"`,
      });
    }
  }
  const row = new Float32Array(manifest.modelFeatures.length);
  // Records are built in key order, so the ledger's canonical JSON finds them sorted.
  const inputs: Record<string, FeatureValue> = {};
  for (const [i, f] of modelSorted) {
    // Own properties only: a feature named like an Object.prototype member must not read the prototype.
    const value = Object.hasOwn(features, f.name) ? features[f.name] : undefined;
    const problem = checkValue(f, value, `${prefix}features.${f.name}`);
    if (problem !== undefined) problems.push(problem);
    else {
      const clean = (value ?? null) as FeatureValue;
      inputs[f.name] = clean;
      row[i] = encodeValue(f, clean);
    }
  }
  const subjectOut: Record<string, FeatureValue> = {};
  for (const f of sensitiveSorted) {
    const value = Object.hasOwn(subjectRecord, f.name) ? subjectRecord[f.name] : undefined;
    if (value === undefined) continue;
    const problem = checkValue(f, value, `${prefix}subject.${f.name}`);
    if (problem !== undefined) problems.push(problem);
    else subjectOut[f.name] = value as FeatureValue;
  }
  if (problems.length > 0) return { problems };
  return { instance: { inputs, subject: subjectOut, row }, problems };
}
