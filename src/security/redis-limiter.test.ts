import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type Server, Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import {
  createRedisLimiter,
  type RateDecision,
  type RateLimiter,
  type RateLimitRules,
  withFailMode,
} from "./index.js";

const REDIS_URL = process.env.WARDEN_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

let admin: Redis | undefined;
let reachable = false;
before(async () => {
  admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  admin.on("error", () => {});
  reachable = await admin.connect().then(
    () => true,
    () => false,
  );
});
after(async () => {
  if (reachable) {
    const keys = await admin!.keys("warden-test:*");
    if (keys.length > 0) await admin!.del(...keys);
  }
  admin?.disconnect();
});

const rules = (rate: number, burst: number, perModel: RateLimitRules["per_model"] = {}): RateLimitRules => ({
  default: { rate_per_s: rate, burst },
  per_model: perModel,
});
const prefix = () => `warden-test:${randomUUID()}:`;
const limiterFor = (r: RateLimitRules, keyPrefix: string, url = REDIS_URL, timeoutMs = 200) =>
  createRedisLimiter(r, { url, keyPrefix, timeoutMs });

async function outcomes(limiter: RateLimiter, n: number, key = "ip:a", model?: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 1) out.push((await limiter.check(key, model)).outcome);
  return out;
}
const count = (list: string[], what: string) => list.filter((o) => o === what).length;

/** A TCP proxy to Redis that a test can cut (drop every connection) or stall (accept, never forward). */
async function proxy(mode: { stall: boolean } = { stall: false }) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    if (mode.stall) return;
    const upstream = new Socket();
    sockets.add(upstream);
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    upstream.connect(6379, "127.0.0.1", () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
describe("Redis token bucket (real Redis)", () => {
  test("two limiters (two replicas) with one prefix share one budget", async (t) => {
    if (!reachable) return t.skip(`no Redis at ${REDIS_URL}`);
    const p = prefix();
    const a = await limiterFor(rules(0.001, 10), p);
    const b = await limiterFor(rules(0.001, 10), p);
    try {
      const both = await Promise.all([outcomes(a, 8), outcomes(b, 8)]);
      const all = both.flat();
      assert.equal(count(all, "allowed"), 10);
      assert.equal(count(all, "limited"), 6);
      // Another key, and another prefix (another deployment), have budgets of their own.
      assert.equal(count(await outcomes(b, 3, "ip:b"), "allowed"), 3);
      const c = await limiterFor(rules(0.001, 10), prefix());
      assert.equal(count(await outcomes(c, 3), "allowed"), 3);
      await c.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("burst, refusal with a wait, per-model quota; a refusal takes no token", async (t) => {
    if (!reachable) return t.skip(`no Redis at ${REDIS_URL}`);
    const limiter = await limiterFor(rules(0.001, 4, { m: { rate_per_s: 0.5, burst: 2 } }), prefix());
    try {
      assert.deepEqual(await outcomes(limiter, 3, "ip:a", "m"), ["allowed", "allowed", "limited"]);
      const refused = (await limiter.check("ip:a", "m")) as Extract<RateDecision, { outcome: "limited" }>;
      assert.equal(refused.outcome, "limited");
      assert.equal(refused.limit, "model");
      // Two seconds per token at 0.5/s; Redis' clock moved a little since the last token was taken.
      assert.ok(refused.retryAfterMs > 1000 && refused.retryAfterMs <= 2000, `${refused.retryAfterMs}`);
      assert.equal(Math.floor(refused.policies[0]!.tokens), 2);
      // The key has its other 2 tokens for other models, then the key-wide limit refuses.
      assert.deepEqual(await outcomes(limiter, 3, "ip:a", "n"), ["allowed", "allowed", "limited"]);
      const byKey = await limiter.check("ip:a", "m");
      assert.equal(byKey.outcome === "limited" && byKey.limit, "key");
    } finally {
      await limiter.close();
    }
  });

  test("refill over time follows Redis' clock; buckets expire once they would be full", async (t) => {
    if (!reachable) return t.skip(`no Redis at ${REDIS_URL}`);
    const p = prefix();
    // 20 tokens a second, burst 2: after 2 allowed, refused; 150 ms later (3 tokens due, capped at 2) one or
    // two are allowed, never more than the burst.
    const limiter = await limiterFor(rules(20, 2), p);
    try {
      const first = await outcomes(limiter, 4);
      assert.equal(count(first, "allowed"), 2, first.join());
      await sleep(150);
      const later = await outcomes(limiter, 4);
      const n = count(later, "allowed");
      assert.ok(n >= 1 && n <= 2, later.join());
      const ttl = await admin!.pttl(`${p}{ip:a}`);
      // Full again within (2 tokens / 20 per s) = 100 ms, plus the 1 s margin.
      assert.ok(ttl > 0 && ttl <= 1100, `pttl ${ttl}`);
    } finally {
      await limiter.close();
    }
  });

  test("NOSCRIPT (Redis restarted or its scripts flushed): the limiter falls back to EVAL", async (t) => {
    if (!reachable) return t.skip(`no Redis at ${REDIS_URL}`);
    const limiter = await limiterFor(rules(0.001, 2), prefix());
    try {
      assert.equal((await limiter.check("ip:a")).outcome, "allowed");
      await admin!.script("FLUSH");
      assert.deepEqual(await outcomes(limiter, 2), ["allowed", "limited"]);
    } finally {
      await limiter.close();
    }
  });
});

describe("Redis unreachable: fail open or closed, never hang", () => {
  const within = async <T>(ms: number, work: Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work;
    const took = performance.now() - started;
    assert.ok(took < ms, `took ${took} ms`);
    return result;
  };

  test("nothing listens: fail open allows (counted, logged once); fail closed answers unavailable", async () => {
    const raw = await within(3000, limiterFor(rules(1, 1), prefix(), "redis://127.0.0.1:1"));
    const downs: Error[] = [];
    let failOpen = 0;
    const open = withFailMode(raw, {
      fail: "open",
      onDown: (e) => downs.push(e),
      onFailOpen: () => {
        failOpen += 1;
      },
    });
    const closed = withFailMode(raw, { fail: "closed" });
    try {
      const answers = await within(2000, Promise.all(Array.from({ length: 5 }, () => open.check("ip:a"))));
      assert.ok(answers.every((d) => d.outcome === "allowed" && d.failedOpen === true));
      assert.equal(failOpen, 5);
      assert.equal(downs.length, 1, "one log line per episode");
      const refused = await within(2000, Promise.resolve(closed.check("ip:a")));
      assert.equal(refused.outcome, "unavailable");
    } finally {
      await raw.close();
    }
  });

  test("a connection that drops: failures while it is down, the same budget once it is back", async (t) => {
    if (!reachable) return t.skip(`no Redis at ${REDIS_URL}`);
    const relay = await proxy();
    const raw = await limiterFor(rules(0.001, 3), prefix(), relay.url);
    const events: string[] = [];
    const limiter = withFailMode(raw, {
      fail: "closed",
      onDown: () => events.push("down"),
      onUp: () => events.push("up"),
    });
    try {
      assert.equal((await limiter.check("ip:a")).outcome, "allowed");
      relay.cut();
      await sleep(20);
      const during = await within(2000, Promise.resolve(limiter.check("ip:a")));
      assert.equal(during.outcome, "unavailable");
      // ioredis reconnects in the background (every 100 ms at first); the budget kept in Redis is unchanged.
      let back: RateDecision | undefined;
      for (let i = 0; i < 50 && back?.outcome !== "allowed"; i += 1) {
        await sleep(50);
        back = await limiter.check("ip:a");
      }
      assert.equal(back?.outcome, "allowed");
      assert.deepEqual(await outcomes(limiter, 2), ["allowed", "limited"]);
      assert.deepEqual(events, ["down", "up"]);
    } finally {
      await raw.close();
      await relay.close();
    }
  });

  test("a Redis that accepts but never answers: each check fails after timeout_ms", async () => {
    const relay = await proxy({ stall: true });
    const raw = await limiterFor(rules(1, 1), prefix(), relay.url, 100);
    const limiter = withFailMode(raw, { fail: "closed" });
    try {
      const answers = await within(
        2000,
        Promise.all(Array.from({ length: 3 }, () => Promise.resolve(limiter.check("ip:a")))),
      );
      assert.ok(answers.every((d) => d.outcome === "unavailable"));
    } finally {
      await raw.close();
      await relay.close();
    }
  });
});
