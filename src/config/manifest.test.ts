import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { WardenError } from "../errors/index.js";
import { loadManifest, parseServerConfig } from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "warden-manifest-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const artifact = join(dir, "model.json");
writeFileSync(artifact, '{"not":"really a model"}');
const sha = createHash("sha256").update('{"not":"really a model"}').digest("hex");

const base = `name: m
version: "1"
owner: team
intended_use: testing
risk_tier: high
task: binary
artifact: { path: model.json, format: xgboost-json, sha256: ${sha} }
features:
  - { name: income, type: number, min: 0, max: 10 }
  - { name: home, type: category, categories: [rent, own], nullable: true }
  - { name: age, type: integer, sensitive: true }
output: { labels: [good, bad], positive_label: bad, threshold: 0.4 }
`;

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function expectInvalid(text: string, code = "WARDEN_ERR_MANIFEST_INVALID"): WardenError {
  const path = write(`bad-${Math.random()}.yaml`, text);
  try {
    loadManifest(path);
  } catch (error) {
    assert.ok(error instanceof WardenError, String(error));
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail("expected the manifest to be refused");
}

test("a valid manifest loads frozen, with defaults and derived fields", () => {
  const m = loadManifest(write("ok.yaml", base));
  assert.equal(m.name, "m");
  assert.equal(m.artifact.absolutePath, artifact);
  assert.deepEqual(
    m.modelFeatures.map((f) => f.name),
    ["income", "home"],
  );
  assert.deepEqual(
    m.sensitiveFeatures.map((f) => f.name),
    ["age"],
  );
  assert.equal(m.output.positiveIndex, 1);
  assert.equal(m.output.threshold, 0.4);
  assert.equal(m.batching.max_batch_size, 64);
  assert.equal(m.runtime.device, "cpu");
  assert.ok(Object.isFrozen(m) && Object.isFrozen(m.features) && Object.isFrozen(m.features[0]));
  assert.match(m.manifestSha256, /^[0-9a-f]{64}$/);
});

test("every problem is reported at once with file, path, expected and found", () => {
  const error = expectInvalid(
    base
      .replace("risk_tier: high", "risk_tier: extreme")
      .replace("threshold: 0.4", "threshold: 1.5")
      .replace("min: 0, max: 10", "min: 0, max: 10, colour: red"),
  );
  const fields = error.details.map((d) => d.field.split("#")[1]);
  assert.ok(fields.includes("/risk_tier"), fields.join());
  assert.ok(fields.includes("/output/threshold"), fields.join());
  assert.ok(fields.includes("/features/0/colour"), fields.join());
  const tier = error.details.find((d) => d.field.endsWith("/risk_tier"))!;
  assert.match(tier.expected, /prohibited, high, limited, minimal/);
  assert.equal(tier.found, '"extreme" (string)');
  assert.ok(error.details.every((d) => d.field.startsWith(dir)));
  assert.match(error.message, /3 problems/);
});

test("semantic checks: categories, ranges, labels, duplicate names, preferred batch sizes", () => {
  const error = expectInvalid(
    `${base
      .replace("categories: [rent, own], ", "")
      .replace("min: 0, max: 10", "min: 10, max: 0")
      .replace(
        "positive_label: bad",
        "positive_label: ugly",
      )}batching: { max_batch_size: 8, preferred_batch_sizes: [16] }\n`,
  );
  const text = error.details.map((d) => `${d.field.split("#")[1]} ${d.expected}`).join("\n");
  assert.match(text, /\/features\/1\/categories the list of allowed categories/);
  assert.match(text, /\/features\/0\/max a number >= min/);
  assert.match(text, /\/output\/positive_label one of the labels/);
  assert.match(text, /\/batching\/preferred_batch_sizes\/0 a size <= max_batch_size/);
  const dup = expectInvalid(base.replace("name: home", "name: income"));
  assert.match(dup.details[0]!.expected, /unique feature name/);
  // A timeout no longer than the queue delay would fail every request that arrives alone.
  const timeout = expectInvalid(`${base}batching: { max_queue_delay_us: 50000, timeout_ms: 50 }\n`);
  assert.equal(timeout.details.length, 1);
  assert.match(timeout.details[0]!.field, /#\/batching\/timeout_ms$/);
  assert.match(timeout.details[0]!.expected, /more than max_queue_delay_us \(50000 µs = 50 ms\)/);
});

test("a prohibited model refuses to load", () => {
  const error = expectInvalid(
    base.replace("risk_tier: high", "risk_tier: prohibited"),
    "WARDEN_ERR_MODEL_PROHIBITED",
  );
  assert.match(error.message, /prohibited/);
});

test("the artifact's sha256 is checked at load", () => {
  const error = expectInvalid(base.replace(sha, "a".repeat(64)), "WARDEN_ERR_ARTIFACT_HASH_MISMATCH");
  assert.match(error.message, new RegExp(sha));
  expectInvalid(base.replace("path: model.json", "path: missing.json"), "WARDEN_ERR_ARTIFACT_INVALID");
});

test("broken YAML and non-mappings are reported with position", () => {
  const error = expectInvalid("name: [unclosed\n");
  assert.match(error.details[0]!.field, /:\d+:\d+$/);
  expectInvalid("- just\n- a list\n");
  assert.throws(() => loadManifest(join(dir, "nope.yaml")), /cannot read the manifest/);
});

test("server configuration is validated with defaults and frozen", () => {
  const config = parseServerConfig({ port: 9000 }, "test", "/srv");
  assert.equal(config.port, 9000);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.data_dir, "/srv/warden-data");
  assert.ok(Object.isFrozen(config));
  assert.throws(
    () => parseServerConfig({ port: 70000, colour: 1 }, "warden.yaml"),
    (e: WardenError) => e.code === "WARDEN_ERR_CONFIG_INVALID" && e.details.length === 2,
  );
});

test('a binary model without labels has classes "0" and "1"; positive_label must be one of them', () => {
  const unlabelled = base.replace(
    "output: { labels: [good, bad], positive_label: bad, threshold: 0.4 }",
    "output: {}",
  );
  const m = loadManifest(write("unlabelled.yaml", unlabelled));
  assert.deepEqual(m.output.labels, ["0", "1"]);
  assert.equal(m.output.positiveIndex, 1);
  const zero = loadManifest(
    write("zero.yaml", unlabelled.replace("output: {}", 'output: { positive_label: "0" }')),
  );
  assert.equal(zero.output.positiveIndex, 0);
  const error = expectInvalid(unlabelled.replace("output: {}", "output: { positive_label: yes }"));
  assert.match(error.details[0]!.fix!, /classes are "0" and "1"/);
});

test("a manifest whose reference rows are not a regular file is refused at load (reading a pipe or a device would never end)", {
  skip: process.platform !== "linux" ? "named pipes and /dev/zero are checked on Linux" : false,
}, async (t) => {
  const { demoCopy } = await import("../testing/index.js");
  const { execFileSync } = await import("node:child_process");
  const dir = mkdtempSync(join(tmpdir(), "warden-reference-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, "rows.csv");
  execFileSync("mkfifo", [fifo]);
  for (const [version, reference, kind] of [
    ["1.0.1", fifo, /named pipe, not a regular file/],
    ["1.0.2", "/dev/zero", /character device, not a regular file/],
  ] as const) {
    const path = demoCopy(dir, { version, policy: { explanations: { reference } } });
    assert.throws(
      () => loadManifest(path),
      (error: unknown) =>
        error instanceof WardenError &&
        error.code === "WARDEN_ERR_MANIFEST_INVALID" &&
        /\/policy\/explanations\/reference/.test(error.message) &&
        kind.test(error.message),
    );
  }
});
