/** Query-string parameters checked by hand, so that every problem names the field, what was expected and found. */
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";

/** The refusal of a request whose query parameters are invalid, listing every problem. */
export function invalidQuery(problems: readonly FieldProblem[]): WardenError {
  return new WardenError(
    "WARDEN_ERR_VALIDATION",
    `${problems.length} invalid query parameter${problems.length === 1 ? "" : "s"}: ${problems.map((p) => p.field).join(", ")}`,
    { details: problems },
  );
}

/** A whole number from `min` to `max`, from a query string value; `fallback` when absent. */
export function wholeNumber(
  value: unknown,
  field: string,
  min: number,
  max: number,
  fallback: number,
  problems: FieldProblem[],
): number {
  if (value === undefined) return fallback;
  const n = typeof value === "string" && /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
  problems.push({ field, expected: `a whole number from ${min} to ${max}`, found: describeValue(value) });
  return fallback;
}

/** One of `values`, from a query string value; undefined when absent. */
export function oneOf<T extends string>(
  value: unknown,
  field: string,
  values: readonly T[],
  problems: FieldProblem[],
): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && (values as readonly string[]).includes(value)) return value as T;
  problems.push({
    field,
    expected: `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`,
    found: describeValue(value),
  });
  return undefined;
}
