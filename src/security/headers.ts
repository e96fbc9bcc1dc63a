import type { PolicyState, RateDecision } from "./rate-limit.js";

/**
 * The RateLimit header fields of draft-ietf-httpapi-ratelimit-headers (-08 and later): structured-field lists
 * with one item per bucket the request drew from, named "key" (the caller's bucket) and "model" (the caller's
 * quota for this model).
 *
 *   RateLimit-Policy: "key";q=20;w=2, "model";q=5;w=5
 *   RateLimit: "key";r=19;t=1, "model";r=4;t=1
 *
 * q is the burst (the most requests at once), w the seconds a bucket takes to refill from empty, r the whole
 * requests left now, t the seconds until the bucket is full again.
 */
export function rateLimitHeaders(
  decision: RateDecision,
): { "ratelimit-policy": string; ratelimit: string } | undefined {
  if (decision.outcome === "unavailable" || decision.policies.length === 0) return undefined;
  return {
    "ratelimit-policy": decision.policies.map(policyItem).join(", "),
    ratelimit: decision.policies.map(stateItem).join(", "),
  };
}

function policyItem(p: PolicyState): string {
  return `"${p.name}";q=${p.spec.burst};w=${Math.max(1, Math.ceil(p.spec.burst / p.spec.rate_per_s))}`;
}

function stateItem(p: PolicyState): string {
  const remaining = Math.max(0, Math.floor(p.tokens + 1e-9));
  const secondsToFull = Math.max(0, Math.ceil((p.spec.burst - p.tokens) / p.spec.rate_per_s - 1e-9));
  return `"${p.name}";r=${remaining};t=${secondsToFull}`;
}

/** Whole seconds for Retry-After: at least 1, rounded up. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000 - 1e-9));
}
