/**
 * Authentication and authorisation of every request (issue 7): the identity from `Authorization: Bearer
 * <api key | JWT>` (or `x-api-key`), the route's permission from security/roles.ts, 401 when there is no
 * accepted identity, 403 when the role does not hold the permission or a client key is limited to other
 * models. Denials are recorded in the ledger (`access` records, with the identity when there is one, never the
 * credential). The API key routes live here too.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { v7 as uuidv7 } from "uuid";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import type { LedgerEntry } from "../ledger/index.js";
import {
  allows,
  GRANTS,
  type Identity,
  type JwtVerifier,
  type KeyStore,
  LruMap,
  looksLikeApiKey,
  MODEL_SCOPED,
  type Permission,
  ROLES,
  ROUTE_PERMISSIONS,
  type Role,
} from "../security/index.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Who sent the request, once authenticated (undefined on public routes and with auth off). */
    wardenIdentity?: Identity;
  }
}

export interface AccessOptions {
  readonly required: boolean;
  readonly keys: KeyStore;
  readonly jwt?: JwtVerifier | undefined;
  /** Records a denial or an admin action (the ledger's `access` kind). */
  readonly record: (entry: LedgerEntry) => Promise<void>;
  /**
   * Denials recorded per client address: a bucket of `burst` records refilled at `perSecond` (defaults 50
   * and 10). Past it, denials are answered but counted instead of recorded, and the next recorded denial of
   * that address says how many were left out: a flood of bad credentials cannot flood the ledger.
   */
  readonly denialRecords?: { readonly perSecond: number; readonly burst: number };
  /** Milliseconds since the epoch (tests move it). */
  readonly now?: () => number;
  /** Called for each denial that was counted but not recorded. */
  readonly onUnrecorded?: () => void;
}

/** Most client addresses whose denial buckets are kept (the least recently denied are dropped beyond it). */
const MAX_DENIAL_BUCKETS = 10_000;

/** "/v1/models/:model/decisions" → "/v1/models/{model}/decisions", as ROUTE_PERMISSIONS names routes. */
function routeName(method: string, url: string): string {
  return `${method} ${url.replace(/:([A-Za-z_]+)/g, "{$1}")}`;
}

function unauthorized(reason: string, fix: string): WardenError {
  return new WardenError("WARDEN_ERR_UNAUTHORIZED", `authentication failed: ${reason}`, {
    details: [
      {
        field: "authorization",
        expected: "an API key or a JWT: Authorization: Bearer <credential> (or x-api-key: <key>)",
        found: reason,
        fix,
      },
    ],
  });
}

function holders(permission: Permission): Role[] {
  return ROLES.filter((r) => GRANTS[r].includes(permission));
}

/** The credential of a request: the bearer token or the x-api-key header (never both). */
function credentialOf(request: FastifyRequest): string | undefined | WardenError {
  const auth = request.headers.authorization;
  const apiKey = request.headers["x-api-key"];
  if (auth !== undefined && apiKey !== undefined)
    return unauthorized("both Authorization and x-api-key sent", "send one of them");
  if (apiKey !== undefined) {
    if (typeof apiKey !== "string" || apiKey.length === 0 || apiKey.length > 4096)
      return unauthorized("a malformed x-api-key header", "send one x-api-key header with the key");
    return apiKey;
  }
  if (auth === undefined) return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,8192})$/i.exec(auth);
  if (match === null)
    return unauthorized(
      "an Authorization header that is not `Bearer <credential>`",
      "write Authorization: Bearer followed by the API key or the token",
    );
  return match[1]!;
}

/**
 * Per client address, whether a denial may be recorded now (a token bucket of `rate.burst` records refilled at
 * `rate.perSecond`), and how many of its denials were left out since its last recorded one. Keeps the buckets of
 * at most `maxBuckets` addresses: beyond it, the least recently denied address's goes (it starts afresh).
 */
export function createDenialRecorder(
  rate: { readonly perSecond: number; readonly burst: number },
  now: () => number,
  onUnrecorded?: () => void,
  maxBuckets: number = MAX_DENIAL_BUCKETS,
): (address: string) => { record: boolean; suppressed: number } {
  // Least recently denied first (O(1) use and eviction, security/lru.ts): a flood of addresses fills it.
  const buckets = new LruMap<{ tokens: number; at: number; suppressed: number }>();
  return (address) => {
    const t = now();
    let b = buckets.use(address);
    if (b === undefined) {
      b = { tokens: rate.burst, at: t, suppressed: 0 };
      buckets.set(address, b);
      if (buckets.size > maxBuckets) buckets.dropOldest();
    }
    b.tokens = Math.min(rate.burst, b.tokens + ((t - b.at) / 1000) * rate.perSecond);
    b.at = t;
    if (b.tokens < 1) {
      b.suppressed++;
      onUnrecorded?.();
      return { record: false, suppressed: 0 };
    }
    b.tokens -= 1;
    const suppressed = b.suppressed;
    b.suppressed = 0;
    return { record: true, suppressed };
  };
}

/** Register the access hook and the key routes. */
export function registerAccess(app: FastifyInstance, options: AccessOptions): void {
  const now = options.now ?? Date.now;
  const rate = options.denialRecords ?? { perSecond: 10, burst: 50 };
  const recordable = createDenialRecorder(rate, now, options.onUnrecorded);

  const deny = async (request: FastifyRequest, reply: FastifyReply, error: WardenError, route: string) => {
    const params = (request.params ?? {}) as Record<string, string>;
    const identity = request.wardenIdentity;
    const verdict = recordable(request.ip);
    request.wardenOutcome = error.code;
    if (error.status === 401) reply.header("www-authenticate", 'Bearer realm="warden"');
    if (!verdict.record) return reply.status(error.status).send(error.toJSON());
    const entry: LedgerEntry = {
      id: uuidv7(),
      kind: "access",
      time: new Date().toISOString(),
      model: params.model ?? "-",
      version: params.version ?? "-",
      artifact_sha256: "-",
      body: {
        ...(identity !== undefined
          ? { identity: { id: identity.id, name: identity.name, role: identity.role } }
          : {}),
        ip: request.ip,
        outcome: "denied",
        reason: error.message,
        request_id: request.id,
        route,
        status: error.status,
        // Denials of this address answered but not recorded since its last recorded one.
        ...(verdict.suppressed > 0 ? { unrecorded_before: verdict.suppressed } : {}),
      },
    };
    await options.record(entry);
    return reply.status(error.status).send(error.toJSON());
  };

  /** Each registered route's name and permission, looked up once per method and route (not per request). */
  const rules = new Map<string, Map<string, { route: string; permission: Permission | undefined }>>();
  const ruleOf = (method: string, url: string) => {
    let byUrl = rules.get(method);
    if (byUrl === undefined) {
      byUrl = new Map();
      rules.set(method, byUrl);
    }
    let rule = byUrl.get(url);
    if (rule === undefined) {
      const route = routeName(method, url);
      rule = {
        route,
        permission:
          ROUTE_PERMISSIONS[route] ??
          (method === "HEAD" ? ROUTE_PERMISSIONS[routeName("GET", url)] : undefined),
      };
      byUrl.set(url, rule);
    }
    return rule;
  };

  // Without required authentication every route is open and no identity is read: no hook at all (an async hook
  // costs every request a promise).
  if (options.required) app.addHook("onRequest", authenticate);
  registerKeyRoutes(app, options);

  async function authenticate(request: FastifyRequest, reply: FastifyReply) {
    const url = request.routeOptions.url;
    // Unknown routes go to the not-found handler, which says nothing about identities.
    if (url === undefined) return;
    const { route, permission } = ruleOf(request.method, url);
    if (permission === "public") return;
    if (permission === undefined) {
      // A route without an entry is refused, never left open (a test holds the table to the routes).
      return deny(
        request,
        reply,
        new WardenError("WARDEN_ERR_FORBIDDEN", `${route} has no access rule`),
        route,
      );
    }
    const credential = credentialOf(request);
    if (credential instanceof WardenError) return deny(request, reply, credential, route);
    if (credential === undefined)
      return deny(
        request,
        reply,
        unauthorized(
          "no credential",
          "send Authorization: Bearer <API key or JWT>; an admin makes keys with POST /v1/admin/keys",
        ),
        route,
      );
    let identity: Identity;
    if (looksLikeApiKey(credential)) {
      const verdict = options.keys.verify(credential);
      if ("refused" in verdict) {
        const text = {
          malformed: "a malformed API key",
          unknown: "an unknown API key",
          revoked: "a revoked API key",
          expired: "an expired API key",
        }[verdict.refused];
        return deny(
          request,
          reply,
          unauthorized(text, "ask an admin for a valid key (POST /v1/admin/keys)"),
          route,
        );
      }
      identity = verdict.identity;
    } else if (options.jwt !== undefined) {
      const verdict = await options.jwt.verify(credential);
      if ("refused" in verdict) {
        const text = {
          malformed: "a malformed token",
          expired: "an expired token",
          bad_signature: "a token not signed by the configured keys",
          bad_claims: "a token whose claims do not match (issuer, audience, not before)",
          no_role: "a token without a Warden role",
        }[verdict.refused];
        return deny(
          request,
          reply,
          unauthorized(text, "get a fresh token from your identity provider"),
          route,
        );
      }
      identity = verdict.identity;
    } else {
      return deny(
        request,
        reply,
        unauthorized(
          "a credential that is not an API key (this server takes no JWTs)",
          "send an API key (wdn_...)",
        ),
        route,
      );
    }
    request.wardenIdentity = identity;
    if (!allows(identity.role, permission)) {
      return deny(
        request,
        reply,
        new WardenError("WARDEN_ERR_FORBIDDEN", `role ${identity.role} may not use ${route}`, {
          details: [
            {
              field: "role",
              expected: `a role holding ${permission}: ${holders(permission).join(", ")}`,
              found: identity.role,
              fix: "use a key or token of such a role",
            },
          ],
        }),
        route,
      );
    }
    const model = (request.params as Record<string, string> | undefined)?.model;
    if (
      identity.models !== null &&
      model !== undefined &&
      MODEL_SCOPED.includes(permission) &&
      !identity.models.includes(model)
    ) {
      return deny(
        request,
        reply,
        new WardenError("WARDEN_ERR_FORBIDDEN", `${identity.name} may not use model ${model}`, {
          details: [
            {
              field: "model",
              expected: `one of the models this credential names: ${identity.models.join(", ")}`,
              found: model,
              fix: "use a key or token for this model",
            },
          ],
        }),
        route,
      );
    }
  }
}

/**
 * Whether the request's credential may see and act on records of `model`: always with auth off or a credential
 * that names no models; otherwise only for the models it names. Routes addressed by a decision id (reading a
 * decision, its explanation or history, recording an outcome or an appeal) learn the model only from the record,
 * so they ask here and answer as if the record did not exist (404), not revealing other models' decisions.
 */
export function mayUseModel(request: FastifyRequest, model: string): boolean {
  const models = request.wardenIdentity?.models;
  return models === undefined || models === null || models.includes(model);
}

/** An ISO-8601 date and time with a zone (Date.parse alone also takes forms such as "March 7, 2030"). */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Milliseconds since the epoch of such a time, or NaN when it is not one or names no real day (2027-02-30). */
function isoTime(text: string): number {
  const match = ISO_TIME.exec(text);
  if (match === null) return Number.NaN;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return Number.NaN;
  // Date.parse wants the zone's colon.
  return Date.parse(text.replace(/([+-]\d{2})(\d{2})$/, "$1:$2"));
}

const KeyBody = {
  type: "object",
  properties: {
    name: { type: "string", minLength: 1, maxLength: 128 },
    role: { type: "string", enum: [...ROLES] },
    models: { type: "array", items: { type: "string", minLength: 1, maxLength: 128 }, maxItems: 1000 },
    expires_at: { type: "string", description: "ISO-8601; absent: never" },
  },
  required: ["name", "role"],
  additionalProperties: false,
} as const;

function registerKeyRoutes(app: FastifyInstance, options: AccessOptions): void {
  const actor = (request: FastifyRequest) =>
    request.wardenIdentity === undefined
      ? "anonymous"
      : `${request.wardenIdentity.name} (${request.wardenIdentity.id})`;
  const audit = (request: FastifyRequest, action: string, key: { id: string; name: string; role: string }) =>
    options.record({
      id: uuidv7(),
      kind: "access",
      time: new Date().toISOString(),
      model: "-",
      version: "-",
      artifact_sha256: "-",
      body: {
        action,
        actor: actor(request),
        key: { id: key.id, name: key.name, role: key.role },
        outcome: "done",
        request_id: request.id,
      },
    });
  app.get(
    "/v1/admin/keys",
    {
      schema: {
        summary: "API keys (never their secrets)",
        tags: ["access"],
        querystring: { type: "object", properties: {}, additionalProperties: false },
      },
    },
    async () => ({
      keys: options.keys.list(),
    }),
  );
  app.post<{ Body: { name: string; role: Role; models?: string[]; expires_at?: string } }>(
    "/v1/admin/keys",
    {
      schema: {
        summary: "Make an API key; its secret is shown in this answer only",
        tags: ["access"],
        body: KeyBody,
      },
    },
    async (request, reply) => {
      const body = request.body;
      const problems: FieldProblem[] = [];
      if (body.expires_at !== undefined) {
        const t = isoTime(body.expires_at);
        if (!Number.isFinite(t) || t <= Date.now())
          problems.push({
            field: "expires_at",
            expected: "an ISO-8601 date and time with a zone, in the future",
            found: describeValue(body.expires_at),
            fix: "e.g. 2027-01-01T00:00:00Z, or leave it out for a key that does not expire",
          });
      }
      // Only a client's reach is limited to models: every other role's routes are not all by model, and an admin
      // could mint itself a key without the limit.
      if (body.models !== undefined && body.role !== "client")
        problems.push({
          field: "models",
          expected: `absent for a key of role ${body.role} (only client keys name their models)`,
          found: describeValue(body.models),
          fix: 'leave out models, or make a key of role "client"',
        });
      if (problems.length > 0)
        throw new WardenError("WARDEN_ERR_VALIDATION", "invalid key request", { details: problems });
      const issued = options.keys.create({
        name: body.name,
        role: body.role,
        models: body.models ?? null,
        expiresAt: body.expires_at === undefined ? null : new Date(isoTime(body.expires_at)).toISOString(),
        createdBy: actor(request),
      });
      await audit(request, "key_created", issued);
      return reply.status(201).send(issued);
    },
  );
  app.post<{ Params: { id: string }; Body: { grace_s?: number } | undefined }>(
    "/v1/admin/keys/:id/rotate",
    {
      schema: {
        summary: "Rotate a key: a new secret under a new id; the old key stops now or after grace_s seconds",
        tags: ["access"],
        params: { type: "object", properties: { id: { type: "string", maxLength: 64 } }, required: ["id"] },
        body: {
          type: "object",
          properties: {
            grace_s: {
              type: "integer",
              minimum: 0,
              maximum: 30 * 86_400,
              description: "seconds the old key keeps working (default 0: it stops now)",
            },
          },
          additionalProperties: false,
        },
      },
      // No body is an empty one (`curl -X POST` with no data).
      preValidation: (request, _reply, done) => {
        request.body ??= {};
        done();
      },
    },
    async (request, reply) => {
      // Checked by the body schema: a whole number of seconds from 0 to 30 days.
      const grace = (request.body as { grace_s?: number }).grace_s;
      const issued = options.keys.rotate(request.params.id, actor(request), grace ?? 0);
      await audit(request, "key_rotated", issued);
      return reply.status(201).send(issued);
    },
  );
  app.delete<{ Params: { id: string } }>(
    "/v1/admin/keys/:id",
    {
      schema: {
        summary: "Revoke a key at once",
        tags: ["access"],
        params: { type: "object", properties: { id: { type: "string", maxLength: 64 } }, required: ["id"] },
      },
    },
    async (request) => {
      const revoked = options.keys.revoke(request.params.id, actor(request));
      await audit(request, "key_revoked", revoked);
      return revoked;
    },
  );
}
