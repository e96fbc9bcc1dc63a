/**
 * Rate limits: token buckets per caller key ("ip:<addr>", "key:<id>", ...) and per caller key and model.
 * Identity-agnostic: whoever calls `check` decides what the key is (the server uses the client address until
 * authentication lands).
 */
import { LruMap } from "./lru.js";

/** One bucket's shape: refilled at `rate_per_s` tokens a second, holding at most `burst` tokens. */
export interface BucketSpec {
  readonly rate_per_s: number;
  readonly burst: number;
}

/** The limits applied: one bucket per key, and one per key and model for the models named in `per_model`. */
export interface RateLimitRules {
  readonly default: BucketSpec;
  readonly per_model: Readonly<Record<string, BucketSpec>>;
}

/** Which bucket: the key-wide one or the key's quota for one model. */
export type LimitName = "key" | "model";

/** The state of one bucket after a check, as the RateLimit headers report it. */
export interface PolicyState {
  readonly name: LimitName;
  readonly spec: BucketSpec;
  /** Tokens left after this request (fractional). */
  readonly tokens: number;
}

/** The answer of a check. */
export type RateDecision =
  | {
      readonly outcome: "allowed";
      readonly policies: readonly PolicyState[];
      /** True when the backend could not be asked and `fail: open` let the request through. */
      readonly failedOpen?: boolean;
    }
  | {
      readonly outcome: "limited";
      readonly policies: readonly PolicyState[];
      /** The bucket that refused (the one with the longest wait when both did). */
      readonly limit: LimitName;
      /** Milliseconds until the request would be allowed (every refusing bucket holds a token again). */
      readonly retryAfterMs: number;
    }
  | { readonly outcome: "unavailable"; readonly error: Error };

/** A rate limiter: memory or Redis behind the same interface. */
export interface RateLimiter {
  /**
   * Take one token from the key's bucket and, when `model` has a quota, from the key's bucket for that model;
   * both or neither (a refused request costs nothing). Synchronous for the memory backend.
   */
  check(key: string, model?: string): RateDecision | Promise<RateDecision>;
  close(): Promise<void>;
}

/** Tokens are compared with this slack, so that float rounding never refuses a token that is due. */
export const EPSILON = 1e-9;

/** The buckets a request draws from, in order: the key's, then the key's quota for the model if it has one. */
export function bucketsFor(
  rules: RateLimitRules,
  model: string | undefined,
): { name: LimitName; spec: BucketSpec }[] {
  const out: { name: LimitName; spec: BucketSpec }[] = [{ name: "key", spec: rules.default }];
  if (model !== undefined && Object.hasOwn(rules.per_model, model)) {
    out.push({ name: "model", spec: rules.per_model[model]! });
  }
  return out;
}

/** Tokens in a bucket `elapsedMs` after it held `tokens` (never more than the burst). */
export function refill(spec: BucketSpec, tokens: number, elapsedMs: number): number {
  if (elapsedMs <= 0) return tokens;
  return Math.min(spec.burst, tokens + (elapsedMs * spec.rate_per_s) / 1000);
}

/** Milliseconds until a bucket holding `tokens` holds one token. */
export function msUntilToken(spec: BucketSpec, tokens: number): number {
  return tokens >= 1 - EPSILON ? 0 : ((1 - tokens) * 1000) / spec.rate_per_s;
}

/** Milliseconds until an idle bucket holding `tokens` is full again (and so the same as a new one). */
export function msUntilFull(spec: BucketSpec, tokens: number): number {
  return Math.max(0, ((spec.burst - tokens) * 1000) / spec.rate_per_s);
}

/**
 * Decide from the buckets' current tokens (already refilled): allowed when each holds a token, then each
 * loses one; otherwise limited by the bucket with the longest wait, and nothing is taken.
 */
export function decide(
  buckets: readonly { name: LimitName; spec: BucketSpec; tokens: number }[],
): RateDecision {
  let wait = 0;
  let limit: LimitName | undefined;
  for (const b of buckets) {
    const ms = msUntilToken(b.spec, b.tokens);
    if (ms > wait) {
      wait = ms;
      limit = b.name;
    }
  }
  if (limit === undefined) {
    return {
      outcome: "allowed",
      policies: buckets.map((b) => ({ name: b.name, spec: b.spec, tokens: Math.max(0, b.tokens - 1) })),
    };
  }
  return {
    outcome: "limited",
    limit,
    retryAfterMs: wait,
    policies: buckets.map((b) => ({ name: b.name, spec: b.spec, tokens: b.tokens })),
  };
}

interface Bucket {
  tokens: number;
  /** When `tokens` was computed, ms. */
  at: number;
  /** When the bucket is full again if untouched, ms: from then on it can be dropped. */
  fullAt: number;
}

/** Options of the in-memory limiter. */
export interface MemoryLimiterOptions {
  /** Milliseconds (any monotonic origin); `performance.now` by default. */
  readonly now?: () => number;
  /** Most buckets kept; past it the least recently used is dropped (default 100 000). */
  readonly maxBuckets?: number;
}

/**
 * Token buckets in this process. O(1) per request: the buckets in least-recently-used order; each check drops
 * the least recently used bucket when it is full again (an idle, full bucket is the same as no bucket), and
 * the least recently used ones while there are more than `maxBuckets`.
 */
export function createMemoryLimiter(
  rules: RateLimitRules,
  options: MemoryLimiterOptions = {},
): RateLimiter & { readonly size: number } {
  const now = options.now ?? (() => performance.now());
  const maxBuckets = options.maxBuckets ?? 100_000;
  const buckets = new LruMap<Bucket>();
  const sweep = (t: number) => {
    // Drop the least recently used bucket when it is full again (two at most per call).
    for (let i = 0; i < 2; i += 1) {
      const oldest = buckets.oldest();
      if (oldest === undefined || oldest.value.fullAt > t) break;
      buckets.dropOldest();
    }
    while (buckets.size > maxBuckets) buckets.dropOldest();
  };
  return {
    get size() {
      return buckets.size;
    },
    check(key, model) {
      const t = now();
      const wanted = bucketsFor(rules, model).map((b) => {
        const id = b.name === "key" ? key : `${key}\u0000${model}`;
        const stored = buckets.peek(id);
        const tokens = stored === undefined ? b.spec.burst : refill(b.spec, stored.tokens, t - stored.at);
        return { ...b, id, tokens };
      });
      const decision = decide(wanted);
      wanted.forEach((b, i) => {
        const tokens = decision.outcome === "allowed" ? decision.policies[i]!.tokens : b.tokens;
        buckets.set(b.id, { tokens, at: t, fullAt: t + msUntilFull(b.spec, tokens) });
      });
      sweep(t);
      return decision;
    },
    async close() {
      buckets.clear();
    },
  };
}
