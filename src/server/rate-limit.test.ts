import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { FastifyRequest } from "fastify";
import { parseServerConfig } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import { DEMO_XGB, holdoutInstances, loadManifest, startTestServer } from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
// Each test is its own caller (the x-test-client header is the key), so tests do not share budgets.
const rateLimitKey = (request: FastifyRequest) => `key:${String(request.headers["x-test-client"] ?? "none")}`;
// Rates so slow that nothing refills during a test: every count below is exact.
const limits = {
  enabled: true,
  default: { rate_per_s: 0.001, burst: 4 },
  per_model: { "credit-demo": { rate_per_s: 0.001, burst: 2 } },
};

describe("rate limits in the server (memory backend)", () => {
  let server: Server;
  before(async () => {
    server = await startTestServer({ config: { rate_limits: limits }, rateLimitKey });
  });
  after(async () => {
    await server.stop();
  });
  const get = (url: string, client: string) =>
    server.app.inject({ method: "GET", url, headers: { "x-test-client": client } });

  test("answers carry RateLimit-Policy and RateLimit; over the limit: 429 with Retry-After, in Warden's format", async () => {
    const { features, subject } = holdoutInstances(loadManifest(DEMO_XGB))[0]!;
    const decided = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      payload: { features, subject },
      headers: { "x-test-client": "a" },
    });
    assert.equal(decided.statusCode, 200, decided.body);
    assert.equal(decided.headers["ratelimit-policy"], '"key";q=4;w=4000, "model";q=2;w=2000');
    assert.equal(decided.headers.ratelimit, '"key";r=3;t=1000, "model";r=1;t=1000');
    assert.equal((await get("/v1/models/credit-demo", "a")).statusCode, 200);
    const refused = await get("/v1/models/credit-demo", "a");
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers["retry-after"], "1000");
    assert.equal(refused.headers.ratelimit, '"key";r=2;t=2000, "model";r=0;t=2000');
    const body = refused.json();
    assert.equal(body.code, "WARDEN_ERR_RATE_LIMITED");
    assert.match(
      body.error,
      /per-key quota for model credit-demo \(0\.001 requests\/s, burst 2\).*retry in 1000 s/,
    );
    assert.equal(body.details[0].field, "rate_limits.per_model.credit-demo");
    assert.match(body.details[0].fix, /retry after 1000 s/);
  });

  test("the per-model quota is independent of the key-wide limit", async () => {
    assert.equal((await get("/v1/models/credit-demo", "b")).statusCode, 200);
    assert.equal((await get("/v1/models/credit-demo", "b")).statusCode, 200);
    assert.equal((await get("/v1/models/credit-demo", "b")).statusCode, 429);
    // The quota is spent, yet the key has 2 more for routes without a model (the refusal cost nothing).
    const other = await get("/v1/models", "b");
    assert.equal(other.statusCode, 200);
    assert.equal(other.headers["ratelimit-policy"], '"key";q=4;w=4000');
    assert.equal((await get("/v1/models", "b")).statusCode, 200);
    const byKey = await get("/v1/models", "b");
    assert.equal(byKey.statusCode, 429);
    assert.match(byKey.json().error, /the per-key rate limit \(0\.001 requests\/s, burst 4\)/);
    assert.equal(byKey.json().details[0].field, "rate_limits.default");
    // Another caller is not affected.
    assert.equal((await get("/v1/models/credit-demo", "c")).statusCode, 200);
  });

  test("health endpoints and /metrics are never limited; refusals are counted by model and limit", async () => {
    for (let i = 0; i < 10; i += 1) {
      for (const url of ["/v2/health/live", "/v2/health/ready", "/metrics"]) {
        const response = await get(url, "d");
        assert.equal(response.statusCode, 200, url);
        assert.equal(response.headers.ratelimit, undefined);
      }
    }
    // A limited caller asking for models that do not exist: counted, but the made-up names label no series.
    for (let i = 0; i < 4; i += 1) assert.equal((await get("/v1/models", "e")).statusCode, 200);
    for (const name of ["nope-1", "nope-2"])
      assert.equal((await get(`/v1/models/${name}`, "e")).statusCode, 429);
    const metrics = (await get("/metrics", "d")).body;
    assert.match(metrics, /warden_rate_limited_total\{model="credit-demo",limit="model"\} 2/);
    assert.match(metrics, /warden_rate_limited_total\{model="",limit="key"\} 3/);
    assert.doesNotMatch(metrics, /nope-/);
  });
});

describe("rate limits with Redis unreachable (nothing listens on 127.0.0.1:1)", () => {
  const redisDown = (fail: "open" | "closed") => ({
    rate_limits: {
      ...limits,
      backend: "redis",
      redis: { url: "redis://127.0.0.1:1", fail, key_prefix: "warden-test:", timeout_ms: 100 },
    },
  });

  test("fail closed: 503 WARDEN_ERR_RATE_LIMITER_UNAVAILABLE with Retry-After; health still answers", async () => {
    const server = await startTestServer({ config: redisDown("closed") });
    try {
      const refused = await server.app.inject({ method: "GET", url: "/v1/models/credit-demo" });
      assert.equal(refused.statusCode, 503);
      assert.equal(refused.headers["retry-after"], "1");
      assert.equal(refused.json().code, "WARDEN_ERR_RATE_LIMITER_UNAVAILABLE");
      assert.match(refused.json().error, /rate limiter is unavailable/);
      assert.equal((await server.app.inject({ method: "GET", url: "/v2/health/ready" })).statusCode, 200);
    } finally {
      await server.stop();
    }
  });

  test("fail open: served without RateLimit headers, counted in warden_rate_limit_fail_open_total", async () => {
    const server = await startTestServer({ config: redisDown("open") });
    try {
      for (let i = 0; i < 6; i += 1) {
        const response = await server.app.inject({ method: "GET", url: "/v1/models/credit-demo" });
        assert.equal(response.statusCode, 200);
        assert.equal(response.headers.ratelimit, undefined);
      }
      const metrics = (await server.app.inject({ method: "GET", url: "/metrics" })).body;
      assert.match(metrics, /warden_rate_limit_fail_open_total 6/);
    } finally {
      await server.stop();
    }
  });
});

describe("rate_limits configuration", () => {
  const problems = (rateLimits: unknown) => {
    try {
      parseServerConfig({ rate_limits: rateLimits }, "warden.yaml");
    } catch (error) {
      assert.ok(error instanceof WardenError);
      assert.equal(error.code, "WARDEN_ERR_CONFIG_INVALID");
      return error.details.map((d) => `${d.field}: ${d.expected} / ${d.found}${d.fix ? ` / ${d.fix}` : ""}`);
    }
    assert.fail("expected the configuration to be refused");
  };

  test("defaults: disabled, memory, identity ip, 10/s burst 20", () => {
    const config = parseServerConfig({}, "t");
    assert.equal(config.rate_limits.enabled, false);
    assert.equal(config.rate_limits.backend, "memory");
    assert.equal(config.rate_limits.identity, "ip");
    assert.deepEqual(config.rate_limits.default, { rate_per_s: 10, burst: 20 });
    const redis = parseServerConfig(
      { rate_limits: { backend: "redis", redis: { url: "redis://r:6379/0" } } },
      "t",
    ).rate_limits.redis;
    assert.deepEqual(redis, {
      url: "redis://r:6379/0",
      key_prefix: "warden:rl:",
      fail: "open",
      timeout_ms: 100,
    });
  });

  test("each problem names the file, path, what was expected and what was found", () => {
    const found = problems({
      default: { rate_per_s: 0, burst: 1.5 },
      per_model: { "credit-demo": { rate_per_s: "fast" } },
      backend: "postgres",
      identity: "jwt",
    });
    assert.deepEqual(found, [
      'warden.yaml#/rate_limits/identity: ip (the client address; API keys come with authentication) / "jwt" (string)',
      'warden.yaml#/rate_limits/backend: memory (this process) or redis (one budget shared by every replica) / "postgres" (string)',
      "warden.yaml#/rate_limits/default/rate_per_s: requests a second refilled, above 0 and at most 1000000 (fractions allowed: 0.5 is one every 2 s) / 0 (number)",
      "warden.yaml#/rate_limits/default/burst: the most requests at once (the bucket's size), an integer from 1 to 1000000 / 1.5 (number)",
      'warden.yaml#/rate_limits/per_model/credit-demo/rate_per_s: requests a second refilled, above 0 and at most 1000000 (fractions allowed: 0.5 is one every 2 s) / "fast" (string)',
    ]);
  });

  test("backend redis needs its settings; bad URLs, fail modes and model names are refused with a fix", () => {
    assert.deepEqual(problems({ backend: "redis" }), [
      'warden.yaml#/rate_limits/redis: a mapping of url, key_prefix, fail and timeout_ms (backend is redis) / missing / add redis: { url: "redis://127.0.0.1:6379" }, or set backend: memory',
    ]);
    const found = problems({ backend: "redis", redis: { url: "http://r:6379", fail: "maybe", timeout: 5 } });
    assert.equal(found.length, 3, found.join("\n"));
    assert.match(found[0]!, /^warden\.yaml#\/rate_limits\/redis\/timeout: no such field/);
    assert.match(found.join("\n"), /redis\/url: a redis:\/\/ or rediss:\/\/ URL/);
    assert.match(
      found.join("\n"),
      /redis\/fail: open \(allow requests while Redis is unreachable\) or closed/,
    );
    assert.deepEqual(problems({ per_model: { "bad name!": { rate_per_s: 1, burst: 1 } } }), [
      'warden.yaml#/rate_limits/per_model/bad name!: a model name (a letter or digit, then letters, digits, _, . or -; at most 128) / "bad name!" (string) / use the model\'s `name` from its manifest',
    ]);
    assert.match(
      problems({ backend: "redis", redis: { url: "redis://h:99999" } }).join(),
      /a valid redis:\/\/ or rediss:\/\/ URL/,
    );
  });
});
