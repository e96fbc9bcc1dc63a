import type { FastifyInstance, FastifyRequest } from "fastify";
import { v7 as uuidv7 } from "uuid";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import { ISO_TIME_EXPECTED, linkedDecisionId, parseIsoTime } from "../feedback/index.js";
import type { LedgerEntry, LedgerRecord } from "../ledger/index.js";
import { mayUseModel } from "./access.js";
import type { RouteContext } from "./app.js";
import { invalidQuery, wholeNumber } from "./query-params.js";
import { errorResponses, pathParams } from "./routes-decisions.js";

/** How far in the future an `observed_at` may lie (clocks of other systems drift). */
export const OBSERVED_AT_SKEW_MS = 5 * 60 * 1000;

/** What an appeal asks for (closed list); `human_review` when absent. */
export const APPEAL_ACTIONS = ["human_review", "correction", "explanation"] as const;
export type AppealAction = (typeof APPEAL_ACTIONS)[number];

const LIMITS = { source: 128, note: 1000, reason: 2000, contact: 256 } as const;

const { description: _, ...ErrorSchema } = errorResponses[400];
const Ledger = {
  type: "object",
  properties: { seq: { type: "integer" }, prev_hash: { type: "string" }, hash: { type: "string" } },
} as const;

const OutcomeBody = {
  type: "object",
  description:
    "The ground truth for the decision, once known. A later outcome for the same decision corrects it.",
  properties: {
    outcome: {
      anyOf: [{ type: "string" }, { type: "number" }],
      description:
        "Classification: one of the model's output labels (a string). Regression: a finite number.",
    },
    source: {
      type: "string",
      minLength: 1,
      maxLength: LIMITS.source,
      description: 'Where the outcome comes from, e.g. "collections-system"',
    },
    observed_at: {
      type: "string",
      description: `When the outcome was observed: ${ISO_TIME_EXPECTED}. Default: now; at most 5 minutes ahead.`,
    },
    note: { type: "string", maxLength: LIMITS.note },
  },
  required: ["outcome", "source"],
  additionalProperties: false,
} as const;

const AppealBody = {
  type: "object",
  description: "The subject contests the decision (GDPR Art. 22). Recorded, then reviewed by a person.",
  properties: {
    reason: { type: "string", minLength: 1, maxLength: LIMITS.reason },
    contact: {
      type: "string",
      maxLength: LIMITS.contact,
      description:
        "How to reach the subject. The ledger keeps it forever: prefer a reference into your own system to an e-mail address.",
    },
    requested_action: { type: "string", enum: [...APPEAL_ACTIONS], default: "human_review" },
  },
  required: ["reason"],
  additionalProperties: false,
} as const;

const OutcomeAnswer = {
  type: "object",
  properties: {
    outcome_id: { type: "string", description: "Ledger id of this outcome record (UUIDv7)" },
    decision_id: { type: "string" },
    model: { type: "string" },
    version: { type: "string" },
    outcome: { description: "The label (string) or value (number) recorded" },
    source: { type: "string" },
    observed_at: { type: "string" },
    note: { type: "string" },
    recorded_at: { type: "string" },
  },
  required: [
    "outcome_id",
    "decision_id",
    "model",
    "version",
    "outcome",
    "source",
    "observed_at",
    "recorded_at",
  ],
} as const;

const AppealAnswer = {
  type: "object",
  properties: {
    appeal_id: { type: "string", description: "Ledger id of this appeal record (UUIDv7)" },
    decision_id: { type: "string" },
    status: { type: "string", enum: ["pending_review"] },
    requested_action: { type: "string", enum: [...APPEAL_ACTIONS] },
    recorded_at: { type: "string" },
    review_item_id: {
      type: "string",
      description: "The review queue item the appeal entered (GET /v1/review/items/{id})",
    },
  },
  required: ["appeal_id", "decision_id", "status", "requested_action", "recorded_at"],
} as const;

const LinkedRecord = {
  type: "object",
  additionalProperties: true,
  description:
    "An outcome, appeal or review: id, kind, time, its body's fields and its place in the hash chain",
  properties: { id: { type: "string" }, kind: { type: "string" }, time: { type: "string" }, ledger: Ledger },
} as const;

const HistoryAnswer = {
  type: "object",
  properties: {
    decision_id: { type: "string" },
    decision: {
      type: "object",
      additionalProperties: true,
      description: "The decision, as GET /v1/decisions/{id} shows it",
    },
    history: {
      type: "array",
      items: LinkedRecord,
      description:
        "The outcomes, appeals and reviews that point to the decision, in ledger order: one page of them (`limit`, after `cursor`)",
    },
    latest_outcome: {
      ...LinkedRecord,
      nullable: true,
      description:
        "The outcome recorded last (later outcomes correct earlier ones), whatever the page, or null",
    },
    next_cursor: {
      type: "string",
      nullable: true,
      description: "Pass as `cursor` for the next page; null on the last",
    },
  },
  required: ["decision_id", "decision", "history", "latest_outcome", "next_cursor"],
} as const;

/** Records of a decision's history per page, by default and at most. */
const HISTORY_PAGE_DEFAULT = 1000;
const HISTORY_PAGE_MAX = 10_000;

const conflict = {
  409: { ...ErrorSchema, description: "The id names a ledger record that is not a decision" },
};

/** Length in Unicode code points (what JSON Schema's maxLength counts). */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The body as an object, with a problem for every field not in `allowed`. */
function bodyObject(
  body: unknown,
  allowed: readonly string[],
  problems: FieldProblem[],
): Record<string, unknown> {
  if (!isPlainObject(body)) {
    problems.push({
      field: "body",
      expected: `a JSON object with ${allowed.join(", ")}`,
      found: describeValue(body),
      fix: "send Content-Type: application/json and a JSON object",
    });
    return {};
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      problems.push({
        field: key,
        expected: "no such field",
        found: "present",
        fix: `remove it or check its spelling (fields: ${allowed.join(", ")})`,
      });
    }
  }
  return body;
}

/** A string field of `min`–`max` code points; undefined (with a problem unless optional) when not one. */
function stringField(
  body: Record<string, unknown>,
  field: string,
  limits: { min: number; max: number; optional?: boolean; example?: string },
  problems: FieldProblem[],
): string | undefined {
  const value = body[field];
  if (value === undefined && limits.optional) return undefined;
  const length = typeof value === "string" ? codePoints(value) : -1;
  const blank = typeof value === "string" && limits.min > 0 && value.trim() === "";
  if (length >= limits.min && length <= limits.max && !blank) return value as string;
  problems.push({
    field,
    expected: `a string of ${limits.min === 0 ? "at most" : `${limits.min} to`} ${limits.max} characters${limits.min > 0 ? ", not blank" : ""}`,
    found:
      typeof value === "string" ? `${length} characters${blank ? " (blank)" : ""}` : describeValue(value),
    ...(limits.example ? { fix: `for example ${JSON.stringify(limits.example)}` } : {}),
  });
  return undefined;
}

/** The valid outcomes of a decision's model: its labels (classification) or any finite number (regression). */
type OutcomeSpace =
  | { readonly task: "classification"; readonly labels: readonly string[] }
  | { readonly task: "regression" };

/**
 * From the manifest of the model version that made the decision, found through the registry. A version no
 * longer loaded is judged by its record instead: classification decisions record a probability per label.
 */
function outcomeSpace(ctx: RouteContext, decision: LedgerRecord): OutcomeSpace {
  const loaded = ctx.registry.versions(decision.model).find((m) => m.manifest.version === decision.version);
  if (loaded !== undefined) {
    const { task, output } = loaded.manifest;
    return task === "regression" ? { task } : { task: "classification", labels: output.labels ?? [] };
  }
  const outputs = decision.body.outputs;
  const probabilities = isPlainObject(outputs) ? outputs.probabilities : undefined;
  return isPlainObject(probabilities)
    ? { task: "classification", labels: Object.keys(probabilities) }
    : { task: "regression" };
}

function checkOutcome(value: unknown, space: OutcomeSpace, model: string, problems: FieldProblem[]): void {
  if (space.task === "regression") {
    if (typeof value === "number" && Number.isFinite(value)) return;
    problems.push({
      field: "outcome",
      expected: `a finite number (${model} is a regression model)`,
      found: describeValue(value),
      ...(typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))
        ? { fix: `send the number itself, without quotes: ${Number(value)}` }
        : {}),
    });
    return;
  }
  if (typeof value === "string" && space.labels.includes(value)) return;
  const caseMatch =
    typeof value === "string" ? space.labels.find((l) => l.toLowerCase() === value.toLowerCase()) : undefined;
  const numberMatch = typeof value === "number" ? space.labels.find((l) => l === String(value)) : undefined;
  problems.push({
    field: "outcome",
    expected: `one of the labels of ${model}: ${space.labels.map((l) => JSON.stringify(l)).join(", ")}`,
    found: describeValue(value),
    ...(caseMatch !== undefined
      ? { fix: `labels are case-sensitive: send ${JSON.stringify(caseMatch)}` }
      : numberMatch !== undefined
        ? { fix: `send the label as a string: ${JSON.stringify(numberMatch)}` }
        : {}),
  });
}

function checkObservedAt(value: unknown, now: number, decidedAt: string, problems: FieldProblem[]): string {
  if (value === undefined) return new Date(now).toISOString();
  const time = typeof value === "string" ? parseIsoTime(value) : undefined;
  if (time === undefined) {
    problems.push({ field: "observed_at", expected: ISO_TIME_EXPECTED, found: describeValue(value) });
    return "";
  }
  if (time > now + OBSERVED_AT_SKEW_MS) {
    problems.push({
      field: "observed_at",
      expected: `a time no later than now (${new Date(now).toISOString()}, give or take ${OBSERVED_AT_SKEW_MS / 60_000} minutes)`,
      found: `${JSON.stringify(value)}, in the future`,
      fix: "send the time the outcome was observed, or leave observed_at out for now",
    });
    return "";
  }
  // An outcome follows its decision: one observed before it (give or take the same skew) is a wrong field.
  const decided = Date.parse(decidedAt);
  if (Number.isFinite(decided) && time < decided - OBSERVED_AT_SKEW_MS) {
    problems.push({
      field: "observed_at",
      expected: `a time no earlier than the decision (${decidedAt}, give or take ${OBSERVED_AT_SKEW_MS / 60_000} minutes)`,
      found: `${JSON.stringify(value)}, before the decision`,
      fix: "send the time the outcome was observed, or leave observed_at out for now",
    });
    return "";
  }
  return new Date(time).toISOString();
}

function invalid(what: string, problems: readonly FieldProblem[]): WardenError {
  return new WardenError(
    "WARDEN_ERR_VALIDATION",
    `${problems.length} invalid field${problems.length === 1 ? "" : "s"} in the ${what}: ${problems
      .slice(0, 3)
      .map((p) => p.field)
      .join(", ")}${problems.length > 3 ? ", ..." : ""}`,
    { details: problems },
  );
}

/** A ledger record as the API shows it: its fields, its body's fields and its place in the chain. */
function recordView(record: LedgerRecord): Record<string, unknown> {
  return {
    id: record.id,
    kind: record.kind,
    time: record.time,
    ...record.body,
    ledger: { seq: record.seq, prev_hash: record.prev_hash, hash: record.hash },
  };
}

export function registerFeedbackRoutes(app: FastifyInstance, ctx: RouteContext): void {
  /** The decision `id` names: 404 when no record has it, 409 when the record is another kind. */
  const findDecision = async (request: FastifyRequest<{ Params: { id: string } }>): Promise<LedgerRecord> => {
    const { id } = request.params;
    let record = await ctx.ledger.get(id);
    if (record === undefined) {
      // It may have been answered a moment ago and not be committed yet.
      await ctx.ledger.committed();
      record = await ctx.ledger.get(id);
    }
    const shown = JSON.stringify(id.slice(0, 80));
    if (record === undefined || !mayUseModel(request, record.model)) {
      throw new WardenError("WARDEN_ERR_DECISION_NOT_FOUND", `no decision with id ${shown}`, {
        details: [{ field: "id", expected: "a decision_id returned by a decision request", found: shown }],
      });
    }
    if (record.kind !== "decision") {
      const pointsTo = linkedDecisionId(record);
      throw new WardenError(
        "WARDEN_ERR_NOT_A_DECISION",
        `ledger record ${shown} is ${record.kind === "outcome" || record.kind === "appeal" ? "an" : "a"} ${record.kind}, not a decision${pointsTo ? ` (it points to decision ${pointsTo})` : ""}`,
        {
          details: [
            {
              field: "id",
              expected: "the id of a decision record",
              found: `the id of a ${record.kind} record`,
              fix: pointsTo
                ? `use the decision it points to: ${pointsTo}`
                : record.kind === "rejection"
                  ? "a rejected request made no decision, so it has no outcome or appeal"
                  : "use a decision_id returned by a decision request",
            },
          ],
        },
      );
    }
    request.wardenModel = { name: record.model, version: record.version };
    return record;
  };

  const write = async (
    decision: LedgerRecord,
    kind: "outcome" | "appeal",
    time: string,
    body: Record<string, unknown>,
  ) => {
    const entry: LedgerEntry = {
      id: uuidv7(),
      kind,
      time,
      model: decision.model,
      version: decision.version,
      artifact_sha256: decision.artifact_sha256,
      body,
    };
    await ctx.ledger.write(entry);
    return entry.id;
  };

  // Bodies are checked here rather than by the schema, so that every problem says what was found and how to
  // fix it; the schemas document the routes in the OpenAPI document.
  const checkedHere = { validatorCompiler: () => () => true };

  app.post<{ Params: { id: string }; Body: unknown }>(
    "/v1/decisions/:id/outcomes",
    {
      ...checkedHere,
      schema: {
        summary: "Record the ground-truth outcome of a decision (a later one corrects it)",
        tags: ["feedback"],
        params: pathParams("id"),
        body: OutcomeBody,
        response: { 201: { description: "Recorded", ...OutcomeAnswer }, ...errorResponses, ...conflict },
      },
    },
    async (request, reply) => {
      const decision = await findDecision(request);
      const problems: FieldProblem[] = [];
      const body = bodyObject(request.body, Object.keys(OutcomeBody.properties), problems);
      const now = Date.now();
      if (body.outcome === undefined) {
        problems.push({
          field: "outcome",
          expected: "a value: the decision's true label or value",
          found: "missing",
        });
      } else {
        checkOutcome(
          body.outcome,
          outcomeSpace(ctx, decision),
          `${decision.model} ${decision.version}`,
          problems,
        );
      }
      const source = stringField(
        body,
        "source",
        { min: 1, max: LIMITS.source, example: "collections-system" },
        problems,
      );
      const observedAt = checkObservedAt(body.observed_at, now, decision.time, problems);
      const note = stringField(body, "note", { min: 0, max: LIMITS.note, optional: true }, problems);
      if (problems.length > 0) throw invalid("outcome", problems);
      const recorded = {
        decision_id: decision.id,
        ...(note !== undefined ? { note } : {}),
        observed_at: observedAt,
        outcome: body.outcome as string | number,
        source: source!,
      };
      const recordedAt = new Date(now).toISOString();
      const outcomeId = await write(decision, "outcome", recordedAt, recorded);
      // The live performance and fairness of the version that decided, when it is loaded (binary models).
      const loaded = ctx.registry
        .versions(decision.model)
        .find((m) => m.manifest.version === decision.version);
      const outputs = decision.body.outputs;
      const score = isPlainObject(outputs) ? outputs.score : undefined;
      if (loaded !== undefined && typeof score === "number")
        ctx.monitors.outcome(loaded, score, recorded.outcome, decision.id);
      return reply.status(201).send({
        outcome_id: outcomeId,
        model: decision.model,
        version: decision.version,
        ...recorded,
        recorded_at: recordedAt,
      });
    },
  );

  app.post<{ Params: { id: string }; Body: unknown }>(
    "/v1/decisions/:id/appeals",
    {
      ...checkedHere,
      schema: {
        summary: "Contest a decision (GDPR Art. 22): recorded for human review",
        tags: ["feedback"],
        params: pathParams("id"),
        body: AppealBody,
        response: {
          202: { description: "Recorded; waits for review", ...AppealAnswer },
          ...errorResponses,
          ...conflict,
        },
      },
    },
    async (request, reply) => {
      const decision = await findDecision(request);
      const problems: FieldProblem[] = [];
      const body = bodyObject(request.body, Object.keys(AppealBody.properties), problems);
      const reason = stringField(body, "reason", { min: 1, max: LIMITS.reason }, problems);
      const contact = stringField(body, "contact", { min: 1, max: LIMITS.contact, optional: true }, problems);
      const action = body.requested_action ?? "human_review";
      if (!(APPEAL_ACTIONS as readonly unknown[]).includes(action)) {
        problems.push({
          field: "requested_action",
          expected: `one of ${APPEAL_ACTIONS.map((a) => JSON.stringify(a)).join(", ")}`,
          found: describeValue(action),
          fix: 'leave it out for "human_review"',
        });
      }
      if (problems.length > 0) throw invalid("appeal", problems);
      const recordedAt = new Date().toISOString();
      const appealId = await write(decision, "appeal", recordedAt, {
        ...(contact !== undefined ? { contact } : {}),
        decision_id: decision.id,
        reason: reason!,
        requested_action: action as AppealAction,
      });
      // The appeal enters the review queue (joining the decision's open item when it has one).
      const item = ctx.review.enqueueAppeal(decision, appealId);
      return reply.status(202).send({
        appeal_id: appealId,
        decision_id: decision.id,
        status: "pending_review",
        requested_action: action,
        recorded_at: recordedAt,
        review_item_id: item.item_id,
      });
    },
  );

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    "/v1/decisions/:id/history",
    {
      // The query is checked here, so that every problem names the field, what was expected and found.
      ...checkedHere,
      schema: {
        summary:
          "A decision with the outcomes, appeals and reviews recorded for it, in ledger order, a page at a time",
        tags: ["feedback"],
        params: pathParams("id"),
        querystring: {
          type: "object",
          properties: {
            limit: {
              type: "string",
              description: `records per page, 1 to ${HISTORY_PAGE_MAX} (default ${HISTORY_PAGE_DEFAULT})`,
            },
            cursor: { type: "string", description: "next_cursor of the previous page" },
          },
        },
        response: { 200: HistoryAnswer, 400: errorResponses[400], 404: errorResponses[404], ...conflict },
      },
    },
    async (request) => {
      const q = request.query;
      const problems: FieldProblem[] = [];
      for (const key of Object.keys(q)) {
        if (key !== "limit" && key !== "cursor") {
          problems.push({
            field: key,
            expected: "no such parameter",
            found: "present",
            fix: "parameters: limit, cursor",
          });
        }
      }
      const limit = wholeNumber(q.limit, "limit", 1, HISTORY_PAGE_MAX, HISTORY_PAGE_DEFAULT, problems);
      const cursor = wholeNumber(q.cursor, "cursor", 1, Number.MAX_SAFE_INTEGER, 0, problems);
      if (problems.length > 0) throw invalidQuery(problems);
      const decision = await findDecision(request);
      // Outcomes and appeals answered a moment ago are journaled; wait until the index can see them.
      await ctx.ledger.committed();
      // What points to a decision is always recorded after it. One more than the page says whether another follows.
      const linked = await ctx.ledger.linked(decision.id, Math.max(decision.seq, cursor), limit + 1);
      const more = linked.length > limit;
      if (more) linked.pop();
      const history = linked.map(recordView);
      const latest = await ctx.ledger.latestLinked(decision.id, "outcome");
      // The subject as GET /v1/decisions/{id} shows it (never decrypted here).
      const vault = ctx.privacy?.view(decision);
      return {
        decision_id: decision.id,
        decision: {
          decision_id: decision.id,
          kind: decision.kind,
          time: decision.time,
          model: decision.model,
          version: decision.version,
          artifact_sha256: decision.artifact_sha256,
          ...decision.body,
          ...(vault !== undefined ? { subject_vault: vault } : {}),
          ...ctx.review.decisionView(decision),
          ledger: { seq: decision.seq, prev_hash: decision.prev_hash, hash: decision.hash },
        },
        history,
        latest_outcome: latest === undefined ? null : recordView(latest),
        next_cursor: more ? String(linked.at(-1)!.seq) : null,
      };
    },
  );
}
