import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { test } from "node:test";
import { parseConfigForTest, startTestServer } from "../testing/index.js";

test("a slow client that never finishes its headers is cut off, and the server goes on answering", async () => {
  const server = await startTestServer({
    config: { limits: { header_timeout_ms: 300, request_timeout_ms: 1000 } },
  });
  try {
    const { port, hostname } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    await once(socket, "connect");
    let received = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (received += chunk));
    // Slow-loris: a request line and one header, then silence.
    socket.write("POST /v1/models/credit-demo/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    await once(socket, "close");
    // Once the header timeout has passed: 408 in Warden's format, and the connection closed.
    assert.match(received, /^HTTP\/1\.1 408 /);
    assert.match(received, /"code":"WARDEN_ERR_REQUEST_TIMEOUT"/);
    const health = await fetch(`${server.url}/v2/health/live`);
    assert.equal(health.status, 200);
  } finally {
    await server.stop();
  }
});

test("headers over max_header_bytes are refused with 431 in Warden's error format", async () => {
  const server = await startTestServer({ config: { limits: { max_header_bytes: 2048 } } });
  try {
    const { port, hostname } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    await once(socket, "connect");
    let received = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (received += chunk));
    socket.write(`GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${"a".repeat(4096)}\r\n\r\n`);
    await once(socket, "close");
    assert.match(received, /^HTTP\/1\.1 431 /);
    assert.match(received, /"code":"WARDEN_ERR_BAD_REQUEST"/);
    const fine = await fetch(`${server.url}/v2/health/live`, { headers: { "x-padding": "a".repeat(512) } });
    assert.equal(fine.status, 200);
  } finally {
    await server.stop();
  }
});

test("limits are validated: a header timeout longer than the request timeout is named with a fix", () => {
  assert.throws(
    () => parseConfigForTest({ limits: { header_timeout_ms: 5000, request_timeout_ms: 1000 } }),
    (error: Error & { details?: { field: string; fix?: string }[] }) => {
      assert.equal(error.details?.[0]?.field, "test#/limits/header_timeout_ms");
      assert.match(error.details![0]!.fix!, /lower header_timeout_ms/);
      return true;
    },
  );
  assert.throws(() => parseConfigForTest({ limits: { max_header_bytes: 10 } }), /max_header_bytes/);
});
