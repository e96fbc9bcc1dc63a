import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { WardenError } from "../errors/index.js";
import { canonicalJson, type LedgerEntry, REVIEW_MARK } from "../ledger/index.js";
import { createModelRegistry } from "../registry/index.js";
import { DEMO_XGB, demoCopy, holdoutInstances, loadManifest, tempDir } from "../testing/index.js";
import { createDecisionPipeline, isModelFailure } from "./pipeline.js";

/** The paths of objects anywhere in `value` whose keys are not in code-unit order. */
function unsortedObjects(value: unknown, path = "entry"): string[] {
  if (typeof value !== "object" || value === null) return [];
  if (Array.isArray(value)) return value.flatMap((item, i) => unsortedObjects(item, `${path}[${i}]`));
  const keys = Object.keys(value);
  const here = keys.some((key, i) => i > 0 && !(keys[i - 1]! < key)) ? [`${path}: ${keys.join(", ")}`] : [];
  return [
    ...here,
    ...keys.flatMap((key) => unsortedObjects((value as Record<string, unknown>)[key], `${path}.${key}`)),
  ];
}

test("a decision's ledger entry has its keys in order at every level, so the ledger writes it with JSON.stringify", async () => {
  const dir = tempDir("pipeline-keys");
  const registry = createModelRegistry();
  try {
    // Explained (risk tier high) and with the subject in clear: the entry holds every part a decision can have
    // but the sealed subject (which the server's keys seal), with labels whose manifest order is not sorted.
    const path = demoCopy(dir.path, {
      version: "1.0.0",
      policy: { subject_storage: "clear", explanations: { reference: "holdout.csv" } },
    });
    copyFileSync(join(dirname(DEMO_XGB), "holdout.csv"), join(dirname(path), "holdout.csv"));
    const manifest = loadManifest(path);
    assert.deepEqual(manifest.output.labels, ["good", "bad"], "labels out of code-unit order");
    await registry.load(path);
    const written: LedgerEntry[] = [];
    const pipeline = createDecisionPipeline(registry, {
      write: async (entry) => {
        written.push(entry);
      },
    });
    const instances = holdoutInstances(manifest)
      .slice(0, 6)
      .map((row, i) => ({
        features: row.features,
        subject: row.subject,
        id: `case-${i}`,
        subject_id: `s${i}`,
      }));
    const results = await pipeline.decide({
      model: "credit-demo",
      instances,
      route: "decisions",
      requestId: "req-1",
      receivedAt: performance.now(),
      fieldPrefix: (i) => `instances[${i}].`,
    });
    assert.equal(results.length, 6);
    assert.equal(written.length, 6);
    for (const entry of written) {
      assert.ok((entry.body as { explanation?: unknown }).explanation, "explained");
      assert.deepEqual(unsortedObjects(entry.body), []);
      // Not held: the review queue's catch-up must not take it for a source.
      assert.equal(canonicalJson(entry).includes(REVIEW_MARK), false);
    }
  } finally {
    await registry.close();
    dir.remove();
  }
});

test("when one write of a request fails, its decisions that were journaled still reach the review queue", async () => {
  const dir = tempDir("pipeline-held");
  const registry = createModelRegistry();
  try {
    const path = demoCopy(dir.path, { version: "1.0.0", policy: { subject_storage: "clear" } });
    const manifest = loadManifest(path);
    await registry.load(path);
    const offered: string[] = [];
    const written: LedgerEntry[] = [];
    const pipeline = createDecisionPipeline(
      registry,
      {
        // The third decision's write fails (as a second journal flush of a large request could).
        write: async (entry) => {
          if (entry.body.client_id === "case-2") throw new Error("disk full");
          written.push(entry);
        },
      },
      {},
      undefined,
      undefined,
      {
        review: {
          route: () => ["all"],
          held: (entries) => {
            for (const { entry } of entries) offered.push(String(entry.body.client_id));
          },
        },
      },
    );
    const instances = holdoutInstances(manifest)
      .slice(0, 4)
      .map((row, i) => ({ features: row.features, subject: row.subject, id: `case-${i}` }));
    await assert.rejects(
      pipeline.decide({
        model: "credit-demo",
        instances,
        route: "decisions",
        requestId: "req-2",
        receivedAt: performance.now(),
        fieldPrefix: (i) => `instances[${i}].`,
      }),
      /disk full/,
    );
    assert.deepEqual(offered, ["case-0", "case-1", "case-3"]);
    // A held decision's entry carries the mark the review queue's catch-up picks its sources by, in SQL.
    assert.equal(written.length, 3);
    for (const entry of written) assert.ok(canonicalJson(entry).includes(REVIEW_MARK));
  } finally {
    await registry.close();
    dir.remove();
  }
});

test("the circuit breaker counts a model that does not answer, not back-pressure", () => {
  for (const code of [
    "WARDEN_ERR_INFERENCE_FAILED",
    "WARDEN_ERR_TIMEOUT",
    "WARDEN_ERR_MODEL_NOT_READY",
  ] as const) {
    assert.equal(isModelFailure(new WardenError(code)), true, code);
  }
  for (const code of [
    "WARDEN_ERR_QUEUE_TIMEOUT",
    "WARDEN_ERR_QUEUE_FULL",
    "WARDEN_ERR_SHUTTING_DOWN",
  ] as const) {
    assert.equal(isModelFailure(new WardenError(code)), false, code);
  }
  assert.equal(isModelFailure(new Error("anything else")), true);
});
