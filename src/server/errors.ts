import type { FastifyError } from "fastify";
import { type FieldProblem, WardenError } from "../errors/index.js";

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Ajv's error list (Fastify's envelope validation) → field problems. */
function validationProblems(errors: readonly AjvError[], context: string): FieldProblem[] {
  return errors.map((e) => {
    const path = e.instancePath
      .replace(/^\//, "")
      .replace(/\/(\d+)(?=\/|$)/g, "[$1]")
      .replace(/\//g, ".");
    const field = path === "" ? context : path;
    if (e.keyword === "additionalProperties") {
      const extra = String(e.params.additionalProperty);
      return {
        field: field === context ? extra : `${field}.${extra}`,
        expected: "no such field",
        found: "present",
        fix: "remove it or check its spelling",
      };
    }
    if (e.keyword === "required") {
      const missing = String(e.params.missingProperty);
      return {
        field: field === context ? missing : `${field}.${missing}`,
        expected: "a value",
        found: "missing",
      };
    }
    return { field, expected: e.message ?? e.keyword, found: "a different value" };
  });
}

/**
 * Map any error thrown while handling a request to a WardenError: Fastify's body-parsing and schema
 * errors become 400/413/415 with the registry's codes; anything unexpected becomes a 500.
 */
export function toWardenError(error: unknown): WardenError {
  if (error instanceof WardenError) return error;
  const fe = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    const details = validationProblems(fe.validation, fe.validationContext ?? "body");
    return new WardenError("WARDEN_ERR_BAD_REQUEST", `invalid request ${fe.validationContext ?? "body"}`, {
      details,
    });
  }
  switch (fe.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new WardenError(
        "WARDEN_ERR_MALFORMED_JSON",
        `the request body is not valid JSON: ${fe.message}`,
      );
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new WardenError("WARDEN_ERR_BODY_TOO_LARGE", fe.message);
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_TYPE":
      return new WardenError(
        "WARDEN_ERR_UNSUPPORTED_MEDIA_TYPE",
        `${fe.message}; send Content-Type: application/json`,
      );
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new WardenError("WARDEN_ERR_BAD_REQUEST", fe.message);
    default:
      break;
  }
  if (error instanceof SyntaxError || (typeof fe.statusCode === "number" && fe.statusCode === 400)) {
    // JSON.parse errors and prototype-poisoning refusals surface as plain 400 errors.
    return new WardenError("WARDEN_ERR_MALFORMED_JSON", `the request body is not valid JSON: ${fe.message}`);
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new WardenError("WARDEN_ERR_BAD_REQUEST", fe.message);
  }
  return new WardenError(
    "WARDEN_ERR_INTERNAL",
    "internal error; the server log has the details (search for the request id)",
    {
      cause: error,
    },
  );
}
