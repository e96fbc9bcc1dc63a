import assert from "node:assert/strict";
import { after, test } from "node:test";
import { parseServerConfig } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import type { AlertmanagerPayload } from "../monitor/index.js";
import { startWebhookReceiver, type WebhookReceiver } from "../testing/index.js";
import { createAlertSink, safeUrl } from "./alert-sink.js";

const receivers: WebhookReceiver[] = [];
after(async () => {
  await Promise.all(receivers.map((r) => r.close()));
});
const receiver = async () => {
  const r = await startWebhookReceiver();
  receivers.push(r);
  return r;
};
const alertsConfig = (alerts: Record<string, unknown>) =>
  parseServerConfig({ data_dir: "/tmp/unused", alerts }, "test").alerts;

const escalation = {
  name: "WardenReviewSlaBreached",
  severity: "warning",
  labels: { model: "credit-demo", version: "1.0.0" },
  annotations: { summary: "2 reviews past their deadline", description: "oldest 30 h" },
  startsAt: "2025-03-01T10:00:00Z",
};

test("an alert reaches every webhook once per episode as Alertmanager's payload, and resolves once", async () => {
  const a = await receiver();
  const b = await receiver();
  const sink = createAlertSink(
    alertsConfig({ webhooks: [{ url: a.url }, { url: b.url }], external_url: "http://warden.example:8080" }),
    { now: () => Date.parse("2025-03-01T11:00:00Z") },
  );
  sink.emit(escalation);
  sink.emit(escalation);
  sink.fire(escalation);
  sink.resolve(escalation);
  sink.resolve(escalation);
  await sink.settled();
  for (const r of [a, b]) {
    assert.equal(r.bodies.length, 2);
    const [firing, resolved] = r.bodies as AlertmanagerPayload[];
    assert.equal(firing!.version, "4");
    assert.equal(firing!.status, "firing");
    assert.equal(firing!.externalURL, "http://warden.example:8080");
    assert.deepEqual(firing!.alerts[0]!.labels, {
      model: "credit-demo",
      version: "1.0.0",
      alertname: "WardenReviewSlaBreached",
      severity: "warning",
    });
    assert.equal(firing!.alerts[0]!.annotations.summary, "2 reviews past their deadline");
    assert.equal(firing!.alerts[0]!.startsAt, "2025-03-01T10:00:00.000Z");
    assert.equal(firing!.alerts[0]!.endsAt, "0001-01-01T00:00:00Z");
    assert.equal(firing!.alerts[0]!.generatorURL, "http://warden.example:8080");
    assert.equal(resolved!.status, "resolved");
    assert.equal(resolved!.alerts[0]!.endsAt, "2025-03-01T11:00:00.000Z");
    assert.equal(resolved!.alerts[0]!.fingerprint, firing!.alerts[0]!.fingerprint);
  }
  await sink.close();
});

test("a 500 is retried with backoff until delivered; a 400 is not retried; both are logged", async () => {
  const r = await receiver();
  r.answer = (n) => (n < 2 ? 500 : 200);
  const lines: { level: string; msg: string }[] = [];
  const logger = {
    warn: (_o: unknown, msg: string) => lines.push({ level: "warn", msg }),
    error: (_o: unknown, msg: string) => lines.push({ level: "error", msg }),
    info: (_o: unknown, msg: string) => lines.push({ level: "info", msg }),
    debug: () => undefined,
  } as never;
  const sink = createAlertSink(alertsConfig({ webhooks: [{ url: r.url, max_attempts: 4 }], backoff_ms: 1 }), {
    logger,
  });
  sink.fire(escalation);
  await sink.settled();
  assert.equal(r.bodies.length, 3, "two 500s, then delivered");
  assert.deepEqual(r.bodies[0], r.bodies[2]);
  assert.equal(lines.filter((l) => l.msg === "alert webhook failed; retrying").length, 2);
  assert.ok(lines.some((l) => l.msg === "alert firing"));

  r.answer = () => 400;
  sink.resolve(escalation);
  await sink.settled();
  assert.equal(r.bodies.length, 4, "a 400 is not retried");
  assert.ok(lines.some((l) => l.level === "error" && l.msg === "alert webhook refused the notification"));

  r.answer = () => 503;
  sink.fire({ ...escalation, name: "Other" });
  await sink.settled();
  assert.equal(r.bodies.length, 8, "max_attempts, then dropped");
  assert.ok(lines.some((l) => l.msg === "alert webhook failed; notification dropped"));
  await sink.close();
});

test("a webhook that never answers costs the caller nothing and is given up after its timeout", async () => {
  const r = await receiver();
  r.answer = () => "hang";
  const sink = createAlertSink(
    alertsConfig({ webhooks: [{ url: r.url, timeout_ms: 20, max_attempts: 2 }], backoff_ms: 1 }),
  );
  // emit returns before the receiver has even seen the request.
  sink.fire(escalation);
  assert.equal(r.bodies.length, 0);
  await sink.settled();
  assert.equal(r.bodies.length, 2);
  await sink.close();
});

test("webhooks are validated with clear errors", () => {
  const bad = (alerts: unknown) => {
    try {
      parseServerConfig({ alerts }, "warden.yaml");
    } catch (error) {
      assert.ok(error instanceof WardenError);
      assert.equal(error.code, "WARDEN_ERR_CONFIG_INVALID");
      return error.details.map((d) => d.field);
    }
    assert.fail("accepted");
  };
  assert.deepEqual(bad({ webhooks: [{ url: "ftp://x" }] }), ["warden.yaml#/alerts/webhooks/0/url"]);
  assert.deepEqual(bad({ webhooks: [{ url: "http://host:99999/" }] }), [
    "warden.yaml#/alerts/webhooks/0/url",
  ]);
  // fetch refuses credentials in a URL, and its refusal would log the password.
  assert.deepEqual(bad({ webhooks: [{ url: "http://user:s3cret@h/hook" }] }), [
    "warden.yaml#/alerts/webhooks/0/url",
  ]);
  assert.deepEqual(bad({ webhooks: [{ url: "http://h/", timeout_ms: 0 }] }), [
    "warden.yaml#/alerts/webhooks/0/timeout_ms",
  ]);
  assert.ok(
    bad({ webhooks: [{ url: "http://h/", colour: 1 }] })[0]!.startsWith("warden.yaml#/alerts/webhooks/0"),
  );
  const ok = parseServerConfig({ alerts: { webhooks: [{ url: "http://h:9093/hook" }] } }, "t").alerts;
  assert.deepEqual(ok.webhooks, [{ url: "http://h:9093/hook", timeout_ms: 5000, max_attempts: 4 }]);
  assert.equal(ok.backoff_ms, 500);
});

test("webhook addresses are logged without credentials, path or query (a receiver's token may be in either)", () => {
  assert.equal(
    safeUrl("https://user:secret@hooks.example/T000/B000/XXXX?token=abc"),
    "https://hooks.example/…",
  );
  assert.equal(safeUrl("http://127.0.0.1:9093/api/v2/alerts"), "http://127.0.0.1:9093/…");
  assert.equal(safeUrl("not a url"), "(an invalid URL)");
});
