/**
 * Security as a room: API keys (`api-keys.ts`), JWT verification (`jwt.ts`), roles and the permission each
 * route needs (`roles.ts`), rate limits and quotas (`rate-limit.ts`, `redis-limiter.ts`, `headers.ts`,
 * `setup.ts`). The server's hooks (server/access.ts, server/app.ts) put them in the request path.
 */
export * from "./api-keys.js";
export * from "./extraction.js";
export { rateLimitHeaders, retryAfterSeconds } from "./headers.js";
export * from "./jwt.js";
export { LruMap } from "./lru.js";
export {
  type BucketSpec,
  bucketsFor,
  createMemoryLimiter,
  decide,
  EPSILON,
  type LimitName,
  type MemoryLimiterOptions,
  msUntilFull,
  msUntilToken,
  type PolicyState,
  type RateDecision,
  type RateLimiter,
  type RateLimitRules,
  refill,
} from "./rate-limit.js";
export {
  BUCKET_SCRIPT,
  boundedClientOptions,
  createRedisLimiter,
  type FailModeOptions,
  type RedisLimiterOptions,
  withFailMode,
} from "./redis-limiter.js";
export * from "./roles.js";
export { createRateLimiter, type RateLimiterEvents, type RateLimitSettings } from "./setup.js";
