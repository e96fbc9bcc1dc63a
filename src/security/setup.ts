import { createMemoryLimiter, type RateLimiter, type RateLimitRules } from "./rate-limit.js";
import { createRedisLimiter, withFailMode } from "./redis-limiter.js";

/** The `rate_limits` section of the server configuration, as validated. */
export interface RateLimitSettings extends RateLimitRules {
  readonly enabled: boolean;
  /** What the key is: the client address until authentication lands. */
  readonly identity: "ip";
  readonly backend: "memory" | "redis";
  readonly memory: { readonly max_buckets: number };
  readonly redis?: {
    readonly url: string;
    readonly key_prefix: string;
    readonly fail: "open" | "closed";
    readonly timeout_ms: number;
  };
}

/** What the limiter reports (the server logs them and counts them in metrics). */
export interface RateLimiterEvents {
  /** Milliseconds for the memory backend's buckets; `performance.now` by default. */
  readonly now?: () => number;
  readonly onDown?: (error: Error) => void;
  readonly onUp?: () => void;
  readonly onFailOpen?: () => void;
}

/** The limiter a configuration asks for. */
export async function createRateLimiter(
  settings: RateLimitSettings,
  events: RateLimiterEvents = {},
): Promise<RateLimiter> {
  if (settings.backend === "memory") {
    return createMemoryLimiter(settings, {
      maxBuckets: settings.memory.max_buckets,
      ...(events.now ? { now: events.now } : {}),
    });
  }
  const redis = settings.redis!;
  const limiter = await createRedisLimiter(settings, {
    url: redis.url,
    keyPrefix: redis.key_prefix,
    timeoutMs: redis.timeout_ms,
  });
  return withFailMode(limiter, {
    fail: redis.fail,
    ...(events.onDown ? { onDown: events.onDown } : {}),
    ...(events.onUp ? { onUp: events.onUp } : {}),
    ...(events.onFailOpen ? { onFailOpen: events.onFailOpen } : {}),
  });
}
