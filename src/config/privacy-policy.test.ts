import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { WardenError } from "../errors/index.js";
import { DEMO_XGB } from "../testing/index.js";
import { HIGH_RISK_MIN_RETENTION_DAYS, PRIVACY_DEFAULTS, parseManifest } from "./index.js";

const demo = parse(readFileSync(DEMO_XGB, "utf8")) as Record<string, unknown>;
const manifest = (risk_tier: string, policy: Record<string, unknown>) =>
  parseManifest({ ...demo, risk_tier, policy }, "/models/m/manifest.yaml");

function problems(risk_tier: string, policy: Record<string, unknown>): WardenError {
  try {
    manifest(risk_tier, policy);
  } catch (error) {
    assert.ok(error instanceof WardenError);
    assert.equal(error.code, "WARDEN_ERR_MANIFEST_INVALID");
    return error;
  }
  assert.fail("expected the manifest to be refused");
}

test("defaults per risk tier: high keeps 183 days encrypted; limited and minimal clear", () => {
  assert.deepEqual(manifest("high", {}).privacy, { retentionDays: 183, subjectStorage: "encrypted" });
  assert.deepEqual(manifest("limited", {}).privacy, { retentionDays: 90, subjectStorage: "clear" });
  assert.deepEqual(manifest("minimal", {}).privacy, { retentionDays: 30, subjectStorage: "clear" });
  assert.equal(PRIVACY_DEFAULTS.high.retentionDays, HIGH_RISK_MIN_RETENTION_DAYS);
  assert.deepEqual(manifest("high", { retention_days: 400, subject_storage: "pseudonymised" }).privacy, {
    retentionDays: 400,
    subjectStorage: "pseudonymised",
  });
  assert.deepEqual(manifest("minimal", { retention_days: 0 }).privacy, {
    retentionDays: 0,
    subjectStorage: "clear",
  });
  // Other policy sections do not change the privacy defaults.
  assert.equal(
    manifest("high", { fairness: { attributes: { Marital: {} } } }).privacy.subjectStorage,
    "encrypted",
  );
});

test("a high-risk model may not keep its records less than 183 days: the error names the field, the bound and the fix", () => {
  const error = problems("high", { retention_days: 30 });
  const detail = error.details.find((d) => d.field.endsWith("#/policy/retention_days"));
  assert.ok(detail, JSON.stringify(error.details));
  assert.match(detail.expected, /from 183 to 36500.*high-risk/);
  assert.equal(detail.found, "30 (number)");
  assert.match(detail.fix ?? "", /183 or more/);
  assert.match(error.message, /policy\/retention_days/);
});

test("retention_days must be a whole number of days in range; subject_storage one of the three", () => {
  for (const bad of [-1, 1.5, "183", 40_000, null]) {
    const error = problems("minimal", { retention_days: bad });
    assert.ok(
      error.details.some((d) => d.field.endsWith("#/policy/retention_days")),
      String(bad),
    );
  }
  const error = problems("limited", { subject_storage: "hashed" });
  const detail = error.details.find((d) => d.field.endsWith("#/policy/subject_storage"));
  assert.ok(detail);
  assert.equal(detail.expected, "one of clear, pseudonymised, encrypted");
  assert.equal(detail.found, '"hashed" (string)');
});
