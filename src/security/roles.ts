/**
 * Roles and what each route needs. Every route the server registers has an entry in {@link ROUTE_PERMISSIONS}
 * (a test holds the table to the server's routes, so a new route cannot be left open by omission).
 *
 * - `client`: decides and infers (on the models its key names, or all), reads model metadata, records outcomes
 *   and appeals, reads decisions;
 * - `reviewer`: the review queue, and decisions;
 * - `auditor`: decisions, the ledger's reports, monitors, profiles, fairness, breakers' state, /metrics;
 * - `admin`: everything, including models, deployments, breakers, profiles and keys.
 */

export const ROLES = ["client", "reviewer", "auditor", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** What a route needs (closed list). */
export const PERMISSIONS = [
  "public",
  "models",
  "decide",
  "feedback",
  "decisions",
  "reports",
  "review",
  "admin",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The permissions each role holds (`public` needs no identity at all). */
export const GRANTS: Readonly<Record<Role, readonly Permission[]>> = {
  client: ["models", "decide", "feedback", "decisions"],
  reviewer: ["models", "decisions", "review"],
  auditor: ["models", "decisions", "reports"],
  admin: ["models", "decide", "feedback", "decisions", "reports", "review", "admin"],
};

/** Whether a role holds a permission. */
export function allows(role: Role, permission: Permission): boolean {
  return permission === "public" || GRANTS[role].includes(permission);
}

/** Every route, as "METHOD /path/{param}", and what it needs. */
export const ROUTE_PERMISSIONS: Readonly<Record<string, Permission>> = {
  "GET /v2/health/live": "public",
  "GET /v2/health/ready": "public",
  "GET /v2": "public",
  "GET /openapi.json": "public",
  "GET /v2/models/{model}": "models",
  "GET /v2/models/{model}/ready": "models",
  "GET /v2/models/{model}/versions/{version}": "models",
  "GET /v2/models/{model}/versions/{version}/ready": "models",
  "GET /v1/models": "models",
  "GET /v1/models/{model}": "models",
  "POST /v2/models/{model}/infer": "decide",
  "POST /v2/models/{model}/versions/{version}/infer": "decide",
  "POST /v1/models/{model}/decisions": "decide",
  "POST /v1/models/{model}/versions/{version}/decisions": "decide",
  "POST /v1/models/{model}/explain": "decide",
  "POST /v1/models/{model}/versions/{version}/explain": "decide",
  "POST /v1/decisions/{id}/outcomes": "feedback",
  "POST /v1/decisions/{id}/appeals": "feedback",
  "GET /v1/decisions/{id}": "decisions",
  "GET /v1/decisions/{id}/history": "decisions",
  "GET /v1/decisions/{id}/explanation": "decisions",
  "GET /v1/models/{model}/versions/{version}/profile": "reports",
  "GET /v1/models/{model}/monitor": "reports",
  "GET /v1/models/{model}/versions/{version}/monitor": "reports",
  "GET /v1/models/{model}/versions/{version}/monitor/window": "reports",
  "GET /v1/models/{model}/fairness": "reports",
  "GET /v1/models/{model}/versions/{version}/fairness": "reports",
  "GET /v1/models/{model}/versions/{version}/breaker": "reports",
  "GET /metrics": "reports",
  "GET /v1/review/items": "review",
  "GET /v1/review/items/{id}": "review",
  "POST /v1/review/items/{id}/claim": "review",
  "POST /v1/review/items/{id}/resolve": "review",
  "GET /v1/review/summary": "review",
  "POST /v1/admin/models/{model}/versions/{version}/profile": "admin",
  "POST /v1/admin/models/{model}/versions/{version}/breaker/stop": "admin",
  "POST /v1/admin/models/{model}/versions/{version}/breaker/resume": "admin",
  "GET /v1/admin/models": "admin",
  "GET /v1/admin/models/{model}": "admin",
  "GET /v1/admin/models/{model}/history": "admin",
  "POST /v1/admin/models/{model}/versions": "admin",
  "PUT /v1/admin/models/{model}/aliases": "admin",
  "POST /v1/admin/models/{model}/promote": "admin",
  "POST /v1/admin/models/{model}/rollback": "admin",
  "PUT /v1/admin/models/{model}/policy": "admin",
  "POST /v1/admin/models/{model}/versions/{version}/unload": "admin",
  "POST /v2/repository/index": "admin",
  "GET /v2/repository/index": "admin",
  "POST /v2/repository/models/{model}/load": "admin",
  "POST /v2/repository/models/{model}/unload": "admin",
  "GET /v1/admin/keys": "admin",
  "POST /v1/admin/keys": "admin",
  "POST /v1/admin/keys/{id}/rotate": "admin",
  "DELETE /v1/admin/keys/{id}": "admin",
};

/** Permissions whose routes a `client` key limited to some models may use only on those models. */
export const MODEL_SCOPED: readonly Permission[] = ["models", "decide"];
