import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { describeValue, type FieldProblem } from "../errors/index.js";

/**
 * Check `value` against a TypeBox schema and return every problem as field + expected + found.
 * One problem per path (the first, most specific message TypeBox gives for it).
 */
export function schemaProblems(schema: TSchema, value: unknown, prefix = ""): FieldProblem[] {
  const seen = new Set<string>();
  const problems: FieldProblem[] = [];
  for (const error of Value.Errors(schema, value)) {
    // The root is "/" alone, or the prefix itself ("/policy/explanations", not "/policy/explanations/").
    const path = error.path === "" ? (prefix === "" ? "/" : "") : error.path;
    // A parent union/object error is followed by more specific children; keep one per path.
    if (seen.has(path)) continue;
    seen.add(path);
    const described = (error.schema as { description?: string }).description;
    const unknownKey = error.message.startsWith("Unexpected property");
    const missing = error.value === undefined;
    problems.push({
      field: prefix + path,
      expected: unknownKey
        ? "no such field"
        : missing
          ? `${described ?? summarise(error.schema)} (required)`
          : (described ?? lowerFirst(error.message.replace(/^Expected /, ""))),
      found: describeValue(error.value),
      ...(unknownKey ? { fix: "remove it or check its spelling" } : missing ? { fix: "add it" } : {}),
    });
  }
  return problems;
}

/** A short noun phrase for a schema without a description ("a string", "a list", ...). */
function summarise(schema: TSchema): string {
  switch ((schema as { type?: string }).type) {
    case "string":
      return "a string";
    case "integer":
      return "an integer";
    case "number":
      return "a number";
    case "boolean":
      return "true or false";
    case "array":
      return "a list";
    case "object":
      return "a mapping";
    default:
      return "a value";
  }
}

function lowerFirst(text: string): string {
  return text.length > 0 ? text[0]!.toLowerCase() + text.slice(1) : text;
}
