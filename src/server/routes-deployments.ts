import type { FastifyInstance, FastifyRequest } from "fastify";
import { describeValue, WardenError } from "../errors/index.js";
import { type DeploymentManager, TRAFFIC_POLICIES, type TrafficPolicy } from "../registry/index.js";
import type { RouteContext } from "./app.js";
import { errorResponses, pathParams } from "./routes-decisions.js";

/** The header that names who makes a change (until authentication replaces it). */
export const ACTOR_HEADER = "x-warden-actor";
const ACTOR = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

const Reason = {
  type: "string",
  minLength: 1,
  maxLength: 1000,
  description: "Why (recorded in the history and the ledger)",
} as const;
const Version = { type: "string", minLength: 1, maxLength: 128 } as const;

const ErrorSchema = errorResponses[400];
const adminErrors = {
  ...errorResponses,
  409: { ...ErrorSchema, description: "The deployment state does not allow this change (see fix)" },
  422: { ...ErrorSchema, description: "The manifest or its artifact cannot be loaded" },
} as const;

const DeploymentSchema = {
  type: "object",
  description: "A model's deployment: aliases, traffic policy, registered versions and history",
  additionalProperties: true,
  properties: {
    model: { type: "string" },
    production: { type: "string", nullable: true },
    candidate: { type: "string", nullable: true },
    policy: { type: "string", enum: [...TRAFFIC_POLICIES] },
    canary_percent: { type: "number" },
    updated_at: { type: "string", nullable: true },
    versions: { type: "array", items: { type: "object", additionalProperties: true } },
    history: { type: "array", items: { type: "object", additionalProperties: true } },
  },
} as const;

/**
 * Who makes a change: the authenticated identity's name; without access control, the `x-warden-actor` header
 * (printable ASCII, ≤ 128), else "anonymous".
 */
export function actorOf(request: FastifyRequest): string {
  // An authenticated identity is who acts; the header only names actors where identities are off.
  const identity = request.wardenIdentity;
  if (identity !== undefined) return identity.name;
  const header = request.headers[ACTOR_HEADER];
  if (header === undefined) return "anonymous";
  if (typeof header !== "string" || !ACTOR.test(header)) {
    throw new WardenError("WARDEN_ERR_BAD_REQUEST", `invalid ${ACTOR_HEADER} header`, {
      details: [
        {
          field: ACTOR_HEADER,
          expected: "1 to 128 printable ASCII characters, no leading or trailing space",
          found: describeValue(Array.isArray(header) ? `${header.length} headers` : header),
          fix: "send one header naming who makes the change",
        },
      ],
    });
  }
  return header;
}

/** An absent body is an empty one (`curl -X POST` with no data), for routes whose fields are all optional. */
const optionalBody = (request: FastifyRequest, _reply: unknown, done: () => void): void => {
  request.body ??= {};
  done();
};

/** Admin routes (`/v1/admin/models/...`) and the Open Inference Protocol repository extension. */
export function registerDeploymentRoutes(
  app: FastifyInstance,
  ctx: RouteContext & { readonly deployments: DeploymentManager },
): void {
  const d = ctx.deployments;
  const tags = ["deployments"];
  const withReason = (properties: Record<string, unknown> = {}, required: string[] = []) => ({
    type: "object",
    properties: { ...properties, reason: Reason },
    required,
    additionalProperties: false,
  });
  const model = pathParams("model");
  const ok = { 200: DeploymentSchema, ...adminErrors };

  app.get(
    "/v1/admin/models",
    {
      schema: {
        summary: "Every registered model's deployment",
        tags,
        response: {
          200: { type: "object", properties: { models: { type: "array", items: DeploymentSchema } } },
        },
      },
    },
    async () => ({ models: d.models() }),
  );
  app.get<{ Params: { model: string } }>(
    "/v1/admin/models/:model",
    {
      schema: {
        summary: "A model's deployment: aliases, policy, versions, history",
        tags,
        params: model,
        response: ok,
      },
    },
    async (request) => d.view(request.params.model),
  );
  app.get<{ Params: { model: string } }>(
    "/v1/admin/models/:model/history",
    {
      schema: {
        summary: "Which version served production when: every change, who made it and why",
        tags,
        params: model,
        response: {
          200: {
            type: "object",
            properties: {
              model: { type: "string" },
              history: { type: "array", items: { type: "object", additionalProperties: true } },
            },
          },
          ...adminErrors,
        },
      },
    },
    async (request) => ({ model: request.params.model, history: d.view(request.params.model).history }),
  );
  app.post<{
    Params: { model: string };
    Body: { manifest: string; alias?: "production" | "candidate"; reason?: string };
  }>(
    "/v1/admin/models/:model/versions",
    {
      schema: {
        summary: "Register and load a version from a manifest path on the server (optionally as an alias)",
        tags,
        params: model,
        body: withReason(
          {
            manifest: {
              type: "string",
              minLength: 1,
              maxLength: 4096,
              description: "Path of the manifest on the server",
            },
            alias: { type: "string", enum: ["production", "candidate"] },
          },
          ["manifest"],
        ),
        response: { 201: DeploymentSchema, ...adminErrors },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const { manifest, alias, reason } = request.body;
      const view = await d.register(request.params.model, manifest, alias, { actor, reason });
      return reply.status(201).send(view);
    },
  );
  app.put<{
    Params: { model: string };
    Body: { production?: string; candidate?: string | null; reason?: string };
  }>(
    "/v1/admin/models/:model/aliases",
    {
      schema: {
        summary:
          "Point the production and/or candidate alias at registered versions (candidate null clears it)",
        tags,
        params: model,
        body: {
          ...withReason({ production: Version, candidate: { ...Version, nullable: true } }),
          minProperties: 1,
        },
        response: ok,
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const { production, candidate, reason } = request.body;
      if (production === undefined && candidate === undefined) {
        throw new WardenError("WARDEN_ERR_BAD_REQUEST", "no alias to set", {
          details: [
            {
              field: "production",
              expected: "production and/or candidate",
              found: "neither",
              fix: '{"candidate": "2.0.0"}',
            },
          ],
        });
      }
      return d.setAliases(request.params.model, { production, candidate }, { actor, reason });
    },
  );
  for (const [action, summary] of [
    ["promote", "Make the candidate the production version (the policy returns to single)"],
    ["rollback", "Return production to the version it replaced, at once"],
  ] as const) {
    app.post<{ Params: { model: string }; Body: { reason?: string } | undefined }>(
      `/v1/admin/models/:model/${action}`,
      {
        preValidation: optionalBody,
        schema: { summary, tags, params: model, body: withReason(), response: ok },
      },
      async (request) => {
        const actor = actorOf(request);
        const reason = request.body?.reason;
        return action === "promote"
          ? d.promote(request.params.model, { actor, reason })
          : d.rollback(request.params.model, { actor, reason });
      },
    );
  }
  app.put<{
    Params: { model: string };
    Body: { policy: TrafficPolicy; canary_percent?: number; reason?: string };
  }>(
    "/v1/admin/models/:model/policy",
    {
      schema: {
        summary:
          "Set the traffic policy: single (production only), canary (canary_percent of subjects to the candidate, sticky), shadow (the candidate scores every request; recorded, never returned)",
        tags,
        params: model,
        body: withReason(
          {
            policy: { type: "string", enum: [...TRAFFIC_POLICIES] },
            canary_percent: { type: "number", minimum: 0, maximum: 100 },
          },
          ["policy"],
        ),
        response: ok,
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const { policy, canary_percent, reason } = request.body;
      return d.setPolicy(request.params.model, policy, canary_percent, { actor, reason });
    },
  );
  app.post<{ Params: { model: string; version: string }; Body: { reason?: string } | undefined }>(
    "/v1/admin/models/:model/versions/:version/unload",
    {
      preValidation: optionalBody,
      schema: {
        summary:
          "Stop serving a version no alias points to: new requests stop reaching it, its in-flight ones finish, then its workers stop",
        tags,
        params: pathParams("model", "version"),
        body: withReason(),
        response: ok,
      },
    },
    async (request) => {
      const actor = actorOf(request);
      return d.unloadVersion(request.params.model, request.params.version, {
        actor,
        reason: request.body?.reason,
      });
    },
  );

  // Open Inference Protocol: the model repository extension (Triton / KServe).
  const oip = ["open inference protocol v2"];
  const IndexEntry = {
    type: "object",
    properties: {
      name: { type: "string" },
      version: { type: "string" },
      state: { type: "string", enum: ["READY", "UNAVAILABLE", "LOADING", "UNLOADING"] },
      reason: { type: "string" },
    },
    required: ["name", "state", "reason"],
  } as const;
  const indexHandler = async (request: FastifyRequest) =>
    d.index((request.body as { ready?: boolean } | undefined)?.ready === true);
  const indexSchema = (withBody: boolean) => ({
    summary: "Every registered model version and its state (READY, UNAVAILABLE, LOADING, UNLOADING)",
    tags: oip,
    ...(withBody
      ? {
          body: {
            type: "object",
            properties: {
              repository_name: { type: "string" },
              ready: { type: "boolean", description: "only versions ready to serve" },
            },
            additionalProperties: false,
          },
        }
      : {}),
    response: { 200: { type: "array", items: IndexEntry }, 400: errorResponses[400] },
  });
  app.post("/v2/repository/index", { preValidation: optionalBody, schema: indexSchema(true) }, indexHandler);
  app.get("/v2/repository/index", { schema: indexSchema(false) }, indexHandler);
  const repositoryBody = {
    type: "object",
    properties: { parameters: { type: "object" } },
    additionalProperties: false,
  } as const;
  for (const action of ["load", "unload"] as const) {
    app.post<{ Params: { model: string } }>(
      `/v2/repository/models/:model/${action}`,
      {
        preValidation: optionalBody,
        schema: {
          summary:
            action === "load"
              ? "Load a registered model: the versions its aliases point to"
              : "Unload every version of a model (in-flight requests finish first); it stays registered",
          tags: oip,
          params: model,
          body: repositoryBody,
          response: {
            200: {
              type: "object",
              properties: { name: { type: "string" }, [action]: { type: "boolean" } },
            },
            ...adminErrors,
          },
        },
      },
      async (request) => {
        const actor = actorOf(request);
        const name = request.params.model;
        if (action === "load") await d.loadModel(name, { actor, reason: "repository load" });
        else await d.unloadModel(name, { actor, reason: "repository unload" });
        return { name, [action]: true };
      },
    );
  }
}
