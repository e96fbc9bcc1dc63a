import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { WardenError } from "../errors/index.js";
import { DEMO_XGB } from "../testing/index.js";
import { parseManifest } from "./index.js";

const demo = parse(readFileSync(DEMO_XGB, "utf8")) as Record<string, unknown>;
const FILE = "/models/m/manifest.yaml";
const manifest = (review: unknown, task?: Record<string, unknown>) =>
  parseManifest({ ...demo, ...task, policy: review === undefined ? {} : { review } }, FILE);

function detail(review: unknown, path: string, task?: Record<string, unknown>) {
  try {
    manifest(review, task);
  } catch (error) {
    assert.ok(error instanceof WardenError);
    assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
    const found = error.details.find((d) => d.field === `${FILE}#/policy/review${path}`);
    assert.ok(found, JSON.stringify(error.details));
    assert.match(error.message, new RegExp(`/policy/review${path}`));
    return found;
  }
  assert.fail("expected the manifest to be refused");
}

test("without policy.review nothing is held by rule; defaults: one-day SLA, 30-minute claims", () => {
  assert.deepEqual(manifest(undefined).review, {
    configured: false,
    all: false,
    borderline: undefined,
    anomalies: false,
    breakerOpen: true,
    fourEyes: false,
    slaMinutes: 1440,
    claimMinutes: 30,
    reasonCodes: undefined,
  });
});

test("every field read with its value", () => {
  const review = manifest({
    all: true,
    borderline: { low: 0.4, high: 0.6 },
    anomalies: true,
    breaker_open: false,
    four_eyes: true,
    sla_minutes: 90,
    claim_minutes: 5,
    reason_codes: ["a", "b"],
  }).review;
  assert.deepEqual(review, {
    configured: true,
    all: true,
    borderline: { low: 0.4, high: 0.6 },
    anomalies: true,
    breakerOpen: false,
    fourEyes: true,
    slaMinutes: 90,
    claimMinutes: 5,
    reasonCodes: ["a", "b"],
  });
  assert.ok(Object.isFrozen(review));
});

test("a probability band outside 0..1 names the field, what was expected and what came", () => {
  const d = detail({ borderline: { low: -0.1, high: 0.6 } }, "/borderline/low");
  assert.match(d.expected, /a probability from 0 to 1/);
  assert.equal(d.found, "-0.1 (number)");
});

test("a band whose high is not above low is refused with a fix", () => {
  const d = detail({ borderline: { low: 0.6, high: 0.4 } }, "/borderline/high");
  assert.match(d.expected, /a number above low \(0.6\)/);
  assert.equal(d.found, "0.4 (number)");
  assert.match(d.fix!, /swap low and high/);
});

test("a regression model's band is on its value, beyond 0..1", () => {
  const regression = {
    task: "regression",
    output: {},
    policy: {},
  };
  let parsed: ReturnType<typeof manifest>;
  try {
    parsed = manifest({ borderline: { low: 100, high: 250 } }, regression);
  } catch (error) {
    // Only the review problems matter here.
    assert.ok(error instanceof WardenError);
    assert.ok(!error.details.some((d) => d.field.includes("/policy/review")), JSON.stringify(error.details));
    return;
  }
  assert.deepEqual(parsed.review.borderline, { low: 100, high: 250 });
});

test("unknown fields, wrong types and repeated reason codes are refused", () => {
  assert.equal(detail({ everything: true }, "/everything").expected, "no such field");
  const type = detail({ four_eyes: "yes" }, "/four_eyes");
  assert.equal(type.expected, "true or false");
  assert.equal(type.found, '"yes" (string)');
  assert.match(detail({ sla_minutes: 0 }, "/sla_minutes").expected, /above 0/);
  const repeated = detail({ reason_codes: ["a", "a"] }, "/reason_codes/1");
  assert.match(repeated.expected, /not listed before/);
  assert.match(detail({ reason_codes: ["no spaces"] }, "/reason_codes/0").expected, /letters, digits/);
  assert.match(detail({ borderline: { low: 0.1 } }, "/borderline/high").found, /missing/);
});
