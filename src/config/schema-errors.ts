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
    const path = error.path === "" ? "/" : error.path;
    // A parent union/object error is followed by more specific children; keep one per path.
    if (seen.has(path)) continue;
    seen.add(path);
    const described = (error.schema as { description?: string }).description;
    const unknownKey = error.message.startsWith("Unexpected property");
    problems.push({
      field: prefix + path,
      expected: unknownKey ? "no such field" : (described ?? lowerFirst(error.message.replace(/^Expected /, ""))),
      found: describeValue(error.value),
      ...(unknownKey ? { fix: "remove it or check its spelling" } : {}),
    });
  }
  return problems;
}

function lowerFirst(text: string): string {
  return text.length > 0 ? text[0]!.toLowerCase() + text.slice(1) : text;
}
