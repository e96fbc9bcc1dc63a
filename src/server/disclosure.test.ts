import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loadManifest, roundTo } from "../config/index.js";
import { DEMO_XGB, demoCopy, holdoutInstances, startTestServer, tempDir } from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
const dir = tempDir("disclosure");
let server: Server;
const cases = holdoutInstances(loadManifest(DEMO_XGB)).slice(0, 6);

before(async () => {
  const models = [
    demoCopy(dir.path, { name: "credit-full", version: "1.0.0" }),
    demoCopy(dir.path, {
      name: "credit-rounded",
      version: "1.0.0",
      policy: { disclosure: { scores: "rounded", decimals: 1 } },
    }),
    demoCopy(dir.path, {
      name: "credit-label",
      version: "1.0.0",
      policy: { disclosure: { scores: "label" } },
    }),
  ];
  server = await startTestServer({ models });
});
after(async () => {
  await server.stop();
  dir.remove();
});

async function decide(model: string) {
  const response = await fetch(`${server.url}/v1/models/${model}/decisions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ instances: cases.map((c) => ({ features: c.features, subject: c.subject })) }),
  });
  assert.equal(response.status, 200);
  return (
    (await response.json()) as {
      decisions: {
        decision_id: string;
        score: number | null;
        probabilities?: Record<string, number>;
        decision: string;
      }[];
    }
  ).decisions;
}

test("policy.disclosure: answers round or leave out the scores; the ledger keeps the exact values", async () => {
  const full = await decide("credit-full");
  const rounded = await decide("credit-rounded");
  const label = await decide("credit-label");
  full.forEach((f, i) => {
    const r = rounded[i]!;
    assert.equal(r.score, roundTo(f.score!, 1));
    assert.equal(r.probabilities!.bad, roundTo(f.probabilities!.bad!, 1));
    assert.equal(r.decision, f.decision, "the decision is made on the exact score");
    const l = label[i]!;
    assert.equal(l.score, null);
    assert.equal(l.probabilities, undefined);
    assert.equal(l.decision, f.decision);
  });
  await server.writer.drain();
  const recorded = await server.ledger.get(label[0]!.decision_id);
  const outputs = recorded!.body.outputs as { score: number; probabilities: Record<string, number> };
  assert.equal(outputs.score, full[0]!.score);
  assert.equal(outputs.probabilities.bad, full[0]!.probabilities!.bad);
  // The Open Inference Protocol route sends no score tensors for a label-only model.
  const infer = (extra: Record<string, unknown> = {}) =>
    fetch(`${server.url}/v2/models/credit-label/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        inputs: Object.entries(cases[0]!.features).map(([name, value]) => ({
          name,
          shape: [1],
          datatype: typeof value === "number" ? "FP64" : typeof value === "boolean" ? "BOOL" : "BYTES",
          data: [value],
        })),
        ...extra,
      }),
    });
  const oip = await infer();
  const answer = (await oip.json()) as { outputs?: { name: string }[] };
  assert.equal(oip.status, 200, JSON.stringify(answer));
  assert.deepEqual(answer.outputs!.map((o) => o.name).sort(), ["decision", "decision_id"]);
  // Its metadata promises no score tensors, and asking for one is refused, saying why.
  const metadata = (await (await fetch(`${server.url}/v2/models/credit-label`)).json()) as {
    outputs: { name: string }[];
  };
  assert.deepEqual(metadata.outputs.map((o) => o.name).sort(), ["decision", "decision_id"]);
  const asked = await infer({ outputs: [{ name: "score" }] });
  assert.equal(asked.status, 400);
  const refusal = (await asked.json()) as { details: { field: string; fix?: string }[] };
  assert.equal(refusal.details[0]!.field, "outputs[0].name");
  assert.match(refusal.details[0]!.fix ?? "", /discloses labels only/);
});

test("policy.disclosure is validated", async () => {
  const { parseManifest } = await import("../config/index.js");
  const base = loadManifest(DEMO_XGB).source as Record<string, unknown>;
  const bad = (disclosure: unknown) => () =>
    parseManifest({ ...base, policy: { ...(base.policy as object), disclosure } }, "m.yaml");
  assert.throws(bad({ scores: "blurred" }), /policy\/disclosure\/scores/);
  assert.throws(bad({ scores: "full", decimals: 2 }), /decimals only with scores: rounded/);
  assert.throws(bad({ scores: "rounded", decimals: 9 }), /policy\/disclosure\/decimals/);
});
