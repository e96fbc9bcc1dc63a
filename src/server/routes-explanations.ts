/**
 * Explanations over HTTP: `POST /v1/models/{m}/explain` explains cases without deciding them (nothing is
 * recorded), with any method the model allows and counterfactuals on request; `GET
 * /v1/decisions/{id}/explanation` gives a recorded decision's explanation, checks that it is reproduced by the
 * model version that made it (when that version is loaded), and adds counterfactuals on request.
 */
import type { FastifyInstance } from "fastify";
import { applyPolicy, type FeatureValue, validateInstance } from "../decision/index.js";
import { type FieldProblem, WardenError } from "../errors/index.js";
import type { ExplanationRecord } from "../explain/model-explainer.js";
import type { ExplanationJob, JobResult } from "../explain/service.js";
import type { LedgerRecord } from "../ledger/index.js";
import type { LoadedModel } from "../registry/index.js";
import { mayUseModel } from "./access.js";
import type { RouteContext } from "./app.js";
import { bodyCases, errorResponses, pathParams } from "./routes-decisions.js";

/** Methods `POST /explain` takes. */
export const EXPLAIN_METHODS = ["treeshap", "interventional", "kernelshap", "lime"] as const;
type ExplainMethod = (typeof EXPLAIN_METHODS)[number];

/** Contributions compared to the recorded ones within this (float64 round-off of the same sums). */
const REPRODUCED_TOLERANCE = 1e-9;

const ExplainCase = {
  type: "object",
  properties: {
    features: { type: "object", description: "Feature name → value, as declared in the model's manifest" },
    subject: { type: "object", description: "Accepted for symmetry with decisions; not used" },
    id: { type: "string", minLength: 1, maxLength: 128 },
  },
  required: ["features"],
  additionalProperties: false,
} as const;

const ExplainBody = {
  type: "object",
  description: "One case (`features`) or several (`instances`), and how to explain them.",
  properties: {
    ...ExplainCase.properties,
    instances: { type: "array", items: ExplainCase, minItems: 1, maxItems: 100 },
    method: {
      type: "string",
      enum: [...EXPLAIN_METHODS],
      description:
        "treeshap (exact, path-dependent; XGBoost models), interventional (TreeSHAP against the reference rows; XGBoost), kernelshap (any model), lime (with its stability across 10 seeds). Default: the manifest's policy.explanations.method.",
    },
    counterfactuals: {
      type: "boolean",
      description: "Add the smallest changes that flip each decision (binary models with reference rows)",
    },
    seed: {
      type: "integer",
      minimum: 0,
      maximum: 4294967295,
      description: "Seed of the sampling methods (default 0)",
    },
  },
  additionalProperties: false,
} as const;

interface ExplainCaseInput {
  features?: unknown;
  subject?: unknown;
  id?: string;
}
interface ExplainBodyType extends ExplainCaseInput {
  instances?: ExplainCaseInput[];
  method?: ExplainMethod;
  counterfactuals?: boolean;
  seed?: number;
}

function unavailable(message: string, field?: FieldProblem): WardenError {
  return new WardenError("WARDEN_ERR_EXPLANATION_UNAVAILABLE", message, field ? { details: [field] } : {});
}

/** The method to use, checked against the model's policy and artifact. */
function methodFor(model: LoadedModel, asked: ExplainMethod | undefined): ExplainMethod {
  const m = model.manifest;
  if (m.explanations.when === "never") {
    throw unavailable(`model ${m.name} ${m.version} gives no explanations (policy.explanations.when: never)`);
  }
  const method = asked ?? m.explanations.method;
  if ((method === "treeshap" || method === "interventional") && m.artifact.format !== "xgboost-json") {
    throw unavailable(
      `${method} reads the trees of an XGBoost model; model ${m.name} is ${m.artifact.format}`,
      {
        field: "method",
        expected: "kernelshap or lime for this model",
        found: method,
      },
    );
  }
  return method;
}

/** Explain `rows` validated rows of a model with a method; one result per row. */
async function explainRows(
  model: LoadedModel,
  method: ExplainMethod,
  rows: readonly { row: Float32Array; values: Readonly<Record<string, FeatureValue>> }[],
  seed: number | undefined,
): Promise<
  {
    score: number;
    decision: string | null;
    probabilities?: Readonly<Record<string, number>>;
    explanation: JobResult | ExplanationRecord;
  }[]
> {
  const m = model.manifest;
  const results = await model.batcher.submit(
    rows.map((r) => r.row),
    method === "treeshap" ? rows.map((r) => ({ explain: { values: r.values } })) : undefined,
  );
  const outcomes = results.map((r) => applyPolicy(m, r));
  let explanations: (JobResult | ExplanationRecord)[];
  if (method === "treeshap") {
    explanations = results.map((r) => r.task!.explanation!);
  } else if (method === "lime") {
    explanations = [];
    for (const r of rows) explanations.push(await model.explainer.run({ kind: "lime", row: r.row, seed }));
  } else {
    const width = m.modelFeatures.length;
    const input = new Float32Array(rows.length * width);
    rows.forEach((r, i) => {
      input.set(r.row, i * width);
    });
    const job: ExplanationJob = {
      kind: method,
      input,
      rows: rows.length,
      values: rows.map((r) => r.values),
      seed,
    };
    explanations = (await model.explainer.run(job)) as ExplanationRecord[];
  }
  return outcomes.map((o, i) => ({
    score: o.score,
    decision: o.decision,
    ...(o.probabilities ? { probabilities: o.probabilities } : {}),
    explanation: explanations[i]!,
  }));
}

/** Whether two recorded explanations agree (contributions and base within round-off, the same reasons). */
function sameExplanation(a: ExplanationRecord, b: ExplanationRecord): boolean {
  if (Math.abs(a.base - b.base) > REPRODUCED_TOLERANCE) return false;
  const names = Object.keys(a.contributions);
  if (names.length !== Object.keys(b.contributions).length) return false;
  for (const name of names) {
    const other = b.contributions[name];
    if (other === undefined || Math.abs(a.contributions[name]! - other) > REPRODUCED_TOLERANCE) return false;
  }
  const codes = (e: ExplanationRecord) =>
    (e.reasons ?? []).map((r) => `${r.code}\u0000${r.text}`).join("\u0001");
  return codes(a) === codes(b);
}

export function registerExplanationRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const explain = async (request: { params: { model: string; version?: string }; body: ExplainBodyType }) => {
    const { params, body } = request;
    const model = ctx.registry.get(params.model, params.version);
    const m = model.manifest;
    const { cases, batch } = bodyCases(body, ["features", "subject", "id"], () => body);
    const method = methodFor(model, body.method);
    if (body.counterfactuals === true && !m.explanations.counterfactuals.enabled) {
      throw unavailable(
        `model ${m.name} ${m.version} offers no counterfactuals (policy.explanations.counterfactuals: enabled needs a binary task and reference rows)`,
        { field: "counterfactuals", expected: "false or absent for this model", found: "true" },
      );
    }
    const problems: FieldProblem[] = [];
    const rows: { row: Float32Array; values: Readonly<Record<string, FeatureValue>> }[] = [];
    cases.forEach((c, i) => {
      const checked = validateInstance(m, c.features, c.subject, batch ? `instances[${i}].` : "");
      for (const p of checked.problems) problems.push(p);
      if (checked.instance) rows.push({ row: checked.instance.row, values: checked.instance.inputs });
    });
    if (problems.length > 0) {
      throw new WardenError(
        "WARDEN_ERR_VALIDATION",
        `${problems.length} invalid field${problems.length === 1 ? "" : "s"} for model ${m.name} ${m.version}`,
        { details: problems },
      );
    }
    const explained = await explainRows(model, method, rows, body.seed);
    const answers = await Promise.all(
      explained.map(async (e, i) => ({
        ...(cases[i]!.id !== undefined ? { id: cases[i]!.id } : {}),
        model: m.name,
        version: m.version,
        ...e,
        ...(body.counterfactuals === true
          ? {
              counterfactuals: await model.explainer.run({
                kind: "counterfactuals",
                row: rows[i]!.row,
                seed: body.seed,
              }),
            }
          : {}),
      })),
    );
    return batch ? { explanations: answers } : answers[0];
  };
  const schema = (withVersion: boolean) => ({
    summary: withVersion
      ? "Explain cases with a given model version"
      : "Explain cases with a model's default version",
    description:
      "Scores and explains cases without deciding them: nothing is recorded. TreeSHAP runs on the model's worker beside inference; the other methods and counterfactuals run in the model's explainer thread.",
    tags: ["explanations"],
    params: withVersion ? pathParams("model", "version") : pathParams("model"),
    body: ExplainBody,
    response: {
      ...errorResponses,
      409: {
        description: "The model's policy or artifact does not allow this explanation",
        type: "object",
        additionalProperties: true,
      },
    },
  });
  app.post<{ Params: { model: string }; Body: ExplainBodyType }>(
    "/v1/models/:model/explain",
    { schema: schema(false) },
    explain,
  );
  app.post<{ Params: { model: string; version: string }; Body: ExplainBodyType }>(
    "/v1/models/:model/versions/:version/explain",
    { schema: schema(true) },
    explain,
  );

  app.get<{ Params: { id: string }; Querystring: { counterfactuals?: "true" | "false"; seed?: string } }>(
    "/v1/decisions/:id/explanation",
    {
      schema: {
        summary: "A decision's explanation: as recorded, checked against the model that made it",
        description:
          "`explanation` is what the ledger recorded with the decision (`recorded: true`), or, for a decision recorded without one, computed now from its recorded inputs by the same model version (`recorded: false`). `reproduced` says whether the model version that made the decision, when loaded, gives the same contributions and reasons again (null when that version is not loaded). `?counterfactuals=true` adds the smallest changes to the recorded inputs that flip the decision.",
        tags: ["explanations"],
        params: pathParams("id"),
        querystring: {
          type: "object",
          properties: {
            counterfactuals: {
              type: "string",
              enum: ["true", "false"],
              description: "true: add counterfactuals (binary models with reference rows)",
            },
            seed: {
              type: "string",
              pattern: "^[0-9]{1,9}$",
              description: "Seed of the counterfactual search (default 0)",
            },
          },
          additionalProperties: false,
        },
        response: { 404: errorResponses[404] },
      },
    },
    async (request) => {
      let record = await ctx.ledger.get(request.params.id);
      if (record === undefined) {
        await ctx.ledger.committed();
        record = await ctx.ledger.get(request.params.id);
      }
      if (record === undefined || record.kind !== "decision" || !mayUseModel(request, record.model)) {
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
      const body = record.body as {
        explanation?: ExplanationRecord;
        inputs: Record<string, unknown>;
        decision: string | null;
        manifest_sha256?: string;
      };
      const model = sameVersion(ctx, record, body.manifest_sha256);
      const recorded = body.explanation;
      let current: ExplanationRecord | undefined;
      let row: Float32Array | undefined;
      if (model !== undefined) {
        const checked = validateInstance(model.manifest, body.inputs, undefined, "");
        if (checked.instance !== undefined) {
          row = checked.instance.row;
          const method: ExplainMethod =
            recorded?.method === "kernelshap" ? "kernelshap" : methodFor(model, undefined);
          const [e] = await explainRows(model, method, [{ row, values: checked.instance.inputs }], 0);
          current = e!.explanation as ExplanationRecord;
        }
      }
      if (recorded === undefined && current === undefined) {
        throw unavailable(
          `decision ${record.id} was recorded without an explanation, and model ${record.model} ${record.version} is not loaded to compute one`,
        );
      }
      let counterfactuals: JobResult | undefined;
      if (request.query.counterfactuals === "true") {
        if (model === undefined || row === undefined) {
          throw unavailable(`counterfactuals need model ${record.model} ${record.version} loaded`);
        }
        const seed = request.query.seed === undefined ? 0 : Number(request.query.seed);
        counterfactuals = await model.explainer.run({ kind: "counterfactuals", row, seed });
      }
      return {
        decision_id: record.id,
        model: record.model,
        version: record.version,
        decision: body.decision,
        recorded: recorded !== undefined,
        explanation: recorded ?? current,
        reproduced:
          recorded === undefined || current === undefined ? null : sameExplanation(recorded, current),
        ...(counterfactuals === undefined ? {} : { counterfactuals }),
      };
    },
  );
}

/** The loaded model version that made a recorded decision (same manifest), if any. */
function sameVersion(
  ctx: RouteContext,
  record: LedgerRecord,
  manifestSha256: string | undefined,
): LoadedModel | undefined {
  try {
    const model = ctx.registry.get(record.model, record.version);
    return manifestSha256 === undefined || model.manifest.manifestSha256 === manifestSha256
      ? model
      : undefined;
  } catch {
    return undefined;
  }
}
