import assert from "node:assert/strict";
import { test } from "node:test";
import { captureLogs, startTestServer } from "../testing/index.js";

test("logs are JSON lines carrying the request id the client sent (or one Warden made)", async () => {
  const { logger, lines } = captureLogs("debug");
  const server = await startTestServer({ logger });
  try {
    const response = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      headers: { "x-request-id": "trace-42" },
      payload: { features: { Seniority: "nine" } },
    });
    assert.equal(response.statusCode, 400);
    assert.equal(response.headers["x-request-id"], "trace-42");
    const logged = lines.find((l) => l.reqId === "trace-42");
    assert.ok(logged, JSON.stringify(lines.slice(-3)));
    assert.equal(logged.code, "WARDEN_ERR_VALIDATION");
    assert.equal(logged.level, 20, "a client's mistake is debug, not an error");
    assert.equal(logged.route, "/v1/models/:model/decisions");
    assert.equal(logged.model, "credit-demo");
    assert.equal(typeof logged.time, "number");
    const made = await server.app.inject({
      method: "GET",
      url: "/v1/decisions/none",
      headers: { "x-request-id": "bad id!" },
    });
    assert.match(String(made.headers["x-request-id"]), /^[0-9a-f-]{36}$/, "an unsafe id is replaced");
    assert.ok(lines.some((l) => l.msg === "model loaded" && l.model === "credit-demo"));
  } finally {
    await server.stop();
  }
});
