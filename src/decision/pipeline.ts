import { v7 as uuidv7 } from "uuid";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import type { LedgerEntry } from "../ledger/index.js";
import type { LoadedModel, ModelRegistry } from "../registry/index.js";
import { type ValidInstance, validateInstance } from "./input.js";
import { applyPolicy } from "./policy.js";

/** Where a decision request came from (recorded with it). */
export const DECISION_ROUTES = ["decisions", "oip"] as const;
export type DecisionRoute = (typeof DECISION_ROUTES)[number];

/** One instance as the client sent it. */
export interface InstanceInput {
  readonly features: unknown;
  readonly subject?: unknown;
  /** The client's own reference for this instance (optional, ≤ 128 characters). */
  readonly id?: unknown;
}

export interface DecisionRequest {
  readonly model: string;
  readonly version?: string | undefined;
  readonly instances: readonly InstanceInput[];
  readonly route: DecisionRoute;
  readonly requestId: string;
  /** `performance.now()` when the request arrived, for latency. */
  readonly receivedAt: number;
  /** Prefix for field paths in errors, per instance (`instances[3].`), or "" for a single instance. */
  readonly fieldPrefix: (index: number) => string;
}

/** The answer for one instance. */
export interface DecisionResult {
  readonly decision_id: string;
  readonly id?: string;
  readonly model: string;
  readonly version: string;
  readonly score: number;
  readonly probabilities?: Readonly<Record<string, number>>;
  readonly decision: string | null;
  readonly latency_ms: number;
}

/** What the pipeline needs from the ledger: an append that resolves once the entry cannot be lost. */
export interface LedgerSink {
  write(entry: LedgerEntry): Promise<unknown>;
}

/** Per-request observations for metrics. */
export interface PipelineObserver {
  onRejected?(model: LoadedModel, reason: string): void;
}

/** The decision pipeline: validate → infer (batched, worker threads) → decide → record. */
export interface DecisionPipeline {
  decide(request: DecisionRequest): Promise<DecisionResult[]>;
  /**
   * Record a refusal of a request that reached a model but failed before the pipeline could read it (for
   * example tensors of the wrong shape), then throw `error`.
   */
  reject(model: LoadedModel, context: RejectionContext, error: WardenError): Promise<never>;
}

/** Where a refused request came from. */
export interface RejectionContext {
  readonly route: DecisionRoute;
  readonly requestId: string;
  /** Instances (rows) in the request, as far as they could be counted. */
  readonly instances: number;
  readonly clientIds?: readonly string[];
}

/** Length in Unicode code points (what JSON Schema's maxLength counts), not UTF-16 units. */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function rejection(request: DecisionRequest, clientIds: readonly (string | undefined)[]): RejectionContext {
  return {
    route: request.route,
    requestId: request.requestId,
    instances: request.instances.length,
    clientIds: clientIds.filter((id): id is string => id !== undefined),
  };
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Compose the stages. Each decision is appended to the ledger before its answer is returned (group
 * commit), so an acknowledged decision is never lost. Requests that reach a model and are refused
 * (invalid input, queue full, timeout) are recorded as `rejection` entries.
 */
export function createDecisionPipeline(
  registry: ModelRegistry,
  ledger: LedgerSink,
  observer: PipelineObserver = {},
): DecisionPipeline {
  const reject = async (
    model: LoadedModel,
    context: RejectionContext,
    error: WardenError,
  ): Promise<never> => {
    observer.onRejected?.(model, error.code);
    const { manifest } = model;
    await ledger.write({
      id: uuidv7(),
      kind: "rejection",
      time: new Date().toISOString(),
      model: manifest.name,
      version: manifest.version,
      artifact_sha256: manifest.artifact.sha256,
      body: {
        client_ids: [...(context.clientIds ?? [])],
        error: { code: error.code, details: error.details.map((d) => ({ ...d })), message: error.message },
        instances: context.instances,
        request_id: context.requestId,
        route: context.route,
      },
    });
    throw error;
  };

  return {
    reject,
    async decide(request) {
      const model = registry.get(request.model, request.version);
      const { manifest } = model;
      const problems: FieldProblem[] = [];
      const valid: ValidInstance[] = [];
      const clientIds: (string | undefined)[] = [];
      request.instances.forEach((instance, i) => {
        const prefix = request.fieldPrefix(i);
        const id = instance.id;
        if (id !== undefined && (typeof id !== "string" || id.length === 0 || codePoints(id) > 128)) {
          problems.push({
            field: `${prefix}id`,
            expected: "a string of 1 to 128 characters (your reference for this instance)",
            found: describeValue(id),
          });
        }
        clientIds.push(typeof id === "string" ? id : undefined);
        const checked = validateInstance(manifest, instance.features, instance.subject, prefix);
        // A loop, not push(...spread): a hostile body can carry more problems than a call has arguments.
        for (const problem of checked.problems) problems.push(problem);
        if (checked.instance) valid.push(checked.instance);
      });
      if (problems.length > 0) {
        const error = new WardenError(
          "WARDEN_ERR_VALIDATION",
          `${problems.length} invalid field${problems.length === 1 ? "" : "s"} for model ${manifest.name} ${manifest.version}: ${problems
            .slice(0, 3)
            .map((p) => p.field)
            .join(", ")}${problems.length > 3 ? ", ..." : ""}`,
          { details: problems },
        );
        return reject(model, rejection(request, clientIds), error);
      }

      let rows: Awaited<ReturnType<typeof model.batcher.submit>>;
      try {
        rows = await model.batcher.submit(valid.map((v) => v.row));
      } catch (error) {
        // Refusals (queue full, timeout) are recorded; a model failure is an error, not a decision.
        if (error instanceof WardenError && (error.status < 500 || error.code === "WARDEN_ERR_TIMEOUT")) {
          return reject(model, rejection(request, clientIds), error);
        }
        throw error;
      }

      // Decide every row before recording any: a row the policy refuses (a non-finite output) fails the whole
      // request, and then none of its decisions may be in the ledger unanswered.
      const outcomes = valid.map((_, i) => applyPolicy(manifest, rows[i]!));
      const time = new Date().toISOString();
      const latency = roundMs(performance.now() - request.receivedAt);
      const results: DecisionResult[] = [];
      const writes: Promise<unknown>[] = [];
      valid.forEach((instance, i) => {
        const outcome = outcomes[i]!;
        const decisionId = uuidv7();
        const clientId = clientIds[i];
        // Keys in sorted order: the ledger's canonical JSON then needs no sort.
        const body: Record<string, unknown> = {
          batch_size: rows[i]!.batchSize,
          ...(clientId !== undefined ? { client_id: clientId } : {}),
          decision: outcome.decision,
          inputs: instance.inputs,
          latency_ms: latency,
          manifest_sha256: manifest.manifestSha256,
          outputs: outcome.probabilities
            ? { probabilities: outcome.probabilities, score: outcome.score }
            : { score: outcome.score },
          request_id: request.requestId,
          route: request.route,
          subject: instance.subject,
          threshold: manifest.task === "binary" ? manifest.output.threshold : null,
        };
        writes.push(
          ledger.write({
            id: decisionId,
            kind: "decision",
            time,
            model: manifest.name,
            version: manifest.version,
            artifact_sha256: manifest.artifact.sha256,
            body,
          }),
        );
        results.push({
          decision_id: decisionId,
          ...(clientId !== undefined ? { id: clientId } : {}),
          model: manifest.name,
          version: manifest.version,
          score: outcome.score,
          ...(outcome.probabilities ? { probabilities: outcome.probabilities } : {}),
          decision: outcome.decision,
          latency_ms: latency,
        });
      });
      await Promise.all(writes);
      return results;
    },
  };
}
