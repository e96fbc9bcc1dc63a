import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { loadManifest } from "../config/index.js";
import { validateInstance } from "../decision/index.js";
import { DEMO_XGB, holdoutInstances } from "../testing/index.js";
import { decodeRowTasks, encodeRowTasks, type RowTask, type WireTasks } from "./row-tasks.js";

/** What a worker receives: the wire form after a real trip through a message port. */
function overThePort(wire: WireTasks): WireTasks {
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(wire);
    return receiveMessageOnPort(port2)!.message as WireTasks;
  } finally {
    port1.close();
  }
}

test("row tasks reach the worker as sent: every kind, key list and value type", () => {
  const time = "2026-11-29T04:00:00.000Z";
  const tasks: (RowTask | null)[] = [
    null,
    { seal: { decisionId: "d1", time, subject: { Age: 41, Marital: "married" } } },
    { explain: { values: { a: 1.5, b: null, c: true, d: "x" }, form: "ledger" } },
    {
      seal: { decisionId: "d3", time, subject: { Marital: null } },
      explain: { values: { a: -0, b: 2, c: false, d: "" } },
    },
    null,
    { seal: { decisionId: "d5", time, subject: {} }, explain: { values: {}, form: "record" } },
    { explain: { values: { d: "é 中 🙂", c: true, b: 1e-300, a: Number.MAX_VALUE }, form: "ledger" } },
  ];
  const decoded = decodeRowTasks(overThePort(encodeRowTasks(tasks)));
  // `form: "record"` is the default, and travels as its absence.
  const expected = tasks.map((t) =>
    t?.explain?.form === "record" ? { ...t, explain: { values: t.explain.values } } : t,
  );
  assert.deepEqual(decoded, expected);
  // Key order survives: commitments follow the subject's order, canonical JSON the values'.
  assert.deepEqual(Object.keys(decoded[6]!.explain!.values), ["d", "c", "b", "a"]);
  assert.deepEqual(Object.keys(decoded[1]!.seal!.subject), ["Age", "Marital"]);
  assert.ok(Object.is(decoded[3]!.explain!.values.a, -0));
});

test("a batch of demo decisions sends each key list once, and decodes to the same tasks", () => {
  const manifest = loadManifest(DEMO_XGB);
  const valid = holdoutInstances(manifest)
    .slice(0, 32)
    .map((row) => validateInstance(manifest, row.features, row.subject, "").instance!);
  const tasks: RowTask[] = valid.map((instance, i) => ({
    seal: { decisionId: `id-${i}`, time: "2026-11-29T04:00:00.000Z", subject: instance.subject },
    explain: { values: instance.inputs, form: "ledger" },
  }));
  const wire = encodeRowTasks(tasks);
  // One list for the model's features, one per distinct set of subject attributes sent.
  const subjectLists = new Set(valid.map((v) => Object.keys(v.subject).join(",")));
  assert.equal(wire.keys.length, 1 + subjectLists.size);
  assert.deepEqual(decodeRowTasks(overThePort(wire)), tasks);
});

test("wire tasks that do not add up are refused, not misread", () => {
  const wire = encodeRowTasks([{ seal: { decisionId: "d", time: "t", subject: { Age: 30 } } }]);
  assert.throws(
    () => decodeRowTasks({ ...wire, cells: wire.cells.slice(0, -1) }),
    (error: Error & { code?: string }) =>
      error.code === "WARDEN_ERR_INTERNAL" && /end early/.test(error.message),
  );
  assert.throws(
    () => decodeRowTasks({ ...wire, cells: [...wire.cells, 1] }),
    (error: Error & { code?: string }) => error.code === "WARDEN_ERR_INTERNAL" && /extra/.test(error.message),
  );
  assert.throws(
    () => decodeRowTasks({ ...wire, keys: [] }),
    (error: Error & { code?: string }) =>
      error.code === "WARDEN_ERR_INTERNAL" && /key list/.test(error.message),
  );
});
