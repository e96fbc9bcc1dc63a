/**
 * Circuit breakers over HTTP: a version's state, an operator's stop and resume (EU AI Act Art. 14(4)(e)),
 * and the state on `/metrics`. The logic is server/breakers.ts and monitor/breaker.ts.
 */
import type { FastifyInstance } from "fastify";
import { Gauge, type Registry } from "prom-client";
import { BREAKER_STATES } from "../monitor/index.js";
import type { LoadedModel } from "../registry/index.js";
import type { RouteContext } from "./app.js";
import type { Breakers } from "./breakers.js";
import { errorResponses, pathParams } from "./routes-decisions.js";
import { ACTOR_HEADER, actorOf } from "./routes-deployments.js";

const BreakerViewSchema = {
  type: "object",
  description: "A model version's circuit breaker",
  additionalProperties: true,
  properties: {
    model: { type: "string" },
    version: { type: "string" },
    configured: { type: "boolean", description: "Whether the manifest configures rules (policy.breaker)" },
    state: { type: "string", enum: [...BREAKER_STATES] },
    stopped_by: { type: "object", nullable: true, additionalProperties: true },
    opened_at: { type: "string", nullable: true },
    last_transition: { type: "object", nullable: true, additionalProperties: true },
    probe_observations: { type: "integer" },
    signals: { type: "object", additionalProperties: true },
    policy: { type: "object", nullable: true, additionalProperties: true },
  },
} as const;

const Reason = {
  type: "string",
  minLength: 1,
  maxLength: 1000,
  description: "Why (recorded in the ledger)",
} as const;

export function registerBreakerRoutes(
  app: FastifyInstance,
  ctx: RouteContext & { readonly breakers: Breakers },
): void {
  const params = pathParams("model", "version");
  const tags = ["breakers"];
  const conflict = { 409: { ...errorResponses[400], description: "Already stopped, or not stopped" } };

  app.get<{ Params: { model: string; version: string } }>(
    "/v1/models/:model/versions/:version/breaker",
    {
      schema: {
        summary: "A model version's circuit breaker: state, signals, who stopped it, its policy",
        tags,
        params,
        response: { 200: BreakerViewSchema, 404: errorResponses[404] },
      },
    },
    async (request) => ctx.breakers.view(ctx.registry.get(request.params.model, request.params.version)),
  );

  app.post<{ Params: { model: string; version: string }; Body: { reason: string } }>(
    "/v1/admin/models/:model/versions/:version/breaker/stop",
    {
      schema: {
        summary: "Stop a model version by hand (EU AI Act Art. 14(4)(e)): its breaker opens and stays open",
        description: `Opens the version's circuit breaker whatever its state; requests get its fallback (policy.breaker.fallback, refuse without one) until an operator resumes it. The actor is the ${ACTOR_HEADER} header. Recorded in the ledger (kind breaker) and alerted.`,
        tags,
        params,
        body: {
          type: "object",
          properties: { reason: Reason },
          required: ["reason"],
          additionalProperties: false,
        },
        response: { 200: BreakerViewSchema, ...errorResponses, ...conflict },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const model = ctx.registry.get(request.params.model, request.params.version);
      return ctx.breakers.stop(model, actor, request.body.reason);
    },
  );

  app.post<{
    Params: { model: string; version: string };
    Body: { reason: string; to?: "closed" | "half_open" };
  }>(
    "/v1/admin/models/:model/versions/:version/breaker/resume",
    {
      schema: {
        summary: "Resume a stopped model version: probes first (half_open), or closed at once",
        description: `Lets a stopped breaker go: to half_open (probe traffic judged by the rules; the default when the manifest has rules) or closed (the default without rules, or with to: closed). The actor is the ${ACTOR_HEADER} header. Recorded in the ledger and alerted.`,
        tags,
        params,
        body: {
          type: "object",
          properties: { reason: Reason, to: { type: "string", enum: ["closed", "half_open"] } },
          required: ["reason"],
          additionalProperties: false,
        },
        response: { 200: BreakerViewSchema, ...errorResponses, ...conflict },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const model = ctx.registry.get(request.params.model, request.params.version);
      return ctx.breakers.resume(model, actor, request.body.reason, request.body.to);
    },
  );
}

/** `warden_breaker_state{model, version, state}`: 1 for the version's current state, 0 for the others. */
export function registerBreakerMetrics(
  registry: Registry,
  models: () => readonly LoadedModel[],
  breakers: Breakers,
): Gauge {
  const gauge = new Gauge({
    name: "warden_breaker_state",
    // Registered below, on this server's registry only (never the global one).
    registers: [],
    help: "circuit breaker state of each model version: 1 for the current state (closed, open, half_open), 0 for the others",
    labelNames: ["model", "version", "state"] as const,
    collect() {
      this.reset();
      for (const s of breakers.states(models())) {
        for (const state of BREAKER_STATES) {
          this.set({ model: s.model, version: s.version, state }, s.state === state ? 1 : 0);
        }
      }
    },
  });
  registry.registerMetric(gauge);
  return gauge;
}
