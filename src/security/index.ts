/** Security: rate limits and quotas (authentication comes next). The room's only door. */
export { rateLimitHeaders, retryAfterSeconds } from "./headers.js";
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
export { createRateLimiter, type RateLimiterEvents, type RateLimitSettings } from "./setup.js";
