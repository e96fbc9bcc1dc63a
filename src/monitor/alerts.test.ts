import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ALERT_NAMES,
  alertFingerprint,
  alertmanagerPayload,
  breakerAlert,
  createAlertEpisodes,
  monitorAlerts,
  ZERO_TIME,
} from "./alerts.js";
import type { BreakerEvent } from "./breaker.js";

const T0 = Date.parse("2025-03-01T12:00:00Z");
const review = {
  name: "WardenReviewSlaBreached",
  severity: "warning",
  labels: { model: "credit-demo", version: "1.0.0", queue: "default" },
  annotations: { summary: "3 reviews past their deadline", description: "oldest waits 26 h" },
  startsAt: "2025-03-01T11:00:00Z",
};

test("an episode fires once while its condition holds, and resolves once when it ends", () => {
  const episodes = createAlertEpisodes();
  const first = episodes.set(review, true, T0);
  assert.equal(first?.status, "firing");
  assert.equal(first?.startsAt, "2025-03-01T11:00:00.000Z");
  assert.equal(first?.endsAt, ZERO_TIME);
  assert.deepEqual(first?.labels, {
    model: "credit-demo",
    version: "1.0.0",
    queue: "default",
    alertname: "WardenReviewSlaBreached",
    severity: "warning",
  });
  for (let i = 0; i < 100; i++) assert.equal(episodes.set(review, true, T0 + i), undefined);
  // No statement changes nothing.
  assert.equal(episodes.set(review, undefined, T0), undefined);
  assert.equal(episodes.firing().length, 1);
  const resolved = episodes.set(review, false, T0 + 60_000);
  assert.equal(resolved?.status, "resolved");
  assert.equal(resolved?.endsAt, "2025-03-01T12:01:00.000Z");
  assert.equal(resolved?.fingerprint, first?.fingerprint);
  assert.equal(episodes.set(review, false, T0 + 120_000), undefined);
  assert.equal(episodes.firing().length, 0);
  // Another label set is another alert.
  assert.notEqual(
    episodes.set({ ...review, labels: { ...review.labels, queue: "urgent" } }, true, T0),
    undefined,
  );
});

test("emit follows the event's own status: the review queue's plain objects fire, resolved or endsAt resolve", () => {
  const episodes = createAlertEpisodes();
  assert.equal(episodes.emit(review, T0)?.status, "firing");
  assert.equal(episodes.emit(review, T0), undefined);
  const done = episodes.emit({ ...review, endsAt: "2025-03-01T13:00:00Z" }, T0);
  assert.equal(done?.status, "resolved");
  assert.equal(done?.endsAt, "2025-03-01T13:00:00.000Z");
  assert.equal(episodes.emit({ ...review, status: "resolved" }, T0), undefined);
});

test("the payload is Alertmanager's webhook, version 4", () => {
  const episodes = createAlertEpisodes();
  const alert = episodes.set(review, true, T0)!;
  const payload = alertmanagerPayload([alert], { externalURL: "http://warden:8080" });
  assert.equal(payload.version, "4");
  assert.equal(payload.status, "firing");
  assert.equal(payload.receiver, "warden");
  assert.deepEqual(payload.groupLabels, { alertname: "WardenReviewSlaBreached" });
  assert.deepEqual(payload.commonLabels, alert.labels);
  assert.deepEqual(payload.commonAnnotations, review.annotations);
  assert.equal(payload.externalURL, "http://warden:8080");
  assert.equal(payload.truncatedAlerts, 0);
  assert.equal(payload.groupKey, '{}:{alertname="WardenReviewSlaBreached"}');
  assert.deepEqual(Object.keys(payload.alerts[0]!).sort(), [
    "annotations",
    "endsAt",
    "fingerprint",
    "labels",
    "startsAt",
    "status",
  ]);
  assert.match(alert.fingerprint, /^[0-9a-f]{16}$/);
  // Label order does not matter.
  assert.equal(alertFingerprint({ b: "2", a: "1" }), alertFingerprint({ a: "1", b: "2" }));
  assert.throws(() => alertmanagerPayload([]), RangeError);
});

test("a breaker's alert is active from the trip to the close, with the rule and the signals", () => {
  const trip: BreakerEvent = {
    from: "closed",
    to: "open",
    rule: "confidence",
    threshold: 0.75,
    values: { confidence: { value: 0.7123, observations: 50 } },
    at: T0,
  };
  const open = breakerAlert("credit-demo", "1.0.0", trip, "refuse");
  assert.equal(open.active, true);
  assert.equal(open.event.name, ALERT_NAMES.breaker);
  assert.equal(open.event.severity, "critical");
  assert.match(String(open.event.annotations?.description), /confidence 0\.7123 over 50/);
  assert.equal(
    breakerAlert("credit-demo", "1.0.0", { ...trip, from: "open", to: "half_open" }, "refuse").active,
    true,
  );
  assert.equal(
    breakerAlert("credit-demo", "1.0.0", { ...trip, from: "half_open", to: "closed" }, "refuse").active,
    false,
  );
});

test("drift and anomaly alerts say nothing without a verdict, and follow the verdict once there is one", () => {
  const none = monitorAlerts(
    "m",
    "1",
    { window: 10, anomaly_rate: null, dataset: null },
    { anomalyRate: 0.1, now: T0 },
  );
  assert.deepEqual(
    none.map((a) => a.active),
    [undefined, undefined],
  );
  const drifted = monitorAlerts(
    "m",
    "1",
    {
      window: 200,
      anomaly_rate: 0.25,
      dataset: { drifted: true, driftShare: 0.5, driftedCount: 5, testedCount: 10 },
    },
    { anomalyRate: 0.1, now: T0 },
  );
  assert.deepEqual(
    drifted.map((a) => [a.event.name, a.active]),
    [
      [ALERT_NAMES.drift, true],
      [ALERT_NAMES.anomaly, true],
    ],
  );
  const calm = monitorAlerts(
    "m",
    "1",
    {
      window: 200,
      anomaly_rate: 0.05,
      dataset: { drifted: false, driftShare: 0, driftedCount: 0, testedCount: 10 },
    },
    { anomalyRate: 0.1, now: T0 },
  );
  assert.deepEqual(
    calm.map((a) => a.active),
    [false, false],
  );
});
