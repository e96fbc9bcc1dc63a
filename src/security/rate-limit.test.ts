import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  createMemoryLimiter,
  type RateDecision,
  type RateLimitRules,
  rateLimitHeaders,
  retryAfterSeconds,
} from "./index.js";

/** A clock the test moves, in ms. */
function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const rules = (rate: number, burst: number, perModel: RateLimitRules["per_model"] = {}): RateLimitRules => ({
  default: { rate_per_s: rate, burst },
  per_model: perModel,
});

const sync = (d: RateDecision | Promise<RateDecision>): RateDecision => {
  assert.ok(!(d instanceof Promise), "the memory limiter answers synchronously");
  return d;
};

describe("memory token bucket", () => {
  test("a new key has its whole burst, then is refused with the wait for one token", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(2, 5), { now: c.now });
    const outcomes = Array.from({ length: 7 }, () => sync(limiter.check("ip:a")).outcome);
    assert.deepEqual(outcomes, ["allowed", "allowed", "allowed", "allowed", "allowed", "limited", "limited"]);
    const refused = sync(limiter.check("ip:a"));
    assert.equal(refused.outcome, "limited");
    if (refused.outcome !== "limited") return;
    assert.equal(refused.limit, "key");
    assert.equal(refused.retryAfterMs, 500); // 2 tokens a second: one every 500 ms
    // Another key has its own bucket.
    assert.equal(sync(limiter.check("ip:b")).outcome, "allowed");
  });

  test("refill: one token per 1/rate seconds, never above the burst", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(4, 3), { now: c.now });
    for (let i = 0; i < 3; i += 1) assert.equal(sync(limiter.check("k")).outcome, "allowed");
    assert.equal(sync(limiter.check("k")).outcome, "limited");
    c.advance(249);
    assert.equal(sync(limiter.check("k")).outcome, "limited");
    c.advance(1); // 250 ms: exactly one token
    assert.equal(sync(limiter.check("k")).outcome, "allowed");
    assert.equal(sync(limiter.check("k")).outcome, "limited");
    c.advance(60_000); // a minute idle refills to the burst (3), not 240
    const allowed = Array.from({ length: 5 }, () => sync(limiter.check("k")).outcome).filter(
      (o) => o === "allowed",
    );
    assert.equal(allowed.length, 3);
  });

  test("fractional rates: 0.3/s gives a token after 3334 ms, not 3333; 2.5/s after exactly 400 ms", () => {
    const c = clock();
    const slow = createMemoryLimiter(rules(0.3, 1), { now: c.now });
    assert.equal(sync(slow.check("k")).outcome, "allowed");
    const refused = sync(slow.check("k"));
    assert.equal(refused.outcome, "limited");
    if (refused.outcome === "limited") assert.ok(Math.abs(refused.retryAfterMs - 10_000 / 3) < 1e-6);
    c.advance(3333);
    assert.equal(sync(slow.check("k")).outcome, "limited");
    c.advance(1);
    assert.equal(sync(slow.check("k")).outcome, "allowed");

    const d = clock();
    const fast = createMemoryLimiter(rules(2.5, 1), { now: d.now });
    assert.equal(sync(fast.check("k")).outcome, "allowed");
    for (let i = 0; i < 100; i += 1) {
      d.advance(399);
      assert.equal(sync(fast.check("k")).outcome, "limited", `round ${i}: 399 ms is early`);
      d.advance(1);
      assert.equal(sync(fast.check("k")).outcome, "allowed", `round ${i}: 400 ms is one token`);
    }
  });

  test("a steady stream is served at the rate over a long run (no drift)", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(3, 2), { now: c.now });
    let allowed = 0;
    // 10 requests a second for 100 s against 3/s, burst 2: the burst, then the 299.7 tokens refilled by
    // the last request (999 × 100 ms × 3/s); the bucket never overflows, so nothing refilled is lost.
    for (let i = 0; i < 1000; i += 1) {
      if (sync(limiter.check("k")).outcome === "allowed") allowed += 1;
      c.advance(100);
    }
    assert.equal(allowed, 2 + 299);
  });

  test("per-model quota: independent of the key-wide bucket, and a refusal takes no token from either", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(1, 5, { scarce: { rate_per_s: 1, burst: 2 } }), { now: c.now });
    assert.equal(sync(limiter.check("ip:a", "scarce")).outcome, "allowed");
    assert.equal(sync(limiter.check("ip:a", "scarce")).outcome, "allowed");
    const refused = sync(limiter.check("ip:a", "scarce"));
    assert.equal(refused.outcome, "limited");
    if (refused.outcome === "limited") assert.equal(refused.limit, "model");
    // The key still has 3 of its 5: the refused request took nothing from it.
    assert.equal(sync(limiter.check("ip:a", "other")).outcome, "allowed");
    assert.equal(sync(limiter.check("ip:a")).outcome, "allowed");
    const last = sync(limiter.check("ip:a", "other"));
    assert.equal(last.outcome, "allowed");
    assert.equal(last.policies[0]!.tokens, 0);
    // Now the key-wide bucket refuses, for any model.
    const byKey = sync(limiter.check("ip:a", "scarce"));
    assert.equal(byKey.outcome, "limited");
    if (byKey.outcome === "limited") assert.equal(byKey.limit, "key");
    // Another caller's quota for the same model is untouched.
    assert.equal(sync(limiter.check("ip:b", "scarce")).outcome, "allowed");
  });

  test("memory is bounded: full idle buckets are dropped, and at most max_buckets are kept", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(10, 2), { now: c.now, maxBuckets: 50 });
    for (let i = 0; i < 200; i += 1) limiter.check(`ip:${i}`);
    assert.equal(limiter.size, 50);
    // A second later every bucket is full again: each check drops up to two idle ones.
    c.advance(1000);
    for (let i = 0; i < 40; i += 1) limiter.check("ip:busy");
    assert.equal(limiter.size, 1);
    // Dropping a full bucket changes nothing: the caller gets its whole burst.
    assert.equal(sync(limiter.check("ip:199")).outcome, "allowed");
    assert.equal(sync(limiter.check("ip:199")).outcome, "allowed");
    assert.equal(sync(limiter.check("ip:199")).outcome, "limited");
  });
});

describe("in-memory buckets past max_buckets", () => {
  /** Tokens left in the key's bucket after a check. */
  const left = (d: RateDecision): number => {
    assert.ok(d.outcome !== "unavailable");
    return d.policies[0]!.tokens;
  };
  test("the least recently used bucket goes, whatever order the buckets were made in", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(0.001, 3), { now: c.now, maxBuckets: 3 });
    // Three callers spend a token each; then a and c are used again, so b is the least recently used.
    for (const caller of ["a", "b", "c", "a", "c"]) sync(limiter.check(`ip:${caller}`));
    sync(limiter.check("ip:d"));
    assert.equal(limiter.size, 3);
    // a has spent 2 of 3 (kept), b was dropped (a fresh bucket: its whole burst again).
    assert.equal(left(sync(limiter.check("ip:a"))), 0);
    assert.equal(limiter.size, 3);
    // That check made a the newest; c is now the least recently used, and the new bucket for b drops it.
    assert.equal(left(sync(limiter.check("ip:b"))), 2);
    assert.equal(left(sync(limiter.check("ip:c"))), 2, "c was dropped: a fresh bucket");
    assert.equal(limiter.size, 3);
  });

  test("tens of thousands of callers in turn: always the latest max_buckets kept, each the right state", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(0.001, 10), { now: c.now, maxBuckets: 1_000 });
    for (let round = 0; round < 3; round += 1) {
      for (let i = 0; i < 20_000; i += 1) sync(limiter.check(`ip:${i}`));
      assert.equal(limiter.size, 1_000);
    }
    // The last 1,000 callers were seen in every round but dropped in between: each bucket is one check old.
    assert.equal(left(sync(limiter.check("ip:19999"))), 8);
    // An earlier caller was dropped: a fresh bucket.
    assert.equal(left(sync(limiter.check("ip:0"))), 9);
  });
});

describe("RateLimit headers", () => {
  test("policy and state per bucket, as structured-field lists", () => {
    const c = clock();
    const limiter = createMemoryLimiter(rules(10, 20, { m: { rate_per_s: 0.5, burst: 3 } }), { now: c.now });
    const first = sync(limiter.check("ip:a", "m"));
    assert.deepEqual(rateLimitHeaders(first), {
      "ratelimit-policy": '"key";q=20;w=2, "model";q=3;w=6',
      ratelimit: '"key";r=19;t=1, "model";r=2;t=2',
    });
    sync(limiter.check("ip:a", "m"));
    sync(limiter.check("ip:a", "m"));
    const refused = sync(limiter.check("ip:a", "m"));
    assert.equal(refused.outcome, "limited");
    assert.equal(rateLimitHeaders(refused)?.ratelimit, '"key";r=17;t=1, "model";r=0;t=6');
    if (refused.outcome === "limited") assert.equal(retryAfterSeconds(refused.retryAfterMs), 2);
  });

  test("Retry-After is whole seconds, rounded up, at least 1", () => {
    assert.equal(retryAfterSeconds(0), 1);
    assert.equal(retryAfterSeconds(1), 1);
    assert.equal(retryAfterSeconds(1000), 1);
    assert.equal(retryAfterSeconds(1001), 2);
    assert.equal(retryAfterSeconds(3333.4), 4);
  });

  test("no headers when the backend was not asked (fail open)", () => {
    assert.equal(rateLimitHeaders({ outcome: "allowed", policies: [], failedOpen: true }), undefined);
  });
});
