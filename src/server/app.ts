import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import swagger from "@fastify/swagger";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { ServerConfig } from "../config/index.js";
import type { LedgerSink } from "../decision/index.js";
import { createDecisionPipeline, type DecisionPipeline, type OffThreadExplainer } from "../decision/index.js";
import { describeValue, WardenError } from "../errors/index.js";
import type { ExplanationRecord } from "../explain/model-explainer.js";
import type { LedgerRecord, ReviewSources } from "../ledger/index.js";
import type { SubjectProtection } from "../privacy/index.js";
import type { DeploymentManager, ModelRegistry } from "../registry/index.js";
import { createReviewService, type ReviewService } from "../review/index.js";
import {
  createRateLimiter,
  type JwtVerifier,
  type KeyStore,
  type RateDecision,
  type RateLimiter,
  rateLimitHeaders,
  retryAfterSeconds,
} from "../security/index.js";
import { registerAccess } from "./access.js";
import { type AlertSink, createAlertSink } from "./alert-sink.js";
import { type Breakers, createBreakers } from "./breakers.js";
import { toWardenError } from "./errors.js";
import { createExtractionGuard, type ExtractionGuard } from "./extraction.js";
import type { WardenMetrics } from "./metrics.js";
import { registerBreakerMetrics, registerBreakerRoutes } from "./routes-breakers.js";
import { registerDecisionRoutes } from "./routes-decisions.js";
import { registerDeploymentRoutes } from "./routes-deployments.js";
import { registerExplanationRoutes } from "./routes-explanations.js";
import { registerFeedbackRoutes } from "./routes-feedback.js";
import {
  createLiveMonitors,
  type LiveMonitors,
  registerMonitoringRoutes,
  registerMonitorMetrics,
} from "./routes-monitoring.js";
import { registerOipRoutes } from "./routes-oip.js";
import { registerReviewMetrics, registerReviewRoutes } from "./routes-review.js";

/** What the HTTP layer needs. */
export interface AppDependencies {
  readonly config: ServerConfig;
  readonly registry: ModelRegistry;
  /** Deployments (aliases, traffic policies); without it, the admin and repository routes are absent. */
  readonly deployments?: DeploymentManager;
  readonly ledger: AppLedger;
  readonly metrics: WardenMetrics;
  /** A pino logger; requests log through children carrying the request id. Silent when absent. */
  readonly logger?: FastifyBaseLogger;
  /** Whether the server is ready to take traffic (false while loading or shutting down). */
  readonly isReady?: () => boolean;
  /**
   * Subject protection (keys and vault). Without it, a model whose `policy.subject_storage` is not `clear`
   * cannot record decisions (they fail with WARDEN_ERR_VAULT; subjects never fall back to clear).
   */
  readonly privacy?: SubjectProtection;
  /**
   * Whether this request may see a decision's decrypted subject. Authentication plugs in here; absent, no one
   * may (`?reveal=subject` is answered 401).
   */
  readonly canRevealSubject?: (request: FastifyRequest) => boolean;
  /** Human review: the clock (tests inject one), how often SLAs are checked, and the breakers' state. */
  readonly review?: ReviewOptions;
  /**
   * Authentication and roles (server/access.ts): API keys, JWTs, and whether identities are required.
   * Absent: no access control at all (embedding and tests of other parts).
   */
  readonly access?: {
    readonly required: boolean;
    readonly keys: KeyStore;
    readonly jwt?: JwtVerifier | undefined;
  };
  /**
   * The clock of circuit breakers, alerts and (unless `review.now` is given) human review, milliseconds since
   * the epoch; `Date.now` by default.
   */
  readonly now?: () => number;
  /**
   * The rate limiter; by default the one `config.rate_limits` describes (none when it is not enabled). Tests
   * inject one with their own clock.
   */
  readonly rateLimiter?: RateLimiter;
  /**
   * The rate limit key of a request, as "<kind>:<id>" ("ip:10.0.0.7", "key:abc"). Authentication plugs in
   * here; by default "ip:" and the client address.
   */
  readonly rateLimitKey?: (request: FastifyRequest) => string;
}

/** Options of the human review queue. */
export interface ReviewOptions {
  /** Milliseconds since the epoch (default Date.now). */
  readonly now?: () => number;
  /** How often overdue items are looked for, in milliseconds (default 30 s). */
  readonly slaCheckIntervalMs?: number;
  /** Records the review watermark stays behind the ledger's end at a tick (ReviewServiceOptions.catchUpMargin). */
  readonly catchUpMargin?: number;
  /**
   * Whether a model version's circuit breaker is not closed: its decisions are then held for review (where
   * its `policy.review.breaker_open` is not false). Default: the server's circuit breakers say.
   */
  readonly breakerOpen?: (model: string, version: string) => boolean;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Registered routes as "METHOD /path/{param}" (HEAD omitted). */
    wardenRoutes: readonly string[];
    /** Resolves once every shadow score started so far is recorded (or has failed). */
    wardenShadowsSettled: () => Promise<void>;
    /** Where alerts are raised (logged and sent to the configured webhooks). */
    wardenAlerts: AlertSink;
    /** The circuit breakers of the loaded model versions. */
    wardenBreakers: Breakers;
  }
  interface FastifyRequest {
    /** Model name and version for metrics labels, set once the model is known to exist. */
    wardenModel?: { name: string; version: string };
    /** Error code of a failed request, for metrics. */
    wardenOutcome?: string;
    /** performance.now() at arrival. */
    wardenStart: number;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const SERVER_NAME = "warden";
export const SERVER_VERSION = "0.1.0";

/** Build the Fastify application (routes, error mapping, metrics, OpenAPI). Does not listen. */
/** The ledger as the HTTP routes use it (asynchronous, so any store can stand behind it). */
export interface AppLedger extends LedgerSink {
  /** The record with this id (a decision, rejection, outcome, ...), or undefined. */
  get(id: string): Promise<LedgerRecord | undefined>;
  /** Records in sequence order (see LedgerBackend.scan). */
  scan(options?: { afterSeq?: number; limit?: number }): AsyncIterable<LedgerRecord>;
  /** Outcomes, appeals and reviews pointing to a decision, after `afterSeq` (see LedgerBackend.linked). */
  linked(decisionId: string, afterSeq?: number, limit?: number): Promise<LedgerRecord[]>;
  /** The latest record of `kind` pointing to a decision (LedgerBackend.latestLinked). */
  latestLinked(decisionId: string, kind: string): Promise<LedgerRecord | undefined>;
  /** What may have put a decision in the review queue, a stretch at a time (LedgerBackend.reviewSources). */
  reviewSources(afterSeq: number, limit: number): Promise<ReviewSources>;
  /** Resolves once every entry written so far is committed (readable with `get`). */
  committed(): Promise<void>;
}

/** The routes that ask a model to decide: their failures are `warden_failures_total`. */
const DECIDING_ROUTES: ReadonlySet<string> = new Set([
  "/v1/models/:model/decisions",
  "/v1/models/:model/versions/:version/decisions",
  "/v2/models/:model/infer",
  "/v2/models/:model/versions/:version/infer",
]);

export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    // One log line per request is the ledger's job; the log keeps errors and lifecycle events.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.config.body_limit_bytes,
    // Slow clients and oversized headers: Node's own limits, checked every second rather than every 30 s.
    serverFactory: (handler) =>
      createServer(
        {
          headersTimeout: deps.config.limits.header_timeout_ms,
          requestTimeout: deps.config.limits.request_timeout_ms,
          keepAliveTimeout: deps.config.limits.keep_alive_timeout_ms,
          maxHeaderSize: deps.config.limits.max_header_bytes,
          connectionsCheckingInterval: 1000,
        },
        handler,
      ),
    genReqId: (req) => {
      const header = req.headers["x-request-id"];
      return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
    },
    // While draining, Warden answers 503 itself (in its error format, with Retry-After): see onRequest.
    return503OnClosing: false,
    // Errors Fastify raises before any route runs (undecodable URL, over-long path parameter) in Warden's format.
    frameworkErrors: (error, request, reply) => {
      const warden =
        error.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? new WardenError("WARDEN_ERR_BAD_REQUEST", "a path parameter is longer than 500 characters", {
              details: [
                { field: "url", expected: "path parameters of at most 500 characters", found: "longer" },
              ],
            })
          : new WardenError("WARDEN_ERR_BAD_REQUEST", `the URL cannot be decoded: ${error.message}`, {
              details: [
                { field: "url", expected: "a valid percent-encoded URL", found: request.url.slice(0, 200) },
              ],
            });
      request.wardenOutcome = warden.code;
      void (reply as FastifyReply).status(warden.status).send(warden.toJSON());
    },
    routerOptions: { maxParamLength: 500 },
    // Requests Node's HTTP parser refuses (a bad content-length, oversized headers) never reach a route; they
    // still get a JSON body in Warden's format.
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === "ECONNRESET" || !socket.writable) {
        socket.destroy();
        return;
      }
      const code = (error as NodeJS.ErrnoException).code;
      const tooLarge = code === "HPE_HEADER_OVERFLOW";
      // Node's header and request timeouts (limits.*): a client too slow to send its request.
      const tooSlow = code === "ERR_HTTP_REQUEST_TIMEOUT";
      const body = JSON.stringify(
        (tooSlow
          ? new WardenError(
              "WARDEN_ERR_REQUEST_TIMEOUT",
              "the request was not received in time (limits.header_timeout_ms / limits.request_timeout_ms)",
            )
          : new WardenError("WARDEN_ERR_BAD_REQUEST", `the HTTP request cannot be parsed: ${error.message}`)
        ).toJSON(),
      );
      const status = tooLarge
        ? "431 Request Header Fields Too Large"
        : tooSlow
          ? "408 Request Timeout"
          : "400 Bad Request";
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
    ajv: {
      customOptions: { allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false },
    },
  });
  // Only JSON bodies are accepted; anything else is a 415, not a string that fails validation later.
  app.removeContentTypeParser("text/plain");
  const monitors: LiveMonitors = createLiveMonitors(deps.config.data_dir, (message) => app.log.warn(message));
  registerMonitorMetrics(deps.metrics.registry, () => deps.registry.list(), monitors);
  app.addHook("onClose", async () => {
    await monitors.close();
  });
  // KernelSHAP decisions are explained in the model's explainer thread, never on its inference worker.
  const offThreadExplainer: OffThreadExplainer = {
    async explain(model, rows) {
      const width = model.manifest.modelFeatures.length;
      const input = new Float32Array(rows.length * width);
      rows.forEach((r, i) => {
        input.set(r.row, i * width);
      });
      const result = await model.explainer.run(
        { kind: "kernelshap", input, rows: rows.length, values: rows.map((r) => r.values) },
        { decision: true },
      );
      return result as ExplanationRecord[];
    },
  };
  const now = deps.now ?? Date.now;
  const alertConfig = deps.config.alerts ?? { webhooks: [], backoff_ms: 500, anomaly_rate: 0.1 };
  const alerts = createAlertSink(alertConfig, { logger: app.log, now });
  // Fairness criteria that start or stop failing in the live fairness monitor: logged and sent as alerts.
  monitors.fairnessAlerts.on("alert", (alert) => alerts.emit(alert));
  // Query budgets and probing detection per caller and model (security/extraction.ts).
  const extraction = createExtractionGuard(deps.config.extraction, alerts, { now });
  const breakers = createBreakers({
    registry: deps.registry,
    ledger: deps.ledger,
    monitors,
    alerts,
    now,
    anomalyRate: alertConfig.anomaly_rate,
    logger: app.log,
    stopsFile: join(deps.config.data_dir, "breaker-stops.json"),
  });
  registerBreakerMetrics(deps.metrics.registry, () => deps.registry.list(), breakers);
  // Transitions are journaled and queued notifications get a moment to leave before the server stops.
  app.addHook("onClose", async () => {
    await breakers.settled();
    await alerts.close();
  });
  // Human review: the queue (review.sqlite), its routing hook in the pipeline, escalations as alerts.
  const review: ReviewService = createReviewService({
    dataDir: deps.config.data_dir,
    ledger: deps.ledger,
    manifestOf: (model, version) =>
      deps.registry.versions(model).find((m) => m.manifest.version === version)?.manifest,
    now: deps.review?.now ?? now,
    ...(deps.review?.catchUpMargin !== undefined ? { catchUpMargin: deps.review.catchUpMargin } : {}),
  });
  // Escalations (overdue items, four-eyes disagreements) go out as alerts: logged and sent to the webhooks.
  review.events.on("alert", (alert) => alerts.emit(alert));
  review.events.on("problem", (error) => app.log.error({ err: error }, "review queue"));
  registerReviewMetrics(deps.metrics.registry, review);
  // Held decisions and appeals that a crash kept out of the queue come in from the ledger.
  const caughtUp = review.catchUp().then(
    (added) => {
      if (added > 0) app.log.info({ added }, "review queue caught up with the ledger");
    },
    (error: unknown) => app.log.error({ err: error }, "review queue could not catch up with the ledger"),
  );
  review.start(deps.review?.slaCheckIntervalMs ?? 30_000);
  app.addHook("onClose", async () => {
    await caughtUp;
    await review.close();
  });
  const pipeline: DecisionPipeline = createDecisionPipeline(
    deps.registry,
    deps.ledger,
    {
      ...(deps.config.monitoring.live
        ? {
            onDecided: (model, row, score, decided) => {
              monitors.decided(model, row, score, decided);
              if (decided?.caller !== undefined) extraction.observe(decided.caller, model, row);
            },
          }
        : {
            onDecided: (model, row, _score, decided) => {
              if (decided?.caller !== undefined) extraction.observe(decided.caller, model, row);
            },
          }),
      onShadowError: (model, error) =>
        app.log.warn(
          { err: error, model: model.manifest.name, version: model.manifest.version },
          "shadow scoring failed",
        ),
    },
    deps.deployments ? (model, version, key) => deps.deployments!.route(model, version, key) : undefined,
    offThreadExplainer,
    {
      breakers,
      review: review.routing({
        anomalous: (model, row) => monitors.of(model).isAnomalous(row) === true,
        breakerOpen:
          deps.review?.breakerOpen ??
          ((name, version) => {
            const model = deps.registry.versions(name).find((m) => m.manifest.version === version);
            // The state alone (with the cool-down applied), not the whole view: this runs for every decision.
            return model !== undefined && breakers.states([model])[0]!.state !== "closed";
          }),
      }),
    },
  );

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Warden",
        version: SERVER_VERSION,
        description:
          "Governed inference server: Open Inference Protocol v2 and the Warden decision API. Every decision is validated against the model's manifest and recorded in a hash-chained ledger.",
      },
    },
  });

  // Every route as "METHOD /path/{param}", so tests can hold the OpenAPI document to the real table.
  const routes: string[] = [];
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method !== "HEAD") routes.push(`${method} ${route.url.replace(/:([A-Za-z_]+)/g, "{$1}")}`);
    }
  });
  app.decorate("wardenRoutes", routes);
  app.decorate("wardenShadowsSettled", () => pipeline.shadowsSettled());
  app.decorate("wardenAlerts", alerts);
  app.decorate("wardenBreakers", breakers);
  app.decorateRequest("wardenStart", 0);
  // Hooks in callback style: this runs for every request, and async hooks each cost a promise.
  // Draining: new requests on open connections get 503 at once, and answers to requests still in flight ask
  // the client to close its keep-alive connection, so the server stops as soon as they are answered.
  let draining = false;
  app.addHook("onRequest", (request, reply, done) => {
    request.wardenStart = performance.now();
    reply.header("x-request-id", request.id);
    if (!draining && compressedBody(request.headers)) {
      const encoding = request.headers["content-encoding"] ?? "";
      // Bodies are read as they come: a compressed one would only fail as "not valid JSON".
      const error = new WardenError(
        "WARDEN_ERR_UNSUPPORTED_MEDIA_TYPE",
        `Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported; send the body uncompressed`,
        {
          details: [
            {
              field: "content-encoding",
              expected: "absent or identity",
              found: describeValue(encoding),
              fix: "send the JSON body uncompressed, without a Content-Encoding header",
            },
          ],
        },
      );
      request.wardenOutcome = error.code;
      void reply.status(error.status).send(error.toJSON());
      return;
    }
    if (!draining) return done();
    const error = new WardenError(
      "WARDEN_ERR_SHUTTING_DOWN",
      "the server is shutting down; retry on another replica",
      {
        retryAfterSeconds: 1,
      },
    );
    request.wardenOutcome = error.code;
    void reply
      .status(error.status)
      .header("retry-after", "1")
      .header("connection", "close")
      .send(error.toJSON());
  });
  app.addHook("preClose", (done) => {
    draining = true;
    done();
  });
  // Who is asking, and may they: after the drain check, before any route (server/access.ts).
  if (deps.access !== undefined) {
    registerAccess(app, {
      ...deps.access,
      record: async (entry) => {
        await deps.ledger.write(entry);
      },
      now,
      onUnrecorded: () => deps.metrics.accessDenialsUnrecorded.inc(),
    });
  }
  // Rate limits (security/): after the access check (so the key is the caller's identity when there is one),
  // before the body is read, so a refused request costs no parsing. Health probes and /metrics are never
  // limited.
  const limits = deps.config.rate_limits;
  const limiter =
    deps.rateLimiter ??
    (limits.enabled
      ? await createRateLimiter(limits, {
          onDown: (error) =>
            app.log.error(
              { err: error, fail: limits.redis?.fail },
              limits.redis?.fail === "closed"
                ? "rate limiter: Redis unreachable; refusing requests (503) until it is back"
                : "rate limiter: Redis unreachable; serving requests unlimited until it is back",
            ),
          onUp: () => app.log.warn("rate limiter: Redis reachable again; limits apply"),
          onFailOpen: () => deps.metrics.rateLimitFailOpen.inc(),
        })
      : undefined);
  if (limiter !== undefined) {
    app.addHook("onClose", async () => {
      await limiter.close();
    });
    const keyOf =
      deps.rateLimitKey ?? ((request: FastifyRequest) => request.wardenIdentity?.id ?? `ip:${request.ip}`);
    app.addHook("onRequest", (request, reply, done) => {
      const url = request.routeOptions.url;
      if (url !== undefined && (url.startsWith("/v2/health/") || url === "/metrics")) return done();
      const key = keyOf(request);
      const model = (request.params as Record<string, string> | undefined)?.model;
      const apply = (decision: RateDecision) => {
        if (decision.outcome === "unavailable") {
          const error = new WardenError(
            "WARDEN_ERR_RATE_LIMITER_UNAVAILABLE",
            "the rate limiter is unavailable (its Redis cannot be reached) and rate_limits.redis.fail is closed; retry shortly",
            { retryAfterSeconds: 1 },
          );
          request.wardenOutcome = error.code;
          void reply.status(error.status).header("retry-after", "1").send(error.toJSON());
          return;
        }
        const headers = rateLimitHeaders(decision);
        if (headers !== undefined) reply.headers(headers);
        if (decision.outcome === "allowed") return done();
        const error = rateLimitedError(decision, key, model);
        // Only a loaded model's name labels the series: the path parameter is the client's text, and every new
        // label value would be a new series kept for good.
        deps.metrics.rateLimited.inc({
          model: model !== undefined && deps.registry.has(model) ? model : "",
          limit: decision.limit,
        });
        request.wardenOutcome = error.code;
        void reply
          .status(error.status)
          .header("retry-after", String(error.retryAfterSeconds))
          .send(error.toJSON());
      };
      const decision = limiter.check(key, model);
      if (decision instanceof Promise) decision.then(apply, done);
      else apply(decision);
    });
  }
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (draining) reply.header("connection", "close");
    done(null, payload);
  });
  const observe = deps.metrics.requestObserver();
  app.addHook("onResponse", (request, reply, done) => {
    const model = request.wardenModel;
    const route = request.routeOptions.url ?? "unmatched";
    const outcome = request.wardenOutcome ?? (reply.statusCode < 400 ? "ok" : String(reply.statusCode));
    observe(
      model?.name ?? "",
      model?.version ?? "",
      route,
      outcome,
      (performance.now() - request.wardenStart) / 1000,
    );
    // Every way a request to decide can fail, counted where the answer is known (validation, back-pressure,
    // the model failing, the ledger being behind, ...).
    if (model !== undefined && outcome !== "ok" && DECIDING_ROUTES.has(route)) {
      deps.metrics.failures.inc({ model: model.name, version: model.version, reason: outcome });
    }
    done();
  });

  app.setErrorHandler(async (error, request, reply) => {
    const warden = toWardenError(error, request);
    request.wardenOutcome = warden.code;
    const where = {
      code: warden.code,
      route: request.routeOptions.url ?? "unmatched",
      ...(request.wardenModel !== undefined
        ? { model: request.wardenModel.name, version: request.wardenModel.version }
        : {}),
    };
    // Back-pressure (the server asks the client to retry: a full ledger backlog, a timeout, draining) comes in
    // floods exactly when the server is overloaded: one warning line each, without a stack.
    if (warden.status >= 500 && warden.retryAfterSeconds !== undefined)
      request.log.warn(where, warden.message);
    else if (warden.status >= 500) request.log.error({ err: error, ...where }, warden.message);
    else request.log.debug(where, warden.message);
    if (warden.retryAfterSeconds !== undefined) reply.header("retry-after", String(warden.retryAfterSeconds));
    return reply.status(warden.status).send(warden.toJSON());
  });
  app.setNotFoundHandler(async (request, reply) => {
    const error = new WardenError(
      "WARDEN_ERR_ROUTE_NOT_FOUND",
      `no route ${request.method} ${request.url.split("?")[0]}`,
      {
        details: [
          { field: "url", expected: "a route listed in /openapi.json", found: request.url.slice(0, 200) },
        ],
      },
    );
    request.wardenOutcome = error.code;
    return reply.status(404).send(error.toJSON());
  });

  const context = {
    ...deps,
    // With access control, auditors and admins may see decrypted subjects (unless the embedder decides).
    canRevealSubject:
      deps.canRevealSubject ??
      (deps.access !== undefined
        ? (request: FastifyRequest) =>
            request.wardenIdentity?.role === "admin" || request.wardenIdentity?.role === "auditor"
        : undefined),
    pipeline,
    monitors,
    review,
    breakers,
    alerts,
    extraction,
    isReady: deps.isReady ?? (() => true),
  };
  registerOipRoutes(app, context);
  registerDecisionRoutes(app, context);
  registerFeedbackRoutes(app, context);
  registerExplanationRoutes(app, context);
  registerMonitoringRoutes(app, context);
  registerReviewRoutes(app, context);
  registerBreakerRoutes(app, context);
  if (deps.deployments) registerDeploymentRoutes(app, { ...context, deployments: deps.deployments });

  app.get(
    "/metrics",
    { schema: { summary: "Prometheus metrics (text exposition format)", tags: ["operations"] } },
    async (_request, reply) => {
      reply.header("content-type", deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    },
  );
  app.get("/openapi.json", { schema: { summary: "This OpenAPI document", tags: ["operations"] } }, async () =>
    app.swagger(),
  );
  return app;
}

/** The 429 of a refused request: which limit, its rate and burst, the key kind (never the key) and when to retry. */
function rateLimitedError(
  decision: Extract<RateDecision, { outcome: "limited" }>,
  key: string,
  model: string | undefined,
): WardenError {
  const kind = key.includes(":") ? key.slice(0, key.indexOf(":")) : "client";
  const policy = decision.policies.find((p) => p.name === decision.limit)!;
  const seconds = retryAfterSeconds(decision.retryAfterMs);
  const limit =
    decision.limit === "model" ? `the per-${kind} quota for model ${model}` : `the per-${kind} rate limit`;
  const shape = `${policy.spec.rate_per_s} requests/s, burst ${policy.spec.burst}`;
  return new WardenError(
    "WARDEN_ERR_RATE_LIMITED",
    `rate limited: ${limit} (${shape}) is exhausted; retry in ${seconds} s`,
    {
      retryAfterSeconds: seconds,
      details: [
        {
          field: decision.limit === "model" ? `rate_limits.per_model.${model}` : "rate_limits.default",
          expected: `at most ${policy.spec.burst} requests at once, refilled at ${policy.spec.rate_per_s} a second, per ${kind}${decision.limit === "model" ? ` and model ${model}` : ""}`,
          found: "no request left",
          fix: `retry after ${seconds} s (Retry-After); the RateLimit header says what is left`,
        },
      ],
    },
  );
}

/** Shared state passed to route modules. */
export type RouteContext = AppDependencies & {
  readonly pipeline: DecisionPipeline;
  readonly monitors: LiveMonitors;
  readonly review: ReviewService;
  readonly breakers: Breakers;
  readonly alerts: AlertSink;
  readonly extraction: ExtractionGuard;
  readonly isReady: () => boolean;
};

/**
 * Whether a request carries a body in a content coding other than identity (Warden reads bodies as sent). A
 * request without a body (a GET, an empty POST) is not refused for the header alone.
 */
function compressedBody(headers: FastifyRequest["headers"]): boolean {
  const encoding = headers["content-encoding"];
  if (encoding === undefined) return false;
  const hasBody = headers["transfer-encoding"] !== undefined || Number(headers["content-length"] ?? "0") > 0;
  if (!hasBody) return false;
  return encoding
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .some((c) => c !== "" && c !== "identity");
}
