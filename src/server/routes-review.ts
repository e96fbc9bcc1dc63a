import type { FastifyInstance, FastifyRequest } from "fastify";
import { Counter, Gauge, type Registry } from "prom-client";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import {
  REVIEW_LIST_DEFAULT,
  REVIEW_LIST_MAX,
  REVIEW_REASONS,
  REVIEW_STATUSES,
  type ReviewJudged,
  type ReviewService,
  type ReviewStatus,
  SIMILAR_DEFAULT,
  SIMILAR_MAX,
} from "../review/index.js";
import type { RouteContext } from "./app.js";
import { invalidQuery, oneOf, wholeNumber } from "./query-params.js";
import { errorResponses, pathParams } from "./routes-decisions.js";
import { ACTOR_HEADER, actorOf } from "./routes-deployments.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The human review queue (tests drive its SLA clock through `tick`). */
    wardenReview: ReviewService;
  }
}

const { description: _, ...ErrorSchema } = errorResponses[400];
const tags = ["review"];
const AnyObject = { type: "object", additionalProperties: true } as const;
const reviewErrors = {
  ...errorResponses,
  409: {
    ...ErrorSchema,
    description:
      "Claimed by another reviewer, not claimed by you, already resolved, or the same reviewer twice",
  },
} as const;

const ItemSchema = {
  type: "object",
  additionalProperties: true,
  description: "A review item: the decision held, why, its state, and the reviewers' judgements",
  properties: {
    item_id: { type: "string" },
    decision_id: { type: "string" },
    model: { type: "string" },
    version: { type: "string" },
    status: { type: "string", enum: [...REVIEW_STATUSES] },
    reasons: { type: "array", items: { type: "string", enum: [...REVIEW_REASONS] } },
    due_at: { type: "string" },
    overdue: { type: "boolean" },
    claimed_by: { type: "string", nullable: true },
    model_decision: { nullable: true },
    final_decision: { nullable: true },
  },
} as const;

const ResolveBody = {
  type: "object",
  description: "The reviewer's final decision for the held decision",
  properties: {
    decision: {
      anyOf: [{ type: "string" }, { type: "number" }],
      description: "Classification: one of the model's labels. Regression: a finite number.",
    },
    reason_code: {
      type: "string",
      description:
        "Why: one of policy.review.reason_codes when the manifest lists them, else a code of 1 to 64 letters, digits, _ . -",
    },
    note: { type: "string", maxLength: 1000 },
  },
  required: ["decision", "reason_code"],
  additionalProperties: false,
} as const;

/**
 * The reviewer: the authenticated identity, or, where identities are off, the `x-warden-actor` header, required
 * then (four-eyes tells reviewers apart by it).
 */
function reviewerOf(request: FastifyRequest): string {
  if (request.wardenIdentity === undefined && request.headers[ACTOR_HEADER] === undefined) {
    throw new WardenError(
      "WARDEN_ERR_BAD_REQUEST",
      `the reviewer is unknown: send the ${ACTOR_HEADER} header`,
      {
        details: [
          {
            field: ACTOR_HEADER,
            expected: "the reviewer's name: 1 to 128 printable ASCII characters",
            found: "missing",
            fix: `send ${ACTOR_HEADER}: <your reviewer name>, or turn authentication on (auth.required), which names the reviewer by the key or token`,
          },
        ],
      },
    );
  }
  return actorOf(request);
}

/** Metrics: reviewers' final judgements and overrides (automation bias), and the queue by status. */
export function registerReviewMetrics(registry: Registry, review: ReviewService): void {
  const resolved = new Counter({
    name: "warden_review_resolved_total",
    help: "Review items resolved, per reviewer who stands behind the final decision (two under four-eyes)",
    labelNames: ["model", "version", "reviewer"] as const,
    registers: [registry],
  });
  const overrides = new Counter({
    name: "warden_review_overrides_total",
    help: "Final review decisions that differ from the model's, per reviewer (automation-bias signal)",
    labelNames: ["model", "version", "reviewer"] as const,
    registers: [registry],
  });
  review.events.on("judged", (j: ReviewJudged) => {
    const labels = { model: j.model, version: j.version, reviewer: j.reviewer };
    resolved.inc(labels);
    // Zero-valued series exist too, so a rate of overrides is defined from the first resolution.
    overrides.inc(labels, j.override ? 1 : 0);
  });
  new Gauge({
    name: "warden_review_queue_items",
    help: "Review items by status",
    labelNames: ["status"] as const,
    registers: [registry],
    collect() {
      const counts = review.queueCounts();
      for (const status of REVIEW_STATUSES) this.set({ status }, counts[status]);
    },
  });
}

/** The reviewer API under /v1/review. */
export function registerReviewRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const review = ctx.review;
  app.decorate("wardenReview", review);
  // Bodies and queries are checked here, so that every problem names the field, what was expected and found.
  const checkedHere = { validatorCompiler: () => () => true };

  app.get<{ Querystring: Record<string, unknown> }>(
    "/v1/review/items",
    {
      ...checkedHere,
      schema: {
        summary: "The review queue, oldest first",
        tags,
        querystring: {
          type: "object",
          properties: {
            model: { type: "string" },
            status: { type: "string", enum: [...REVIEW_STATUSES] },
            reason: { type: "string", enum: [...REVIEW_REASONS] },
            limit: { type: "integer", minimum: 1, maximum: REVIEW_LIST_MAX, default: REVIEW_LIST_DEFAULT },
            cursor: { type: "string", description: "next_cursor of the previous page" },
          },
        },
        response: {
          200: {
            type: "object",
            properties: {
              items: { type: "array", items: ItemSchema },
              next_cursor: { type: "string", nullable: true },
            },
          },
          400: errorResponses[400],
        },
      },
    },
    async (request) => {
      const q = request.query;
      const problems: FieldProblem[] = [];
      for (const key of Object.keys(q)) {
        if (!["model", "status", "reason", "limit", "cursor"].includes(key)) {
          problems.push({
            field: key,
            expected: "no such parameter",
            found: "present",
            fix: "parameters: model, status, reason, limit, cursor",
          });
        }
      }
      const status = oneOf<ReviewStatus>(q.status, "status", REVIEW_STATUSES, problems);
      const reason = oneOf(q.reason, "reason", REVIEW_REASONS, problems);
      const limit = wholeNumber(q.limit, "limit", 1, REVIEW_LIST_MAX, REVIEW_LIST_DEFAULT, problems);
      const cursor = wholeNumber(q.cursor, "cursor", 1, Number.MAX_SAFE_INTEGER, 0, problems);
      if (q.model !== undefined && typeof q.model !== "string") {
        problems.push({ field: "model", expected: "a model name", found: describeValue(q.model) });
      }
      if (problems.length > 0) throw invalidQuery(problems);
      return review.list({
        model: q.model as string | undefined,
        status,
        reason,
        limit,
        afterSeq: cursor,
      });
    },
  );

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    "/v1/review/items/:id",
    {
      ...checkedHere,
      schema: {
        summary: "A review item with the decision's score, recorded reasons and similar past cases",
        tags,
        params: pathParams("id"),
        querystring: {
          type: "object",
          properties: {
            k: { type: "integer", minimum: 1, maximum: SIMILAR_MAX, default: SIMILAR_DEFAULT },
          },
        },
        response: { 200: AnyObject, ...reviewErrors },
      },
    },
    async (request) => {
      const problems: FieldProblem[] = [];
      const k = wholeNumber(request.query.k, "k", 1, SIMILAR_MAX, SIMILAR_DEFAULT, problems);
      if (problems.length > 0) throw invalidQuery(problems);
      return review.detail(request.params.id, k);
    },
  );

  app.post<{ Params: { id: string } }>(
    "/v1/review/items/:id/claim",
    {
      ...checkedHere,
      schema: {
        summary:
          "Claim an item (x-warden-actor names the reviewer); the claim expires after policy.review.claim_minutes",
        tags,
        params: pathParams("id"),
        response: { 200: ItemSchema, ...reviewErrors },
      },
    },
    async (request) => review.claim(request.params.id, reviewerOf(request)),
  );

  app.post<{ Params: { id: string }; Body: unknown }>(
    "/v1/review/items/:id/resolve",
    {
      ...checkedHere,
      schema: {
        summary:
          "Resolve a claimed item with the final decision and a reason code (recorded as a review ledger record)",
        tags,
        params: pathParams("id"),
        body: ResolveBody,
        response: { 200: { ...ItemSchema, description: "The item after the judgement" }, ...reviewErrors },
      },
    },
    async (request) => review.resolve(request.params.id, reviewerOf(request), request.body),
  );

  app.get<{ Querystring: { model?: string } }>(
    "/v1/review/summary",
    {
      schema: {
        summary: "The queue by status, and resolutions and overrides per model and per reviewer",
        tags,
        querystring: {
          type: "object",
          properties: { model: { type: "string" } },
          additionalProperties: false,
        },
        response: { 200: AnyObject, 400: errorResponses[400] },
      },
    },
    async (request) => review.summary(request.query.model),
  );
}
