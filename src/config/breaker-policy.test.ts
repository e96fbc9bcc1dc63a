import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { WardenError } from "../errors/index.js";
import { createCircuitBreaker } from "../monitor/index.js";
import { DEMO_XGB } from "../testing/index.js";
import { parseManifest } from "./index.js";

const demo = parse(readFileSync(DEMO_XGB, "utf8")) as Record<string, unknown>;
const manifest = (breaker: unknown) =>
  parseManifest({ ...demo, policy: breaker === undefined ? {} : { breaker } }, "/models/m/manifest.yaml");

function problems(breaker: unknown) {
  try {
    manifest(breaker);
  } catch (error) {
    assert.ok(error instanceof WardenError);
    assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
    return error.details;
  }
  assert.fail("expected the manifest to be refused");
}

function detail(breaker: unknown, path: string) {
  const details = problems(breaker);
  const found = details.find((d) => d.field.endsWith(`#/policy/breaker${path}`));
  assert.ok(found, JSON.stringify(details));
  return found;
}

const errorRule = { error_rate: { trip: 0.2, reset: 0.05 } };

test("no breaker unless the manifest configures one", () => {
  assert.equal(manifest(undefined).breaker, undefined);
});

test("defaults: window 200, rules need a full window, five-minute cool-down, 10% probes, 50 to close, refuse", () => {
  const policy = manifest({ rules: errorRule }).breaker;
  assert.deepEqual(policy, {
    rules: [{ signal: "error_rate", trip: 0.2, reset: 0.05, minObservations: 200 }],
    window: 200,
    coolDownS: 300,
    probeFraction: 0.1,
    probeSelection: "sequence",
    probesToClose: 50,
    fallback: { action: "refuse" },
  });
  assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy?.rules) && Object.isFrozen(policy?.rules[0]));
  // A small window caps probes_to_close's default.
  assert.equal(manifest({ rules: errorRule, window: 20 }).breaker?.probesToClose, 20);
});

test("every field written is kept; rules come in a fixed order; the result drives a breaker", () => {
  const policy = manifest({
    rules: {
      drift: { trip: 0.3, reset: 0.1, min_observations: 1000 },
      confidence: { trip: 0.7, reset: 0.75, min_observations: 100 },
      anomaly_rate: { trip: 0.1, reset: 0.05 },
    },
    window: 500,
    cool_down_s: 30,
    probe_fraction: 0.25,
    probe_selection: "hash",
    probes_to_close: 40,
    fallback: { action: "fallback_version", version: "1.1.0" },
  }).breaker;
  assert.deepEqual(
    policy?.rules.map((r) => [r.signal, r.minObservations]),
    [
      ["confidence", 100],
      ["anomaly_rate", 500],
      ["drift", 1000],
    ],
  );
  assert.deepEqual(policy?.fallback, { action: "fallback_version", version: "1.1.0" });
  assert.equal(policy?.probeSelection, "hash");
  const breaker = createCircuitBreaker(policy!);
  assert.equal(breaker.snapshot().state, "closed");
});

test("a fallback_version needs a version, and not this manifest's own; other actions take none", () => {
  const missing = detail({ rules: errorRule, fallback: { action: "fallback_version" } }, "/fallback/version");
  assert.equal(missing.found, "missing");
  assert.match(missing.expected, /required with fallback_version/);
  assert.match(missing.fix ?? "", /add version/);
  const own = detail(
    { rules: errorRule, fallback: { action: "fallback_version", version: demo.version } },
    "/fallback/version",
  );
  assert.match(own.expected, /another version than this manifest's own/);
  const extra = detail(
    { rules: errorRule, fallback: { action: "refuse", version: "1.0.0" } },
    "/fallback/version",
  );
  assert.match(extra.expected, /no version with action refuse/);
  const action = detail({ rules: errorRule, fallback: { action: "503" } }, "/fallback/action");
  assert.equal(action.expected, "one of human_review, fallback_version, refuse");
  assert.equal(action.found, '"503" (string)');
});

test("reset must sit on the healthy side of trip, with a fix that says which side", () => {
  const confidence = detail({ rules: { confidence: { trip: 0.7, reset: 0.6 } } }, "/rules/confidence/reset");
  assert.match(confidence.expected, /at or above trip \(0.7\)/);
  assert.equal(confidence.found, "0.6 (number)");
  assert.match(confidence.fix ?? "", /trips below trip/);
  const anomaly = detail({ rules: { anomaly_rate: { trip: 0.1, reset: 0.2 } } }, "/rules/anomaly_rate/reset");
  assert.match(anomaly.expected, /at or below trip \(0.1\)/);
  // Equal thresholds are allowed: the probe window alone is then the hysteresis.
  assert.ok(manifest({ rules: { confidence: { trip: 0.7, reset: 0.7 } } }).breaker);
});

test("counts must fit the window; shapes, ranges and unknown fields are named", () => {
  const min = detail(
    { rules: { error_rate: { trip: 0.2, reset: 0.1, min_observations: 300 } } },
    "/rules/error_rate/min_observations",
  );
  assert.match(min.expected, /at most window \(200\)/);
  // Drift's min_observations counts the rows behind the verdict: any number is fine.
  assert.ok(manifest({ rules: { drift: { trip: 0.3, reset: 0.1, min_observations: 5000 } } }).breaker);
  assert.match(
    detail({ rules: errorRule, window: 50, probes_to_close: 60 }, "/probes_to_close").expected,
    /at most window \(50\)/,
  );
  assert.equal(
    detail({ rules: {} }, "/rules").expected,
    "a mapping of one or more of confidence, anomaly_rate, error_rate, drift and fairness",
  );
  assert.equal(
    detail({ rules: { latency: { trip: 1, reset: 1 } } }, "/rules/latency").expected,
    "no such field",
  );
  assert.match(
    detail({ rules: { error_rate: { trip: 1.5, reset: 0.1 } } }, "/rules/error_rate/trip").expected,
    /from 0 to 1/,
  );
  assert.equal(detail({ rules: { error_rate: { reset: 0.1 } } }, "/rules/error_rate/trip").fix, "add it");
  assert.equal(
    detail({ rules: errorRule, probe_fraction: 0 }, "/probe_fraction").expected,
    "a number above 0 and at most 1",
  );
  assert.equal(
    detail({ rules: errorRule, probe_selection: "random" }, "/probe_selection").expected,
    "one of sequence, hash",
  );
  assert.match(detail({ rules: errorRule, cool_down_s: -1 }, "/cool_down_s").expected, /seconds from 0/);
  assert.match(detail({ window: 100 }, "/rules").expected, /required/);
  assert.equal(detail({ rules: errorRule, enabled: true }, "/enabled").expected, "no such field");
});
