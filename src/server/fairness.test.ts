import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { validateInstance } from "../decision/index.js";
import { levelIndex } from "../fairness/index.js";
import { DEMO_XGB, holdoutInstances, loadManifest, startTestServer } from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const url = (path: string) => `${server.url}${path}`;
const post = (path: string, body: unknown) =>
  fetch(url(path), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

interface GroupView {
  group: string;
  decisions: number;
  selected: number;
  selection_rate: number | null;
  outcomes: number;
  confusion: { tn: number; fp: number; fn: number; tp: number };
}
interface AttributeView {
  attribute: string;
  groups: GroupView[];
  selection_rate: { ratio: number | null; difference: number | null };
  criteria: { criterion: string; verdict: string; value: number | null }[];
}
interface FairnessView {
  model: string;
  version: string;
  favourable_label: string;
  by_count: { decisions: number; outcomes: number; attributes: AttributeView[] };
  by_time: { decisions: number; outcomes: number; attributes: AttributeView[] };
  outcomes: { counted: number; unknown_decision: number; repeated: number };
  worst_selection_rate_ratio: number | null;
}

test("decisions with subjects and their outcomes give the counts the test makes; /metrics carries them", async () => {
  const manifest = loadManifest(DEMO_XGB);
  const [age, marital] = manifest.fairness.attributes;
  const cases = holdoutInstances(manifest)
    .filter((c) => validateInstance(manifest, c.features, c.subject, "").instance !== undefined)
    .slice(0, 300);
  const made: { id: string; decision: string; status: string; subject: Record<string, unknown> }[] = [];
  for (let start = 0; start < cases.length; start += 100) {
    const batch = cases.slice(start, start + 100);
    const response = await post("/v1/models/credit-demo/decisions", {
      instances: batch.map((c) => ({ features: c.features, subject: c.subject })),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { decisions: { decision_id: string; decision: string }[] };
    body.decisions.forEach((r, i) => {
      made.push({
        id: r.decision_id,
        decision: r.decision,
        status: batch[i]!.status,
        subject: batch[i]!.subject,
      });
    });
  }
  // Outcomes for the first 120 decisions, and one correction that must not count twice.
  const labelled = made.slice(0, 120);
  for (const m of labelled) {
    const response = await post(`/v1/decisions/${m.id}/outcomes`, { outcome: m.status, source: "test" });
    assert.equal(response.status, 201);
  }
  assert.equal(
    (await post(`/v1/decisions/${made[0]!.id}/outcomes`, { outcome: "bad", source: "test" })).status,
    201,
  );

  const response = await fetch(url("/v1/models/credit-demo/fairness"));
  assert.equal(response.status, 200);
  const view = (await response.json()) as FairnessView;
  assert.equal(view.favourable_label, "good");
  assert.equal(view.by_count.decisions, 300);
  assert.equal(view.by_time.decisions, 300);
  assert.equal(view.by_count.outcomes, 120);
  assert.deepEqual(
    {
      counted: view.outcomes.counted,
      unknown: view.outcomes.unknown_decision,
      repeated: view.outcomes.repeated,
    },
    { counted: 120, unknown: 0, repeated: 1 },
  );
  for (const [attribute, a] of [
    ["Age", age!],
    ["Marital", marital!],
  ] as const) {
    const levels = [...a.levels, "(missing)"];
    const expected = levels.map((group) => ({
      group,
      decisions: 0,
      selected: 0,
      tn: 0,
      fp: 0,
      fn: 0,
      tp: 0,
    }));
    made.forEach((m, i) => {
      const e = expected[levelIndex(a, m.subject[attribute] ?? null)]!;
      e.decisions++;
      const selected = m.decision === "good";
      if (selected) e.selected++;
      if (i < 120) {
        const good = m.status === "good";
        if (good && selected) e.tp++;
        else if (good) e.fn++;
        else if (selected) e.fp++;
        else e.tn++;
      }
    });
    for (const window of [view.by_count, view.by_time]) {
      const seen = window.attributes.find((x) => x.attribute === attribute)!;
      assert.deepEqual(
        seen.groups.map((g) => ({
          group: g.group,
          decisions: g.decisions,
          selected: g.selected,
          ...g.confusion,
        })),
        expected,
      );
      seen.groups.forEach((g, k) => {
        const e = expected[k]!;
        assert.equal(g.selection_rate, e.decisions === 0 ? null : e.selected / e.decisions);
      });
    }
    // Between groups: lowest over highest selection rate among groups of at least 30 decisions.
    const rates = expected.filter((e) => e.decisions >= 30).map((e) => e.selected / e.decisions);
    const seen = view.by_count.attributes.find((x) => x.attribute === attribute)!;
    assert.ok(Math.abs(seen.selection_rate.ratio! - Math.min(...rates) / Math.max(...rates)) < 1e-12);
    const dp = seen.criteria.find((c) => c.criterion === "demographic_parity")!;
    assert.equal(dp.verdict, dp.value! >= 0.8 ? "pass" : "fail");
  }
  const ratios = view.by_count.attributes.map((a) => a.selection_rate.ratio!);
  assert.equal(view.worst_selection_rate_ratio, Math.min(...ratios));
  // The version's route gives the same figures.
  const pinned = (await (
    await fetch(url("/v1/models/credit-demo/versions/1.0.0/fairness"))
  ).json()) as FairnessView;
  assert.deepEqual(pinned.by_count, view.by_count);

  // /metrics: the same selection rates, ratios and verdicts.
  const text = await (await fetch(url("/metrics"))).text();
  const married = view.by_count.attributes[1]!.groups.find((g) => g.group === "married")!;
  const line = text
    .split("\n")
    .find((l) =>
      l.startsWith(
        'warden_fairness_selection_rate{model="credit-demo",version="1.0.0",attribute="Marital",group="married",window="count"}',
      ),
    );
  assert.ok(line, text.slice(0, 2000));
  assert.ok(Math.abs(Number(line.split(" ").at(-1)) - married.selection_rate!) < 1e-12);
  assert.match(
    text,
    /warden_fairness_disparity_ratio\{model="credit-demo",version="1.0.0",attribute="Age",metric="selection_rate",window="count"\} [0-9.]+/,
  );
  assert.match(
    text,
    /warden_fairness_verdict\{model="credit-demo",version="1.0.0",attribute="Age",criterion="demographic_parity"\} [01]/,
  );
  const worst = text
    .split("\n")
    .find((l) => l.startsWith('warden_fairness_worst_selection_rate_ratio{model="credit-demo"'));
  assert.ok(worst);
  assert.ok(Math.abs(Number(worst.split(" ").at(-1)) - view.worst_selection_rate_ratio!) < 1e-12);
});

test("an unknown model or version is a 404", async () => {
  assert.equal((await fetch(url("/v1/models/nope/fairness"))).status, 404);
  assert.equal((await fetch(url("/v1/models/credit-demo/versions/9.9.9/fairness"))).status, 404);
});
