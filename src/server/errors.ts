import type { FastifyError, FastifyRequest } from "fastify";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** The value at an Ajv instance path (a JSON pointer) in the request part that was validated, if there is one. */
function valueAt(data: unknown, pointer: string): { found: boolean; value?: unknown } {
  if (pointer === "") return { found: true, value: data };
  let value: unknown = data;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return { found: false };
    value = (value as Record<string, unknown>)[key];
  }
  return { found: true, value };
}

/** What a schema keyword asked for, in words (Ajv's own message, with the allowed values where it omits them). */
function expectedOf(e: AjvError): string {
  const limit = e.params.limit;
  switch (e.keyword) {
    case "enum":
      if (!Array.isArray(e.params.allowedValues)) break;
      return `one of ${e.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
    case "const":
      return `exactly ${JSON.stringify(e.params.allowedValue)}`;
    case "type":
      return `a value of type ${String(e.params.type)}`;
    case "maxLength":
      return `at most ${limit} characters`;
    case "minLength":
      return `at least ${limit} character${limit === 1 ? "" : "s"}`;
    case "maxItems":
      return `at most ${limit} items`;
    case "minItems":
      return `at least ${limit} item${limit === 1 ? "" : "s"}`;
    case "maximum":
    case "minimum":
    case "exclusiveMaximum":
    case "exclusiveMinimum":
      return `a number ${String(e.params.comparison)} ${limit}`;
    case "pattern":
      return `text matching ${String(e.params.pattern)}`;
    case "format":
      return `a valid ${String(e.params.format)}`;
  }
  return (e.message ?? e.keyword).replace(/^must /, "");
}

/**
 * Ajv's error list (Fastify's envelope validation) → field problems; `data` is the request part validated (the
 * body, query string, path parameters or headers), to say what came.
 */
function validationProblems(errors: readonly AjvError[], context: string, data: unknown): FieldProblem[] {
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
    // A header's value is never echoed: it may be a credential.
    if (context === "headers") return { field, expected: expectedOf(e), found: "another value (not shown)" };
    const at = valueAt(data, e.instancePath);
    return {
      field,
      expected: expectedOf(e),
      found: at.found ? describeValue(at.value) : "a different value",
    };
  });
}

/**
 * Map any error thrown while handling a request to a WardenError: Fastify's body-parsing and schema
 * errors become 400/413/415 with the registry's codes (a schema error says what came, from `request`);
 * anything unexpected becomes a 500.
 */
export function toWardenError(error: unknown, request?: FastifyRequest): WardenError {
  if (error instanceof WardenError) return error;
  const fe = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    const context = fe.validationContext ?? "body";
    const data =
      context === "body"
        ? request?.body
        : context === "querystring"
          ? request?.query
          : context === "params"
            ? request?.params
            : context === "headers"
              ? request?.headers
              : undefined;
    const details = validationProblems(fe.validation, context, data);
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
