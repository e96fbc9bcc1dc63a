import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { describeValue, ERRORS, WardenError } from "./index.js";

const docs = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");

test("every registered error code is documented in docs/errors.md, and nothing else is", () => {
  const documented = [...docs.matchAll(/^\| `(WARDEN_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), Object.keys(ERRORS).sort());
  assert.equal(new Set(documented).size, documented.length, "a code is documented twice");
});

test("documented HTTP statuses agree with the registry", () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    const row = docs.match(new RegExp(`^\\| \`${code}\` \\| (\\S+) \\|`, "m"));
    assert.ok(row, code);
    if (row[1] !== "—") assert.equal(Number(row[1]), spec.status, code);
  }
});

test("codes are well-formed and statuses are HTTP error statuses", () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    assert.match(code, /^WARDEN_ERR_[A-Z_]+$/);
    assert.ok(spec.status >= 400 && spec.status < 600, code);
  }
});

test("WardenError carries status and details into its JSON body", () => {
  const error = new WardenError("WARDEN_ERR_VALIDATION", "bad", {
    details: [{ field: "features.Age", expected: "an integer", found: "1.5 (number)" }],
  });
  assert.equal(error.status, 400);
  assert.deepEqual(error.toJSON(), {
    error: "bad",
    code: "WARDEN_ERR_VALIDATION",
    details: [{ field: "features.Age", expected: "an integer", found: "1.5 (number)" }],
  });
  assert.ok(Object.isFrozen(error.details));
});

test("describeValue names types and special numbers", () => {
  assert.equal(describeValue(undefined), "missing");
  assert.equal(describeValue(Number.NaN), "NaN");
  assert.equal(describeValue(Number.NEGATIVE_INFINITY), "-Infinity");
  assert.equal(describeValue("x"), '"x" (string)');
  assert.equal(describeValue([1, 2]), "an array of 2");
  assert.match(describeValue("y".repeat(200)), /\.\.\."/);
});
