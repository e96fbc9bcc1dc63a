import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Manifest } from "../config/index.js";
import type { DecisionResult, InstanceInput } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import { RECORD_KINDS } from "../ledger/index.js";
import type { LoadedModel } from "../registry/index.js";
import { mayUseModel } from "./access.js";
import type { RouteContext } from "./app.js";
import { callerOf } from "./extraction.js";

const Instance = {
  type: "object",
  description:
    "One case to decide: the model's features and, separately, the subject's sensitive attributes.",
  properties: {
    features: { type: "object", description: "Feature name → value, as declared in the model's manifest" },
    subject: {
      type: "object",
      description: "Sensitive attributes (recorded for fairness monitoring, never fed to the model)",
    },
    id: { type: "string", minLength: 1, maxLength: 128, description: "Your reference for this case" },
    subject_id: {
      type: "string",
      minLength: 1,
      maxLength: 128,
      description:
        "A stable key for the subject (recorded). A canary split hashes it, so a subject always gets the same version; without it the split uses `id`, and without either a random arm (recorded as such).",
    },
  },
  required: ["features"],
  additionalProperties: false,
} as const;

const DecisionBody = {
  type: "object",
  description: "Either one case (`features`, `subject`, `id`) or several (`instances`), not both.",
  properties: {
    ...Instance.properties,
    instances: { type: "array", items: Instance, minItems: 1 },
    explain: {
      type: "boolean",
      description:
        "Explain the decisions (reasons in the answer, the full explanation in the ledger). Models whose policy.explanations.when is always explain every decision anyway; never refuses it (409).",
    },
  },
  additionalProperties: false,
} as const;

const ReasonSchema = {
  type: "object",
  properties: {
    code: { type: "string", description: "Stable reason code: the feature's name, or its group's" },
    text: {
      type: "string",
      description: "The reason in the manifest's words, with the value and typical values",
    },
    contribution: {
      type: "number",
      description: "Push toward the adverse outcome, in margin units (log-odds)",
    },
  },
  required: ["code", "text", "contribution"],
} as const;

/**
 * A record as GET /v1/decisions/{id} shows it. Only the fields every kind of record has are typed; the others
 * (the body of any kind of record spreads into the answer) are described without a type, so the response
 * serialiser writes them as they are (a typed field would be coerced: 401 into "401", null into ""), and the rest
 * of the entry's body passes through (additionalProperties).
 */
const RecordedDecisionSchema = {
  description:
    "The record: its identity and place in the hash chain, then its entry's body as recorded (inputs, subject, outputs, decision, explanation, latency_ms, deployment, privacy, ...), then the vault's and the review queue's views",
  type: "object",
  additionalProperties: true,
  properties: {
    decision_id: { type: "string", description: "The record's id (a decision's UUIDv7)" },
    kind: { type: "string", enum: [...RECORD_KINDS], description: "decision, rejection, ..." },
    time: { type: "string", description: "When it was decided (ISO-8601 UTC)" },
    model: { type: "string" },
    version: { type: "string" },
    artifact_sha256: { type: "string", description: "sha256 of the model artifact that decided" },
    manifest_sha256: { description: "sha256 of the manifest it was served under (a decision's)" },
    inputs: {
      description:
        "The model's features as validated (for a rejection, the input as it came, which may be malformed)",
    },
    subject: {
      description:
        "Sensitive attributes as recorded: values (subject_storage clear) or one salted commitment per attribute",
    },
    outputs: { description: "score and probabilities" },
    decision: { description: "The model's decision as recorded (a label; null while held for review)" },
    explanation: {
      description:
        "When the decision was explained with it: method, base, contributions, reasons (GET /v1/decisions/{id}/explanation gives it on request)",
    },
    subject_vault: { description: "What the subject vault holds for it (pseudonyms, a key id, or purged)" },
    subject_revealed: { description: "With ?reveal=subject: the decrypted subject" },
    status: {
      description:
        "A decision held for review or appealed: pending_review or decided (another kind of record may carry a status of its own, such as an access record's HTTP status)",
    },
    final_decision: { description: "The reviewer's decision once resolved; null while it waits" },
    review: { description: "The review queue's item for it" },
    ledger: {
      type: "object",
      properties: {
        seq: { type: "integer", description: "1-based position in the ledger" },
        prev_hash: { type: "string" },
        hash: { type: "string", description: "sha256(prev_hash ‖ canonical JSON of the entry), hex" },
      },
      required: ["seq", "prev_hash", "hash"],
    },
  },
  required: ["decision_id", "kind", "time", "model", "version", "artifact_sha256", "ledger"],
} as const;

const DecisionResultSchema = {
  type: "object",
  properties: {
    decision_id: { type: "string", description: "Ledger id of this decision (UUIDv7)" },
    id: { type: "string", description: "Your reference, when you sent one" },
    model: { type: "string" },
    version: { type: "string" },
    score: {
      type: "number",
      nullable: true,
      description:
        "Binary: P(positive label); multiclass: P(decided class); regression: the value; null when sent to human review",
    },
    probabilities: { type: "object", additionalProperties: { type: "number" } },
    decision: { type: "string", nullable: true },
    latency_ms: { type: "number" },
    breaker: {
      type: "object",
      additionalProperties: true,
      description:
        "Set when a circuit breaker changed who answers: action fallback_version (answered by this version instead of the routed one, named with its state and rule), probe (a half-open breaker's probe) or human_review",
    },
    review: {
      type: "object",
      additionalProperties: true,
      description:
        "Sent to human review by an open breaker: status pending_review and the review id; no decision yet",
    },
    reasons: {
      type: "array",
      items: ReasonSchema,
      description:
        "An adverse decision's principal reasons, largest first (at most policy.explanations.max_reasons), when it was explained. Every explained decision, favourable or not, has its full explanation recorded: GET /v1/decisions/{id}/explanation.",
    },
    status: {
      type: "string",
      enum: ["pending_review"],
      description:
        "Present when the decision is held for human review (policy.review): decision is then null until a reviewer resolves it; GET /v1/decisions/{id} shows the final decision",
    },
    review_reasons: {
      type: "array",
      items: { type: "string" },
      description: "Why the decision is held: all, borderline, anomaly, breaker_open",
    },
  },
  required: ["decision_id", "model", "version", "score", "decision", "latency_ms"],
} as const;

const ErrorSchema = {
  type: "object",
  properties: {
    error: { type: "string" },
    code: { type: "string" },
    details: {
      type: "array",
      items: {
        type: "object",
        properties: {
          field: { type: "string" },
          expected: { type: "string" },
          found: { type: "string" },
          fix: { type: "string" },
        },
      },
    },
  },
  required: ["error"],
} as const;

/** The schema of string path parameters, all required (`pathParams("model", "version")`). */
export function pathParams(...names: readonly string[]) {
  return {
    type: "object",
    properties: Object.fromEntries(names.map((name) => [name, { type: "string" }])),
    required: [...names],
  } as const;
}

/** The shared error response schema (documentation). */
export const errorResponses = {
  400: { description: "Invalid request: every bad field is listed", ...ErrorSchema },
  404: { description: "Unknown model, version or decision", ...ErrorSchema },
} as const;

interface DecisionBodyType {
  features?: unknown;
  subject?: unknown;
  id?: unknown;
  subject_id?: unknown;
  instances?: InstanceInput[];
  explain?: boolean;
}

/** A model summary for listings. */
export function modelSummary(model: LoadedModel): Record<string, unknown> {
  const m: Manifest = model.manifest;
  return {
    name: m.name,
    version: m.version,
    description: m.description ?? null,
    task: m.task,
    risk_tier: m.risk_tier,
    owner: m.owner,
    intended_use: m.intended_use,
    artifact: { format: m.artifact.format, sha256: m.artifact.sha256 },
    manifest_sha256: m.manifestSha256,
    features: m.features.map((f) => ({ ...f })),
    output: {
      labels: m.output.labels ?? null,
      positive_label: m.output.positive_label ?? null,
      threshold: m.output.threshold,
    },
    batching: { ...m.batching },
    runtime: { ...m.runtime, engine: model.description.details },
    loaded_at: model.loadedAt,
  };
}

/**
 * The cases of a body that holds either one (`features` and its companions, `fields`) or several
 * (`instances`).
 *
 * @throws WardenError WARDEN_ERR_BAD_REQUEST when it holds both, or neither.
 */
export function bodyCases<C, B extends { readonly instances?: C[] | undefined; readonly features?: unknown }>(
  body: B,
  fields: readonly (keyof B)[],
  single: () => C,
): { cases: C[]; batch: boolean } {
  const batch = body.instances !== undefined;
  if (batch && fields.some((field) => body[field] !== undefined)) {
    throw new WardenError(
      "WARDEN_ERR_BAD_REQUEST",
      "send either features (one case) or instances (several), not both",
      {
        details: [{ field: "instances", expected: "absent when features is present", found: "both present" }],
      },
    );
  }
  if (!batch && body.features === undefined) {
    throw new WardenError(
      "WARDEN_ERR_BAD_REQUEST",
      "the body needs features (one case) or instances (several)",
      {
        details: [
          {
            field: "features",
            expected: 'an object such as {"features": {...}}',
            found: "missing",
            fix: "or send instances: [...]",
          },
        ],
      },
    );
  }
  return { cases: batch ? body.instances! : [single()], batch };
}

export function registerDecisionRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const decide = async (
    request: FastifyRequest<{ Params: { model: string; version?: string }; Body: DecisionBodyType }>,
    reply: FastifyReply,
  ) => {
    const { model, version } = request.params;
    const loaded = ctx.registry.get(model, version);
    request.wardenModel = { name: loaded.manifest.name, version: loaded.manifest.version };
    const body = request.body;
    const { cases: instances, batch } = bodyCases<InstanceInput, DecisionBodyType>(
      body,
      ["features", "subject", "id", "subject_id"],
      () => ({
        features: body.features,
        subject: body.subject,
        id: body.id,
        subject_id: body.subject_id,
      }),
    );
    if (instances.length > ctx.config.max_instances_per_request) {
      throw new WardenError("WARDEN_ERR_BAD_REQUEST", `too many instances in one request`, {
        details: [
          {
            field: "instances",
            expected: `at most ${ctx.config.max_instances_per_request} (max_instances_per_request)`,
            found: `${instances.length}`,
            fix: "split the request",
          },
        ],
      });
    }
    const caller = callerOf(request);
    ctx.extraction.admit(caller, model, instances.length);
    const results = await ctx.pipeline.decide({
      caller,
      model,
      version,
      instances,
      route: "decisions",
      requestId: request.id,
      receivedAt: request.wardenStart,
      fieldPrefix: batch ? (i) => `instances[${i}].` : () => "",
      explain: body.explain,
    });
    // Cases sent to human review by an open breaker are accepted, not decided.
    if (results.length > 0 && results.every((r) => r.review !== undefined)) void reply.status(202);
    return batch ? { decisions: results } : (results[0] as DecisionResult);
  };

  const decisionSchema = (withVersion: boolean) => ({
    summary: withVersion ? "Decide with a given model version" : "Decide with a model's default version",
    tags: ["decisions"],
    params: withVersion ? pathParams("model", "version") : pathParams("model"),
    body: DecisionBody,
    response: {
      202: {
        description:
          "Every case was sent to human review by an open circuit breaker (review.status pending_review)",
        type: "object",
        additionalProperties: true,
        properties: {
          ...DecisionResultSchema.properties,
          decisions: { type: "array", items: DecisionResultSchema },
        },
      },
      200: {
        description: "One decision (single case) or { decisions: [...] } (instances)",
        type: "object",
        additionalProperties: true,
        properties: {
          ...DecisionResultSchema.properties,
          decisions: { type: "array", items: DecisionResultSchema },
        },
      },
      ...errorResponses,
    },
  });
  app.post("/v1/models/:model/decisions", { schema: decisionSchema(false) }, decide);
  app.post("/v1/models/:model/versions/:version/decisions", { schema: decisionSchema(true) }, decide);

  app.get<{ Params: { id: string }; Querystring: { reveal?: "subject" } }>(
    "/v1/decisions/:id",
    {
      schema: {
        summary: "A recorded decision (or rejection) from the ledger, with its place in the hash chain",
        description:
          "`decision` is the model's as recorded. A decision held for human review or appealed also has `status` (`pending_review` or `decided`), `final_decision` (null while a held decision waits; the reviewer's once resolved) and `review` (the queue item). `subject` is shown as recorded: the values for `subject_storage: clear`, otherwise one salted commitment per attribute, with `subject_vault` telling what the vault holds (pseudonyms, or the encryption key id; or that retention purged it). `?reveal=subject` adds the decrypted subject for an authorised caller: auditors and admins (403 for other roles; 401 until authentication is configured).",
        tags: ["decisions"],
        params: pathParams("id"),
        querystring: {
          type: "object",
          properties: {
            reveal: {
              type: "string",
              enum: ["subject"],
              description: "subject: decrypt an encrypted subject (authorised callers only)",
            },
          },
          additionalProperties: false,
        },
        response: {
          200: RecordedDecisionSchema,
          401: { description: "Not authorised to reveal the subject (no authorisation configured)" },
          403: { description: "The caller's role may not reveal the subject (auditor and admin may)" },
          404: errorResponses[404],
        },
      },
    },
    async (request) => {
      let record = await ctx.ledger.get(request.params.id);
      if (record === undefined) {
        // It may have been answered a moment ago and not be committed yet.
        await ctx.ledger.committed();
        record = await ctx.ledger.get(request.params.id);
      }
      if (record === undefined || !mayUseModel(request, record.model)) {
        throw new WardenError(
          "WARDEN_ERR_DECISION_NOT_FOUND",
          `no decision with id ${JSON.stringify(request.params.id.slice(0, 80))}`,
          {
            details: [
              {
                field: "id",
                expected: "a decision_id returned by a decision request",
                found: JSON.stringify(request.params.id.slice(0, 80)),
              },
            ],
          },
        );
      }
      const vault = ctx.privacy?.view(record);
      // A decision held for review or appealed: its review state and the final decision.
      const reviewed = ctx.review.decisionView(record);
      let revealed: Record<string, unknown> | undefined;
      if (request.query.reveal === "subject") {
        const identity = request.wardenIdentity;
        if (ctx.canRevealSubject !== undefined && identity !== undefined && !ctx.canRevealSubject(request)) {
          throw new WardenError(
            "WARDEN_ERR_FORBIDDEN",
            `${identity.name} (role ${identity.role}) may not reveal a decision's protected subject`,
            {
              details: [
                {
                  field: "reveal",
                  expected: "a caller allowed to reveal subjects (by default, of role auditor or admin)",
                  found: `role ${identity.role}`,
                  fix: "leave reveal out to see the subject as stored, or ask an auditor",
                },
              ],
            },
          );
        }
        if (ctx.canRevealSubject?.(request) !== true) {
          throw new WardenError(
            "WARDEN_ERR_UNAUTHORIZED",
            "revealing a decision's subject needs an authorised caller, and this server authorises no one",
            {
              details: [
                {
                  field: "reveal",
                  expected: "a caller the server's authorisation hook admits",
                  found: "no authorisation configured",
                  fix: "leave reveal out to see the subject as stored",
                },
              ],
            },
          );
        }
        if (ctx.privacy === undefined)
          throw new WardenError("WARDEN_ERR_VAULT", "this server has no subject vault");
        revealed = ctx.privacy.reveal(record);
      }
      return {
        decision_id: record.id,
        kind: record.kind,
        time: record.time,
        model: record.model,
        version: record.version,
        artifact_sha256: record.artifact_sha256,
        ...record.body,
        ...(vault !== undefined ? { subject_vault: vault } : {}),
        ...(revealed !== undefined ? { subject_revealed: revealed } : {}),
        ...reviewed,
        ledger: { seq: record.seq, prev_hash: record.prev_hash, hash: record.hash },
      };
    },
  );

  app.get(
    "/v1/models",
    {
      schema: {
        summary:
          "Every loaded model version (for a credential that names its models, only those: the others answer it 403)",
        tags: ["models"],
        querystring: { type: "object", properties: {}, additionalProperties: false },
      },
    },
    async (request) => ({
      models: ctx.registry
        .list()
        .filter((m) => mayUseModel(request, m.manifest.name))
        .map(modelSummary),
    }),
  );
  app.get<{ Params: { model: string } }>(
    "/v1/models/:model",
    {
      schema: {
        summary: "A model's manifest, engine and versions",
        tags: ["models"],
        params: pathParams("model"),
        response: { 404: errorResponses[404] },
      },
    },
    async (request) => {
      const model = ctx.registry.get(request.params.model);
      return {
        ...modelSummary(model),
        versions: ctx.registry.versions(model.manifest.name).map((m) => m.manifest.version),
      };
    },
  );
}
