import { v7 as uuidv7 } from "uuid";
import { type DisclosurePolicy, type Manifest, roundTo } from "../config/index.js";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import { type ExplanationRecord, type ReasonSummary, reasonSummary } from "../explain/model-explainer.js";
import { CanonicalText, type LedgerAttachment, type LedgerEntry } from "../ledger/index.js";
import type { SealedSubject } from "../privacy/seal.js";
import type { LoadedModel, ModelRegistry, Route, RoutingKey } from "../registry/index.js";
import { hashKey } from "../registry/index.js";
import type { RowResult } from "../runtime/batcher.js";
import type { RecordedExplanation, RowTask } from "../runtime/row-tasks.js";
import { type FeatureValue, type ValidInstance, validateInstance } from "./input.js";
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
  /** A stable key for the subject (optional, ≤ 128 characters): canary arms stick to it. Recorded. */
  readonly subject_id?: unknown;
}

/** Picks the version that answers one instance (the deployment manager's `route`). */
export type Router = (model: string, version: string | undefined, key: RoutingKey) => Route;

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
  /**
   * The client asks for explanations (`explain: true`): given by models whose `policy.explanations.when` is
   * `on_request`; those with `always` explain every decision anyway, and `never` refuses the request.
   */
  readonly explain?: boolean | undefined;
  /** Who asked (`key:<id>`, `jwt:<iss>:<sub>`, `ip:<address>`), for the extraction defences. */
  readonly caller?: string | undefined;
}

/** The answer for one instance. */
export interface DecisionResult {
  readonly decision_id: string;
  readonly id?: string;
  readonly model: string;
  readonly version: string;
  /** null for a case sent to human review. */
  readonly score: number | null;
  readonly probabilities?: Readonly<Record<string, number>>;
  readonly decision: string | null;
  readonly latency_ms: number;
  /** Answered by a fallback version because the routed version's breaker is open, or a probe of it. */
  readonly breaker?: Readonly<Record<string, unknown>>;
  /** Sent to human review by an open breaker: no decision yet. */
  readonly review?: { readonly status: "pending_review"; readonly review_id: string };
  /** The principal reasons, when the decision was explained (binary models). */
  readonly reasons?: readonly ReasonSummary[];
  /**
   * `pending_review` when the decision is held for human review: `decision` is then null (the model's
   * provisional decision is recorded in the ledger; the reviewer's becomes final). Absent otherwise.
   */
  readonly status?: "pending_review";
  /** Why the decision is held (e.g. `borderline`), when it is. */
  readonly review_reasons?: readonly string[];
}

/**
 * Human review (src/review): which decisions are held for a reviewer. Consulted once per decision after the
 * output policy, before anything is recorded; must be cheap and synchronous.
 */
export interface ReviewRouting {
  /** Why this decision goes to a reviewer (e.g. `["borderline"]`); empty: it is final. */
  route(model: LoadedModel, row: Float32Array, score: number, decision: string | null): readonly string[];
  /** The held decisions' entries, once the ledger has them (the queue takes them in). */
  held(entries: readonly { readonly entry: LedgerEntry; readonly reasons: readonly string[] }[]): void;
}

/** A reason as a decision's answer gives it (the full explanation is recorded in the ledger). */
export type { ReasonSummary };

/**
 * Explains decisions off the model's worker (KernelSHAP for a model without trees): in explainer threads
 * of their own, so that no other request waits for it.
 */
export interface OffThreadExplainer {
  /** One explanation per row, in order. */
  explain(
    model: LoadedModel,
    rows: readonly { readonly row: Float32Array; readonly values: Readonly<Record<string, FeatureValue>> }[],
  ): Promise<ExplanationRecord[]>;
}

/** What the pipeline needs from the ledger: an append that resolves once the entry cannot be lost. */
export interface LedgerSink {
  /**
   * Record an entry. `attachment.vaultJson` (a protected subject's vault row) travels with it through the same
   * write-ahead journal and is stored before the entry is committed: one durable write for both.
   */
  write(entry: LedgerEntry, attachment?: LedgerAttachment): Promise<unknown>;
  /**
   * Whether the ledger's backlog is full (writes would be refused with WARDEN_ERR_LEDGER_BUSY): a request is
   * then refused before inference, rather than decided and not recorded.
   */
  backlogged?(): boolean;
}

/** What a rejection records of a subject's refused value when the model does not keep subjects in clear. */
const SUBJECT_FIELD = /(^|\.)subject(\.|$)/;

/** Per-request observations for metrics. */
export interface PipelineObserver {
  onRejected?(model: LoadedModel, reason: string): void;
  /** A shadow score or its record failed (the served answer is not affected). */
  onShadowError?(model: LoadedModel, error: Error): void;
  /**
   * A decision was recorded: its model version, encoded row and policy score (for the live monitors). Called
   * once per decision, after the ledger has it; must be cheap (O(features)).
   */
  onDecided?(model: LoadedModel, row: Float32Array, score: number, decided: DecidedInstance): void;
}

/**
 * A recorded decision as the live monitors see it. `subject` holds the validated sensitive values in memory
 * (whatever `subject_storage` keeps in the ledger): an observer must not store them in clear.
 */
export interface DecidedInstance {
  readonly decisionId: string;
  /** The model's decision (the provisional one when held for review). */
  readonly decision: string | null;
  readonly subject: Readonly<Record<string, FeatureValue>>;
  /** Who asked (DecisionRequest.caller). */
  readonly caller?: string | undefined;
}

/** Why a request did not reach the version it was routed to (recorded with the decision, returned with it). */
export interface BreakerNote {
  /** The version whose circuit breaker is open or half-open. */
  readonly version: string;
  readonly state: "open" | "half_open";
  /** The rule that opened it, or `manual_stop`. */
  readonly rule: string;
}

/** What the circuit breaker of the version an instance was routed to says (server/breakers.ts). */
export type BreakerVerdict =
  | { readonly action: "serve"; readonly probe: boolean }
  | { readonly action: "fallback_version"; readonly model: LoadedModel; readonly breaker: BreakerNote }
  | { readonly action: "human_review"; readonly breaker: BreakerNote; readonly retryAfterSeconds: number }
  | { readonly action: "refuse"; readonly error: WardenError };

/**
 * The circuit breakers as the pipeline sees them: a gate before inference, observations after it. O(rules)
 * per call, on the serving thread.
 */
export interface BreakerGate {
  /** Before validation: serve, probe, or fall back (`key`: the instance's routing key, else the request id). */
  admit(model: LoadedModel, key: string): BreakerVerdict;
  /** A decision was recorded (after `onDecided`): its encoded row and outcome. */
  served(
    model: LoadedModel,
    row: Float32Array,
    outcome: {
      readonly score: number;
      readonly decision: string | null;
      readonly probabilities?: Readonly<Record<string, number>> | undefined;
    },
  ): void;
  /** The model failed to answer `rows` rows (an inference failure, a timeout, no live instance). */
  failed(model: LoadedModel, rows: number): void;
}

/** The pipeline's optional stages. */
export interface PipelineOptions {
  readonly breakers?: BreakerGate | undefined;
  /**
   * Human review: which decisions are held for a reviewer. An open breaker whose fallback is human review
   * holds every decision of its version (reason `breaker_open`); without this, such requests are refused.
   */
  readonly review?: ReviewRouting | undefined;
}

/** The decision pipeline: validate → infer (batched, worker threads) → decide → record. */
export interface DecisionPipeline {
  decide(request: DecisionRequest): Promise<DecisionResult[]>;
  /**
   * Record a refusal of a request that reached a model but failed before the pipeline could read it (for
   * example tensors of the wrong shape), then throw `error`.
   */
  reject(model: LoadedModel, context: RejectionContext, error: WardenError): Promise<never>;
  /** Resolves once every shadow score started so far is recorded (or has failed). */
  shadowsSettled(): Promise<void>;
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

/** The time now as ISO-8601 UTC with milliseconds; the text is made once per millisecond (requests share it). */
let isoMs = Number.NaN;
let isoText = "";
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Compose the stages. Each decision is appended to the ledger before its answer is returned (group
 * commit), so an acknowledged decision is never lost. Requests that reach a model and are refused
 * (invalid input, queue full, timeout) are recorded as `rejection` entries.
 */
/** Routing without deployments: the registry's default version, or the pinned one. */
export function registryRouter(registry: ModelRegistry): Router {
  return (model, version, key) => ({
    model: registry.get(model, version),
    shadow: undefined,
    deployment: {
      alias: null,
      arm: version === undefined ? "production" : "pinned",
      key_source: key.source,
      policy: "single",
      subject_key_hash: key.key === undefined ? null : hashKey(key.key),
    },
  });
}

function validKey(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && codePoints(value) <= 128;
}

/** The key an instance is routed by: subject_id, else the client's id, else none (a random arm). */
function routingKey(instance: InstanceInput): RoutingKey {
  if (validKey(instance.subject_id)) return { key: instance.subject_id, source: "subject_id" };
  if (validKey(instance.id)) return { key: instance.id, source: "id" };
  return { key: undefined, source: "random" };
}

export function createDecisionPipeline(
  registry: ModelRegistry,
  ledger: LedgerSink,
  observer: PipelineObserver = {},
  router: Router = registryRouter(registry),
  offThread?: OffThreadExplainer,
  options: PipelineOptions = {},
): DecisionPipeline {
  const gate = options.breakers;
  const review = options.review;
  const shadows = new Set<Promise<void>>();
  /**
   * Score the served instances with the shadow candidate and record each answer as a `shadow` record that
   * points to the served decision. Never awaited by the request: its failures are recorded and reported.
   */
  const runShadow = (
    shadow: LoadedModel,
    request: DecisionRequest,
    served: { instance: InstanceInput; decisionId: string; version: string }[],
  ): void => {
    const m = shadow.manifest;
    const started = performance.now();
    const record = (decisionId: string, servedVersion: string, rest: Record<string, unknown>) =>
      ledger.write({
        id: uuidv7(),
        kind: "shadow",
        time: new Date().toISOString(),
        model: m.name,
        version: m.version,
        artifact_sha256: m.artifact.sha256,
        // Keys in sorted order.
        body: {
          ...(rest.batch_size !== undefined ? { batch_size: rest.batch_size } : {}),
          ...(rest.decision !== undefined ? { decision: rest.decision } : {}),
          decision_id: decisionId,
          ...(rest.error !== undefined ? { error: rest.error } : {}),
          latency_ms: roundMs(performance.now() - started),
          manifest_sha256: m.manifestSha256,
          ...(rest.outputs !== undefined ? { outputs: rest.outputs } : {}),
          request_id: request.requestId,
          served_version: servedVersion,
        },
      });
    const failAll = (error: Error) => {
      observer.onShadowError?.(shadow, error);
      const code = error instanceof WardenError ? error.code : "WARDEN_ERR_INTERNAL";
      return Promise.all(
        served.map((s) =>
          record(s.decisionId, s.version, { error: { code, message: error.message.slice(0, 500) } }),
        ),
      );
    };
    const checked = served.map((s, i) =>
      validateInstance(m, s.instance.features, s.instance.subject, request.fieldPrefix(i)),
    );
    const problems = checked.flatMap((c) => c.problems);
    const work: Promise<unknown> =
      problems.length > 0
        ? failAll(
            new WardenError(
              "WARDEN_ERR_VALIDATION",
              `the candidate ${m.version} refuses the input: ${problems
                .slice(0, 3)
                .map((p) => p.field)
                .join(", ")}`,
            ),
          )
        : shadow.batcher.submit(checked.map((c) => c.instance!.row)).then(
            (rows) =>
              Promise.all(
                served.map((s, i) => {
                  let outcome: ReturnType<typeof applyPolicy>;
                  try {
                    outcome = applyPolicy(m, rows[i]!);
                  } catch (error) {
                    // One row the candidate cannot decide (a non-finite output): recorded as its error; the
                    // other rows keep their records.
                    const code = error instanceof WardenError ? error.code : "WARDEN_ERR_INTERNAL";
                    const message = (error as Error).message.slice(0, 500);
                    return record(s.decisionId, s.version, { error: { code, message } });
                  }
                  return record(s.decisionId, s.version, {
                    batch_size: rows[i]!.batchSize,
                    decision: outcome.decision,
                    outputs: outcome.probabilities
                      ? { probabilities: keysInOrder(outcome.probabilities), score: outcome.score }
                      : { score: outcome.score },
                  });
                }),
              ),
            (error: unknown) => failAll(error as Error),
          );
    const tracked: Promise<void> = work
      .catch((error: unknown) => observer.onShadowError?.(shadow, error as Error))
      .then(() => {
        shadows.delete(tracked);
      });
    shadows.add(tracked);
  };

  const reject = async (
    model: LoadedModel,
    context: RejectionContext,
    error: WardenError,
  ): Promise<never> => {
    observer.onRejected?.(model, error.code);
    const { manifest } = model;
    // A refused subject value is personal data too: kept only where the model keeps subjects in clear.
    const storage = manifest.privacy.subjectStorage;
    const details = error.details.map((d) =>
      storage !== "clear" && SUBJECT_FIELD.test(d.field)
        ? { ...d, found: `(not recorded: subject_storage ${storage})` }
        : { ...d },
    );
    await ledger.write({
      id: uuidv7(),
      kind: "rejection",
      time: new Date().toISOString(),
      model: manifest.name,
      version: manifest.version,
      artifact_sha256: manifest.artifact.sha256,
      body: {
        client_ids: [...(context.clientIds ?? [])],
        error: { code: error.code, details, message: error.message },
        instances: context.instances,
        request_id: context.requestId,
        route: context.route,
      },
    });
    throw error;
  };

  return {
    reject,
    async shadowsSettled() {
      while (shadows.size > 0) await Promise.all([...shadows]);
    },
    async decide(request) {
      if (ledger.backlogged?.() === true) {
        throw new WardenError(
          "WARDEN_ERR_LEDGER_BUSY",
          "the decision ledger is behind: too many decisions wait to be committed (ledger.max_backlog); retry shortly",
          { retryAfterSeconds: 1 },
        );
      }
      // Route every instance first; validation, batching and the decision follow the version that answers.
      // Everything up to the batchers' submit runs in this turn, so a version being unloaded either takes
      // these rows (and drains them) or is no longer routed to.
      const routes = request.instances.map((instance) =>
        router(request.model, request.version, routingKey(instance)),
      );
      // The circuit breakers: serve, probe, answer from a fallback version, send to review, or refuse.
      const notes: (Readonly<Record<string, unknown>> | undefined)[] = routes.map(() => undefined);
      /** Instances an open breaker sends to human review: the model still scores them, a reviewer decides. */
      const breakerHolds: boolean[] = routes.map(() => false);
      if (gate !== undefined) {
        const verdicts = routes.map((route, i) =>
          gate.admit(route.model, routingKey(request.instances[i]!).key ?? `${request.requestId}#${i}`),
        );
        const ids = request.instances.map((instance) => (validKey(instance.id) ? instance.id : undefined));
        for (let i = 0; i < verdicts.length; i++) {
          const verdict = verdicts[i]!;
          if (verdict.action === "refuse")
            return reject(routes[i]!.model, rejection(request, ids), verdict.error);
          if (verdict.action === "human_review") {
            if (review === undefined) {
              return reject(
                routes[i]!.model,
                rejection(request, ids),
                reviewUnavailable(routes[i]!.model, verdict),
              );
            }
            notes[i] = { action: "human_review", ...verdict.breaker };
            breakerHolds[i] = true;
          } else if (verdict.action === "fallback_version") {
            notes[i] = { action: "fallback_version", ...verdict.breaker };
            routes[i] = { ...routes[i]!, model: verdict.model, shadow: undefined };
          } else if (verdict.probe) {
            notes[i] = { action: "probe", state: "half_open", version: routes[i]!.model.manifest.version };
          }
        }
      }
      const instances = request.instances;
      const problems: FieldProblem[] = [];
      const valid: ValidInstance[] = [];
      const clientIds: (string | undefined)[] = [];
      request.instances.forEach((instance, i) => {
        const prefix = request.fieldPrefix(i);
        const id = instance.id;
        if (id !== undefined && !validKey(id)) {
          problems.push({
            field: `${prefix}id`,
            expected: "a string of 1 to 128 characters (your reference for this instance)",
            found: describeValue(id),
          });
        }
        if (instance.subject_id !== undefined && !validKey(instance.subject_id)) {
          problems.push({
            field: `${prefix}subject_id`,
            expected: "a string of 1 to 128 characters (a stable key for the subject)",
            found: describeValue(instance.subject_id),
          });
        }
        clientIds.push(typeof id === "string" ? id : undefined);
        const checked = validateInstance(
          routes[i]!.model.manifest,
          instance.features,
          instance.subject,
          prefix,
        );
        // A loop, not push(...spread): a hostile body can carry more problems than a call has arguments.
        for (const problem of checked.problems) problems.push(problem);
        if (checked.instance) valid.push(checked.instance);
      });
      const first = routes[0]!.model;
      if (problems.length > 0) {
        const m = first.manifest;
        const error = new WardenError(
          "WARDEN_ERR_VALIDATION",
          `${problems.length} invalid field${problems.length === 1 ? "" : "s"} for model ${m.name} ${m.version}: ${problems
            .slice(0, 3)
            .map((p) => p.field)
            .join(", ")}${problems.length > 3 ? ", ..." : ""}`,
          { details: problems },
        );
        return reject(first, rejection(request, clientIds), error);
      }

      // The decisions' ids and time are fixed before inference: a protected subject is sealed for its decision
      // on the model's worker, beside inference (runtime/row-tasks.ts), not on this thread.
      const time = isoNow();
      const decisionIds = valid.map(() => uuidv7());
      // How each instance is explained, if at all: inline beside inference (TreeSHAP), or after it off the
      // model's thread (KernelSHAP). A refusal (explanations never, or none possible here) comes before inference.
      let explaining: ExplanationMode[];
      try {
        explaining = valid.map((_, i) => explanationMode(routes[i]!.model, request.explain, offThread));
      } catch (error) {
        return reject(first, rejection(request, clientIds), error as WardenError);
      }
      const tasks = valid.map((instance, i): RowTask | undefined => {
        const seal =
          routes[i]!.model.manifest.privacy.subjectStorage === "clear" ||
          Object.keys(instance.subject).length === 0
            ? undefined
            : { decisionId: decisionIds[i]!, time, subject: instance.subject };
        // The explanation comes back as the ledger records it: canonical JSON written on the worker.
        const explain =
          explaining[i] === "inline" ? { values: instance.inputs, form: "ledger" as const } : undefined;
        if (seal === undefined && explain === undefined) return undefined;
        return { ...(seal ? { seal } : {}), ...(explain ? { explain } : {}) };
      });

      // One submit per version that answers (a canary splits a request's instances between two).
      const groups = new Map<LoadedModel, number[]>();
      routes.forEach((route, i) => {
        const group = groups.get(route.model);
        if (group === undefined) groups.set(route.model, [i]);
        else group.push(i);
      });
      const rows: RowResult[] = new Array<RowResult>(valid.length);
      const submitted = [...groups].map(([model, indices]) =>
        model.batcher
          .submit(
            indices.map((i) => valid[i]!.row),
            indices.map((i) => tasks[i]),
          )
          .then(
            (results) => {
              indices.forEach((i, j) => {
                rows[i] = results[j]!;
              });
            },
            (error: unknown) => {
              if (isModelFailure(error)) gate?.failed(model, indices.length);
              return Promise.reject({ model, error });
            },
          ),
      );
      // Refusals (queue full, timeout) of a model's batcher or explainer thread are recorded; a model failure is
      // an error, not a decision.
      const refused = (failure: unknown): Promise<never> => {
        const { model, error } = failure as { model: LoadedModel; error: unknown };
        if (
          error instanceof WardenError &&
          (error.status < 500 ||
            error.code === "WARDEN_ERR_TIMEOUT" ||
            error.code === "WARDEN_ERR_QUEUE_TIMEOUT")
        ) {
          return reject(model, rejection(request, clientIds), error);
        }
        throw error;
      };
      try {
        await Promise.all(submitted);
      } catch (failure) {
        return refused(failure);
      }

      // Decide every row before recording any: a row the policy refuses (a non-finite output) fails the whole
      // request, and then none of its decisions may be in the ledger unanswered.
      const outcomes = valid.map((_, i) => {
        try {
          return applyPolicy(routes[i]!.model.manifest, rows[i]!);
        } catch (error) {
          // The model answered something no decision can be made on (a non-finite output): a model failure for
          // the circuit breaker, like an inference error.
          gate?.failed(routes[i]!.model, 1);
          throw error;
        }
      });
      const explanations: (ExplanationRecord | undefined)[] = valid.map((_, i) => rows[i]!.task?.explanation);
      const recorded = valid.map((_, i) => rows[i]!.task?.recorded);
      const offThreadRows = valid.flatMap((_, i) => (explaining[i] === "off-thread" ? [i] : []));
      if (offThreadRows.length > 0) {
        // Grouped per version that answered, in order.
        const byModel = new Map<LoadedModel, number[]>();
        for (const i of offThreadRows) {
          const list = byModel.get(routes[i]!.model) ?? [];
          list.push(i);
          byModel.set(routes[i]!.model, list);
        }
        try {
          await Promise.all(
            [...byModel].map(([model, indices]) =>
              offThread!
                .explain(
                  model,
                  indices.map((i) => ({ row: valid[i]!.row, values: valid[i]!.inputs })),
                )
                .then(
                  (records) => {
                    indices.forEach((i, k) => {
                      explanations[i] = records[k];
                    });
                  },
                  (error: unknown) => Promise.reject({ model, error }),
                ),
            ),
          );
        } catch (failure) {
          return refused(failure);
        }
      }
      // Held for human review? Decided before anything is recorded, so the entry says so in the hash chain.
      const holds = valid.map((instance, i) => {
        const reasons =
          review === undefined
            ? []
            : review.route(routes[i]!.model, instance.row, outcomes[i]!.score, outcomes[i]!.decision);
        return breakerHolds[i] && !reasons.includes("breaker_open") ? [...reasons, "breaker_open"] : reasons;
      });
      const latency = roundMs(performance.now() - request.receivedAt);
      const results: DecisionResult[] = [];
      const entries: LedgerEntry[] = [];
      const vaultRows: (string | undefined)[] = [];
      const shadowed = new Map<
        LoadedModel,
        { instance: InstanceInput; decisionId: string; version: string }[]
      >();
      valid.forEach((instance, i) => {
        const outcome = outcomes[i]!;
        const route = routes[i]!;
        const manifest = route.model.manifest;
        const decisionId = decisionIds[i]!;
        const clientId = clientIds[i];
        const subjectId = instances[i]!.subject_id as string | undefined;
        const note = notes[i];
        const sealed = recordedSubject(manifest, instance.subject, rows[i]!.task?.sealed);
        const explanation = explanations[i];
        vaultRows.push(sealed?.vaultJson);
        // Keys in sorted order: the ledger's canonical JSON then needs no sort.
        const body: Record<string, unknown> = {
          batch_size: rows[i]!.batchSize,
          ...(note !== undefined ? { breaker: note } : {}),
          ...(clientId !== undefined ? { client_id: clientId } : {}),
          decision: outcome.decision,
          deployment: route.deployment,
          ...(recorded[i] !== undefined
            ? { explanation: new CanonicalText(recorded[i]!.json) }
            : explanation !== undefined
              ? { explanation }
              : {}),
          inputs: instance.inputs,
          latency_ms: latency,
          manifest_sha256: manifest.manifestSha256,
          outputs: outcome.probabilities
            ? { probabilities: keysInOrder(outcome.probabilities), score: outcome.score }
            : { score: outcome.score },
          ...(sealed !== undefined ? { privacy: sealed.privacy } : {}),
          request_id: request.requestId,
          ...(holds[i]!.length > 0 ? { review: { reasons: [...holds[i]!], status: "pending" } } : {}),
          route: request.route,
          subject: sealed !== undefined ? sealed.subject : instance.subject,
          ...(subjectId !== undefined ? { subject_id: subjectId } : {}),
          threshold: manifest.task === "binary" ? manifest.output.threshold : null,
        };
        entries.push({
          id: decisionId,
          kind: "decision",
          time,
          model: manifest.name,
          version: manifest.version,
          artifact_sha256: manifest.artifact.sha256,
          body,
        });
        if (route.shadow !== undefined) {
          const list = shadowed.get(route.shadow) ?? [];
          list.push({ instance: instances[i]!, decisionId, version: manifest.version });
          shadowed.set(route.shadow, list);
        }
        const held = holds[i]!.length > 0;
        results.push({
          decision_id: decisionId,
          ...(clientId !== undefined ? { id: clientId } : {}),
          model: manifest.name,
          version: manifest.version,
          // What the answer discloses (policy.disclosure); the ledger entry above keeps the exact values.
          ...disclosed(manifest.disclosure, outcome.score, outcome.probabilities),
          // A held decision's final answer is the reviewer's: the model's is provisional (in the ledger only).
          decision: held ? null : outcome.decision,
          latency_ms: latency,
          ...(note !== undefined ? { breaker: note } : {}),
          // The principal reasons of an adverse decision (ECOA/Reg B); a favourable one's explanation is recorded.
          ...(held ? {} : answeredReasons(explanation, recorded[i])),
          ...(held ? { status: "pending_review" as const, review_reasons: holds[i]! } : {}),
        });
      });
      // A protected subject's vault row goes with its entry: one journal write makes both durable, and the
      // ledger thread stores the row before it commits the entry (no entry without its row).
      const writes = entries.map((entry, i) => {
        const written = ledger.write(
          entry,
          vaultRows[i] === undefined ? undefined : { vaultJson: vaultRows[i] },
        );
        // A held decision goes to the review queue as soon as its own write is journaled (a request larger than
        // one journal flush is written in parts), in that same turn: so the queue has been offered every held
        // decision the ledger is seen to have committed (review/service.ts relies on it).
        if (review === undefined || holds[i]!.length === 0) return written;
        return written.then((result) => {
          review.held([{ entry, reasons: holds[i]! }]);
          return result;
        });
      });
      for (const [shadow, served] of shadowed) {
        try {
          runShadow(shadow, request, served);
        } catch (error) {
          // Never the served answer's problem.
          observer.onShadowError?.(shadow, error as Error);
        }
      }
      // Every write settles first (its held decision offered), then the first failure fails the request.
      const written = await Promise.allSettled(writes);
      for (const w of written) if (w.status === "rejected") throw w.reason;
      if (observer.onDecided !== undefined) {
        valid.forEach((instance, i) => {
          observer.onDecided!(routes[i]!.model, instance.row, outcomes[i]!.score, {
            decisionId: decisionIds[i]!,
            decision: outcomes[i]!.decision,
            subject: instance.subject,
            caller: request.caller,
          });
        });
      }
      if (gate !== undefined) {
        valid.forEach((instance, i) => {
          gate.served(routes[i]!.model, instance.row, outcomes[i]!);
        });
      }
      return results;
    },
  };
}

/**
 * Whether a batcher's refusal is the model failing to answer (the breaker's `error_rate`), not back-pressure (a
 * full queue, or a request that timed out still queued: WARDEN_ERR_QUEUE_TIMEOUT).
 */
export function isModelFailure(error: unknown): boolean {
  if (!(error instanceof WardenError)) return true;
  return (
    error.code === "WARDEN_ERR_INFERENCE_FAILED" ||
    error.code === "WARDEN_ERR_TIMEOUT" ||
    error.code === "WARDEN_ERR_MODEL_NOT_READY"
  );
}

/** An open breaker whose fallback is human review, where no review queue is wired. */
function reviewUnavailable(
  model: LoadedModel,
  verdict: Extract<BreakerVerdict, { action: "human_review" }>,
): WardenError {
  const m = model.manifest;
  return new WardenError(
    "WARDEN_ERR_BREAKER_OPEN",
    `the circuit breaker of model ${m.name} ${m.version} is ${verdict.breaker.state.replace("_", "-")} (${verdict.breaker.rule}) and its fallback is human review, which is not available on this server`,
    {
      retryAfterSeconds: verdict.retryAfterSeconds,
      details: [
        {
          field: "version",
          expected: "a model version whose circuit breaker is closed",
          found: `${m.name} ${m.version}: ${verdict.breaker.state} (${verdict.breaker.rule}); fallback human_review, no review queue`,
          fix: `retry after ${verdict.retryAfterSeconds} s, ask an operator (GET /v1/models/${m.name}/versions/${m.version}/breaker), or use policy.breaker.fallback refuse or fallback_version until human review is available`,
        },
      ],
    },
  );
}

/** How one instance is explained: not at all, inline on the model's worker, or off its thread afterwards. */
type ExplanationMode = "none" | "inline" | "off-thread";

/**
 * Whether and how a model explains a decision, given the client's `explain`.
 *
 * @throws WardenError WARDEN_ERR_EXPLANATION_UNAVAILABLE when the client asks and the model's policy says never,
 *   or the policy's method cannot run on this server.
 */
function explanationMode(
  model: LoadedModel,
  asked: boolean | undefined,
  offThread: OffThreadExplainer | undefined,
): ExplanationMode {
  const m = model.manifest;
  const policy = m.explanations;
  if (policy.when === "never") {
    if (asked === true) {
      throw new WardenError(
        "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
        `model ${m.name} ${m.version} gives no explanations (policy.explanations.when: never)`,
        {
          details: [
            {
              field: "explain",
              expected: "absent or false for this model",
              found: "true",
              fix: "leave out explain, or set policy.explanations.when in the model's manifest",
            },
          ],
        },
      );
    }
    return "none";
  }
  if (policy.when === "on_request" && asked !== true) return "none";
  if (policy.method === "treeshap") return "inline";
  if (offThread === undefined) {
    throw new WardenError(
      "WARDEN_ERR_EXPLANATION_UNAVAILABLE",
      `model ${m.name} ${m.version} explains with ${policy.method}, and this server runs no explainer threads`,
    );
  }
  return "off-thread";
}

/**
 * The same record with its keys in code-unit order (labels come in the manifest's order): a ledger entry whose
 * objects are all in key order is written by JSON.stringify, several times faster (ledger/hash.ts).
 */
function keysInOrder<T>(record: Readonly<Record<string, T>>): Readonly<Record<string, T>> {
  const keys = Object.keys(record);
  let sorted = true;
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) sorted = false;
  if (sorted) return record;
  const out: Record<string, T> = {};
  for (const key of keys.sort()) out[key] = record[key]!;
  return out;
}

/** The principal reasons an adverse decision's answer carries (ECOA/Reg B), from either form of its explanation. */
function answeredReasons(
  explanation: ExplanationRecord | undefined,
  recorded: RecordedExplanation | undefined,
): { reasons?: readonly ReasonSummary[] } {
  if (recorded !== undefined)
    return recorded.adverse && recorded.reasons ? { reasons: recorded.reasons } : {};
  if (explanation?.reasons !== undefined && explanation.adverse === true)
    return { reasons: explanation.reasons.map(reasonSummary) };
  return {};
}

/** A protected decision's subject as its ledger entry records it, and its vault row. */
interface RecordedSubject {
  /** A commitment per attribute, never the value. */
  readonly subject: Readonly<Record<string, { commitment: string }>>;
  /** The storage and retention in force. */
  readonly privacy: { readonly retention_days: number; readonly subject_storage: string };
  readonly vaultJson: string | undefined;
}

/**
 * What the ledger entry holds of a protected subject, from its sealing on the model's worker; undefined when the
 * model keeps subjects in clear.
 *
 * @throws WardenError WARDEN_ERR_VAULT when a non-empty protected subject came back unsealed (never recorded in
 *   clear instead).
 */
function recordedSubject(
  manifest: Manifest,
  subject: Readonly<Record<string, FeatureValue>>,
  sealed: SealedSubject | undefined,
): RecordedSubject | undefined {
  const storage = manifest.privacy.subjectStorage;
  if (storage === "clear") return undefined;
  const privacy = { retention_days: manifest.privacy.retentionDays, subject_storage: storage };
  const names = Object.keys(subject);
  if (names.length === 0) return { subject: {}, privacy, vaultJson: undefined };
  if (sealed === undefined || sealed.commitments.length !== names.length) {
    throw new WardenError(
      "WARDEN_ERR_VAULT",
      `model ${manifest.name} ${manifest.version} stores subjects ${storage}, and the subject came back unsealed`,
    );
  }
  const commitments: Record<string, { commitment: string }> = {};
  names.forEach((name, k) => {
    commitments[name] = { commitment: sealed.commitments[k]! };
  });
  return { subject: commitments, privacy, vaultJson: sealed.vaultJson };
}

/** The score and probabilities an answer carries under the model's disclosure policy. */
function disclosed(
  policy: DisclosurePolicy,
  score: number,
  probabilities: Readonly<Record<string, number>> | undefined,
): { score: number | null; probabilities?: Readonly<Record<string, number>> } {
  if (policy.scores === "label") return { score: null };
  if (policy.scores === "full") return { score, ...(probabilities ? { probabilities } : {}) };
  const round = (v: number) => roundTo(v, policy.decimals);
  if (probabilities === undefined) return { score: round(score) };
  const rounded: Record<string, number> = {};
  for (const [label, p] of Object.entries(probabilities)) rounded[label] = round(p);
  return { score: round(score), probabilities: rounded };
}
