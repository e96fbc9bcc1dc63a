import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import {
  type BucketSpec,
  bucketsFor,
  type RateDecision,
  type RateLimiter,
  type RateLimitRules,
} from "./rate-limit.js";

/**
 * The token bucket of every key named in KEYS, decided together with Redis' own clock (TIME), so replicas
 * whose clocks disagree share one budget. ARGV holds rate_per_s and burst per key. Each bucket is a hash
 * {t: tokens, ts: ms} that expires once it would be full again (an absent bucket is a full one).
 * Returns {allowed (1/0), waitMs, tokens...} as strings (Redis turns Lua numbers into integers).
 */
export const BUCKET_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local n = #KEYS
local tokens = {}
local wait = 0
for i = 1, n do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tk = burst
  if state[1] then
    local elapsed = now - tonumber(state[2])
    if elapsed < 0 then elapsed = 0 end
    tk = math.min(burst, tonumber(state[1]) + elapsed * rate / 1000)
  end
  tokens[i] = tk
  if tk < 1 - 1e-9 then
    local w = (1 - tk) * 1000 / rate
    if w > wait then wait = w end
  end
end
local allowed = 0
if wait == 0 then
  allowed = 1
  for i = 1, n do
    local rate = tonumber(ARGV[2 * i - 1])
    local burst = tonumber(ARGV[2 * i])
    local tk = tokens[i] - 1
    if tk < 0 then tk = 0 end
    tokens[i] = tk
    redis.call('HSET', KEYS[i], 't', string.format('%.17g', tk), 'ts', string.format('%.17g', now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((burst - tk) * 1000 / rate) + 1000)
  end
end
local out = {tostring(allowed), string.format('%.17g', wait)}
for i = 1, n do out[#out + 1] = string.format('%.17g', tokens[i]) end
return out
`;

const SCRIPT_SHA = createHash("sha1").update(BUCKET_SCRIPT).digest("hex");

/** Options of the Redis limiter. */
export interface RedisLimiterOptions {
  /** redis:// or rediss:// URL. */
  readonly url: string;
  /** Prefix of every key this limiter writes. */
  readonly keyPrefix: string;
  /** Milliseconds one check may take before it counts as a failure (also the connect timeout). */
  readonly timeoutMs: number;
  /** An existing client (tests); otherwise one is made from `url`. */
  readonly client?: Redis;
}

/** The Redis client options that keep a request from ever waiting on a Redis that is down or slow. */
export function boundedClientOptions(timeoutMs: number) {
  return {
    // Commands fail at once while disconnected rather than queue, and are never retried.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(timeoutMs, 1000),
    // Reconnect in the background, at most every 2 s.
    retryStrategy: (times: number) => Math.min(times * 100, 2000),
    lazyConnect: true,
  } as const;
}

/**
 * Token buckets in Redis, shared by every replica that uses the same Redis and key prefix. One round trip per
 * check: EVALSHA, and EVAL when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH). Errors (Redis
 * down, a dropped connection, a timeout) reject; the caller applies the fail mode (see `withFailMode`).
 */
export async function createRedisLimiter(
  rules: RateLimitRules,
  options: RedisLimiterOptions,
): Promise<RateLimiter & { readonly client: Redis }> {
  const client =
    options.client ??
    new Redis(options.url, boundedClientOptions(options.timeoutMs) as Record<string, unknown>);
  // Connection errors are reported by the failing checks; without a listener they would crash the process.
  client.on("error", () => {});
  if (client.status === "wait") {
    // The first connection is awaited (bounded), so that the first requests do not fail while it is made;
    // a Redis that is down does not stop the server from starting.
    await client.connect().catch(() => {});
  }
  const run = async (keys: string[], args: (string | number)[]): Promise<string[]> => {
    try {
      return (await client.evalsha(SCRIPT_SHA, keys.length, ...keys, ...args)) as string[];
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return (await client.eval(BUCKET_SCRIPT, keys.length, ...keys, ...args)) as string[];
    }
  };
  return {
    client,
    async check(key, model) {
      const wanted = bucketsFor(rules, model);
      const base = `${options.keyPrefix}{${key}}`;
      const keys = wanted.map((b) => (b.name === "key" ? base : `${base}:m:${model}`));
      const args = wanted.flatMap((b) => [b.spec.rate_per_s, b.spec.burst]);
      const reply = await run(keys, args);
      const allowed = reply[0] === "1";
      const policies = wanted.map((b, i) => ({ name: b.name, spec: b.spec, tokens: Number(reply[2 + i]) }));
      if (allowed) return { outcome: "allowed", policies };
      const waits = wanted.map((b, i) => waitOf(b.spec, policies[i]!.tokens));
      const worst = waits.indexOf(Math.max(...waits));
      return { outcome: "limited", policies, limit: wanted[worst]!.name, retryAfterMs: Number(reply[1]) };
    },
    async close() {
      if (options.client === undefined) client.disconnect();
    },
  };
}

function waitOf(spec: BucketSpec, tokens: number): number {
  return tokens >= 1 - 1e-9 ? 0 : ((1 - tokens) * 1000) / spec.rate_per_s;
}

/** What happens when the backend cannot be asked. */
export interface FailModeOptions {
  /** open: allow the request; closed: answer `unavailable` (the server's 503). */
  readonly fail: "open" | "closed";
  /** The first failure of an episode (the backend was fine before). */
  readonly onDown?: (error: Error) => void;
  /** The first success after an episode of failures. */
  readonly onUp?: () => void;
  /** Every request let through by `fail: open`. */
  readonly onFailOpen?: () => void;
}

/** Wrap a limiter whose checks may reject (Redis) so that they never do: fail open or closed, per episode. */
export function withFailMode(limiter: RateLimiter, options: FailModeOptions): RateLimiter {
  let down = false;
  const failed = (error: unknown): RateDecision => {
    const err = error instanceof Error ? error : new Error(String(error));
    if (!down) {
      down = true;
      options.onDown?.(err);
    }
    if (options.fail === "open") {
      options.onFailOpen?.();
      return { outcome: "allowed", policies: [], failedOpen: true };
    }
    return { outcome: "unavailable", error: err };
  };
  const succeeded = (decision: RateDecision): RateDecision => {
    if (down) {
      down = false;
      options.onUp?.();
    }
    return decision;
  };
  return {
    check(key, model) {
      let result: RateDecision | Promise<RateDecision>;
      try {
        result = limiter.check(key, model);
      } catch (error) {
        return failed(error);
      }
      return result instanceof Promise ? result.then(succeeded, failed) : succeeded(result);
    },
    close: () => limiter.close(),
  };
}
