/**
 * The one error registry. Every error Warden raises has a stable code, an HTTP status and a message
 * template here; `docs/errors.md` documents each code (a test checks both lists agree).
 * Codes are never reused once retired.
 */

/** One problem with one field of a request, manifest, file or flag. */
export interface FieldProblem {
  /** Where: a JSON pointer-ish path (`features.Income`, `instances[3].features.Age`, `/output/threshold`). */
  readonly field: string;
  /** What was expected, in words (`a number between 0 and 60`). */
  readonly expected: string;
  /** What came, rendered for humans (`"abc" (string)`, `missing`). */
  readonly found: string;
  /** How to fix it, when there is more to say than `expected`. */
  readonly fix?: string;
}

interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

/** The registry: code → HTTP status and a one-line description (used as the default message). */
export const ERRORS = {
  WARDEN_ERR_VALIDATION: { status: 400, message: "The request has invalid fields" },
  WARDEN_ERR_MALFORMED_JSON: { status: 400, message: "The request body is not valid JSON" },
  WARDEN_ERR_BAD_REQUEST: { status: 400, message: "The request is malformed" },
  WARDEN_ERR_UNAUTHORIZED: { status: 401, message: "Authentication is required" },
  WARDEN_ERR_FORBIDDEN: { status: 403, message: "The identity may not use this route" },
  WARDEN_ERR_REQUEST_TIMEOUT: { status: 408, message: "The request was not received in time" },
  WARDEN_ERR_KEY_NOT_FOUND: { status: 404, message: "No such API key" },
  WARDEN_ERR_MODEL_NOT_FOUND: { status: 404, message: "No such model" },
  WARDEN_ERR_VERSION_NOT_FOUND: { status: 404, message: "No such model version" },
  WARDEN_ERR_DECISION_NOT_FOUND: { status: 404, message: "No such decision" },
  WARDEN_ERR_ROUTE_NOT_FOUND: { status: 404, message: "No such route" },
  WARDEN_ERR_METHOD_NOT_ALLOWED: { status: 405, message: "Method not allowed on this route" },
  WARDEN_ERR_NOT_A_DECISION: { status: 409, message: "The ledger record is not a decision" },
  WARDEN_ERR_CONFLICT: { status: 409, message: "The change conflicts with the model's deployment state" },
  WARDEN_ERR_BODY_TOO_LARGE: { status: 413, message: "The request body is larger than the limit" },
  WARDEN_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: "Unsupported content type" },
  WARDEN_ERR_MODEL_LOAD_FAILED: { status: 422, message: "The model version cannot be loaded" },
  WARDEN_ERR_QUEUE_FULL: { status: 429, message: "The model's request queue is full" },
  WARDEN_ERR_QUERY_BUDGET: { status: 429, message: "The caller's daily query budget for the model is spent" },
  WARDEN_ERR_RATE_LIMITED: { status: 429, message: "Too many requests: a rate limit is exhausted" },
  WARDEN_ERR_TIMEOUT: { status: 504, message: "The model did not answer within the request's timeout" },
  WARDEN_ERR_QUEUE_TIMEOUT: {
    status: 503,
    message: "The request waited in the model's queue longer than its timeout",
  },
  WARDEN_ERR_MODEL_NOT_READY: { status: 503, message: "The model is not ready" },
  WARDEN_ERR_SHUTTING_DOWN: { status: 503, message: "The server is shutting down" },
  WARDEN_ERR_LEDGER_BUSY: {
    status: 503,
    message: "The decision ledger is behind: too many decisions wait to be committed",
  },
  WARDEN_ERR_RATE_LIMITER_UNAVAILABLE: {
    status: 503,
    message: "The rate limiter's store cannot be reached and rate_limits.redis.fail is closed",
  },
  WARDEN_ERR_BREAKER_OPEN: {
    status: 503,
    message: "The model version's circuit breaker is open and its fallback cannot answer",
  },
  WARDEN_ERR_INFERENCE_FAILED: { status: 500, message: "The model failed to run" },
  WARDEN_ERR_INTERNAL: { status: 500, message: "Internal error" },
  WARDEN_ERR_MANIFEST_INVALID: { status: 500, message: "The model manifest is invalid" },
  WARDEN_ERR_CONFIG_INVALID: { status: 500, message: "The server configuration is invalid" },
  WARDEN_ERR_ARTIFACT_INVALID: { status: 500, message: "The model artifact cannot be used" },
  WARDEN_ERR_ARTIFACT_HASH_MISMATCH: { status: 500, message: "The model artifact does not match its sha256" },
  WARDEN_ERR_MODEL_PROHIBITED: {
    status: 500,
    message: "A model with risk_tier prohibited may not be served",
  },
  WARDEN_ERR_DEVICE_UNAVAILABLE: { status: 500, message: "The requested execution device is not available" },
  WARDEN_ERR_INPUT_FILE: { status: 400, message: "The input file cannot be read" },
  WARDEN_ERR_LEDGER: { status: 500, message: "The decision ledger failed" },
  WARDEN_ERR_LEDGER_TAMPERED: { status: 500, message: "The decision ledger failed verification" },
  WARDEN_ERR_SIGNING_KEY: { status: 500, message: "The tree-head signing key cannot be used" },
  WARDEN_ERR_PRIVACY_KEY: { status: 500, message: "A subject privacy key cannot be used" },
  WARDEN_ERR_SUBJECT_UNAVAILABLE: {
    status: 409,
    message: "The decision's subject cannot be revealed",
  },
  WARDEN_ERR_VAULT: { status: 500, message: "The subject vault failed" },
  WARDEN_ERR_RETENTION: {
    status: 409,
    message: "The purge would remove subject data before its retention period ends",
  },
  WARDEN_ERR_EXPLANATION_UNAVAILABLE: {
    status: 409,
    message: "The explanation asked for cannot be given for this model",
  },
  WARDEN_ERR_PROFILE_NOT_FOUND: {
    status: 404,
    message: "The model version has no reference profile",
  },
  WARDEN_ERR_FAIRNESS_UNAVAILABLE: {
    status: 409,
    message: "The model version has no live fairness monitor",
  },
  WARDEN_ERR_REVIEW_NOT_FOUND: { status: 404, message: "No such review item" },
  WARDEN_ERR_REVIEW_CONFLICT: {
    status: 409,
    message: "The review item is claimed by another reviewer, not claimed by you, or already resolved",
  },
  WARDEN_ERR_REVIEW_FOUR_EYES: {
    status: 409,
    message: "The second review of a four-eyes item must come from another reviewer",
  },
  WARDEN_ERR_USAGE: { status: 400, message: "Invalid command-line usage" },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code from the registry. */
export type ErrorCode = keyof typeof ERRORS;

/** At most this many field problems travel with an error; the rest are counted in a last entry. */
export const MAX_PROBLEMS = 100;

/** Cap a problem list at MAX_PROBLEMS, saying how many were left out (a hostile body can have millions). */
export function capProblems(problems: readonly FieldProblem[]): FieldProblem[] {
  if (problems.length <= MAX_PROBLEMS) return [...problems];
  return [
    ...problems.slice(0, MAX_PROBLEMS),
    {
      field: "(more)",
      expected: "fewer problems",
      found: `${problems.length - MAX_PROBLEMS} more problems not listed`,
      fix: "fix the ones listed and send again",
    },
  ];
}

/** The single error type Warden raises for expected failures. */
export class WardenError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: readonly FieldProblem[];
  /** Seconds a client should wait before retrying (429/503), when known. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { details?: readonly FieldProblem[]; cause?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(
      message ?? ERRORS[code].message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "WardenError";
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = Object.freeze(capProblems(options.details ?? []));
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The error as a response body: `error` (what Open Inference Protocol clients read), code, details. */
  toJSON(): { error: string; code: ErrorCode; details?: readonly FieldProblem[] } {
    return this.details.length > 0
      ? { error: this.message, code: this.code, details: this.details }
      : { error: this.message, code: this.code };
  }
}

/** Render a value for a `found` field: short, typed, never throws. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
    return `${value} (number)`;
  }
  if (typeof value === "string") {
    // Cut by code points, so an emoji is never split into a lone surrogate.
    const points = Array.from(value.length > 240 ? value.slice(0, 240) : value);
    const shown = points.length > 60 ? `${points.slice(0, 57).join("")}...` : value;
    return `${JSON.stringify(shown)} (string)`;
  }
  if (typeof value === "boolean") return `${value} (boolean)`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object") return "an object";
  return typeof value;
}

/** One line per problem, for CLIs and logs: `field: expected X, found Y (fix)`. */
export function formatProblems(problems: readonly FieldProblem[]): string {
  return problems
    .map((p) => `  ${p.field}: expected ${p.expected}, found ${p.found}${p.fix ? ` — ${p.fix}` : ""}`)
    .join("\n");
}
