import assert from "node:assert/strict";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { loadManifest } from "../config/index.js";
import { validateInstance } from "../decision/index.js";
import { DEMO_XGB, HOLDOUT_CSV, holdoutInstances, startTestServer, tempDir } from "../testing/index.js";
import { main } from "./index.js";
import type { LedgerMonitorReport } from "./monitor-report.js";

const manifest = loadManifest(DEMO_XGB);
const scratch = tempDir("monitor-report");
let server: Awaited<ReturnType<typeof startTestServer>>;

/** Answers of the first range: score and the truth from the holdout's Status column. */
const labelled: { score: number; decision: string; truth: string }[] = [];
const times: number[] = [];
let firstCount = 0;

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

async function decide(instances: { features: unknown; subject: unknown }[]) {
  const response = await fetch(`${server.url}/v1/models/credit-demo/decisions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ instances }),
  });
  assert.equal(response.status, 200);
  return (
    (await response.json()) as { decisions: { decision_id: string; score: number; decision: string }[] }
  ).decisions;
}

/** A moment between two ranges: the clock moves past it before and after. */
async function mark(): Promise<number> {
  await sleep(5);
  const now = Date.now();
  await sleep(5);
  return now;
}

before(async () => {
  server = await startTestServer();
  const built = await run(
    "profile",
    "build",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--data-dir",
    server.dataDir,
    "--seed",
    "5",
  );
  assert.equal(built.code, 0, built.stderr);
  const cases = holdoutInstances(manifest)
    .filter((row) => validateInstance(manifest, row.features, row.subject, "").instance !== undefined)
    // Spread over the file (it is not in random order): a sample of the profile's population.
    .filter((_, i) => i % 7 === 0);
  firstCount = cases.length;
  times.push(await mark());
  const answers = await decide(cases.map((c) => ({ features: c.features, subject: c.subject })));
  // Outcomes for the first range: the holdout's own labels, for every other decision.
  for (const [i, answer] of answers.entries()) {
    if (i % 2 !== 0) continue;
    const truth = cases[i]!.status;
    labelled.push({ score: answer.score, decision: answer.decision, truth });
    const recorded = await fetch(`${server.url}/v1/decisions/${answer.decision_id}/outcomes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ outcome: truth, source: "collections-system" }),
    });
    assert.equal(recorded.status, 201);
  }
  times.push(await mark());
  // The second range: loan amounts 2.5 times the holdout's.
  await decide(
    cases.map((c) => ({
      features: { ...c.features, Amount: Math.min(100_000, (c.features.Amount as number) * 2.5) },
      subject: c.subject,
    })),
  );
  times.push(await mark());
  // Closing commits every record; the folder stays for the reports.
  await server.close();
});
after(() => {
  scratch.remove();
  server.stop().catch(() => undefined);
});

const iso = (ms: number) => new Date(ms).toISOString();

async function report(from: number, to: number): Promise<LedgerMonitorReport> {
  const result = await run(
    "monitor",
    "report",
    DEMO_XGB,
    "--data-dir",
    server.dataDir,
    "--from",
    iso(from),
    "--to",
    iso(to),
    "--format",
    "json",
  );
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as LedgerMonitorReport;
}

test("warden monitor report: the first range is the profile's population, with its realised performance", async () => {
  const r = await report(times[0]!, times[1]!);
  assert.equal(r.model, "credit-demo");
  assert.equal(r.version, "1.0.0");
  assert.equal(r.from, iso(times[0]!));
  assert.equal(r.window, firstCount);
  assert.ok(r.profile !== null);
  assert.equal(r.dataset?.drifted, false);
  assert.equal(r.features.find((f) => f.name === "Amount")?.drift?.drifted, false);

  // Realised figures, counted here from the answers and the labels sent.
  const p = r.performance!;
  assert.equal(p.labelled, labelled.length);
  assert.equal(p.decisions, r.window);
  const positive = (label: string) => label === "bad";
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (const l of labelled) {
    const predicted = positive(l.decision);
    if (predicted && positive(l.truth)) tp++;
    else if (predicted) fp++;
    else if (positive(l.truth)) fn++;
    else tn++;
  }
  assert.deepEqual(p.realised!.confusion, { tp, fp, tn, fn });
  assert.equal(p.realised!.accuracy, (tp + tn) / labelled.length);
  assert.equal(p.realised!.precision, tp / (tp + fp));
  assert.equal(p.realised!.recall, tp / (tp + fn));
  // ROC AUC by pair counting: the share of (positive, negative) pairs the score orders right, ties halved.
  let right = 0;
  let pairs = 0;
  for (const a of labelled.filter((l) => positive(l.truth)))
    for (const b of labelled.filter((l) => !positive(l.truth))) {
      pairs++;
      right += a.score > b.score ? 1 : a.score === b.score ? 0.5 : 0;
    }
  assert.ok(Math.abs(p.realised!.roc_auc! - right / pairs) < 1e-12);
  // The label-free estimate over the labelled decisions: expected counts from the scores alone.
  const expectedTp = labelled.reduce((s, l) => s + (l.score >= 0.5 ? l.score : 0), 0);
  const expectedTn = labelled.reduce((s, l) => s + (l.score < 0.5 ? 1 - l.score : 0), 0);
  assert.ok(
    Math.abs(p.estimated_on_labelled!.accuracy! - (expectedTp + expectedTn) / labelled.length) < 1e-12,
  );
  assert.ok(
    Math.abs(p.estimate_error!.accuracy! - (p.realised!.accuracy! - p.estimated_on_labelled!.accuracy!)) <
      1e-15,
  );
  assert.equal(p.estimated!.count, r.window);
});

test("warden monitor report: the shifted range drifts in Amount and has no outcomes yet", async () => {
  const r = await report(times[1]!, times[2]!);
  assert.equal(r.dataset?.drifted, true);
  assert.equal(r.features.find((f) => f.name === "Amount")?.drift?.drifted, true);
  assert.equal(
    r.features.find((f) => f.name === "Age"),
    undefined,
    "sensitive attributes are not features",
  );
  assert.equal(r.performance!.labelled, 0);
  assert.equal(r.performance!.realised, null);
  assert.ok(r.performance!.estimated!.count > 0);
});

test("warden monitor report renders text; bad flags are usage errors, a bad profile a failure", async () => {
  const text = await run("monitor", "report", DEMO_XGB, "--data-dir", server.dataDir, "--to", iso(times[2]!));
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /credit-demo 1\.0\.0: \d+ decisions from the start to /);
  assert.match(text.stdout, /Amount .* ks .* yes/);
  assert.match(text.stdout, /realised \(labelled\)/);

  const reversed = await run(
    "monitor",
    "report",
    DEMO_XGB,
    "--data-dir",
    server.dataDir,
    "--from",
    iso(times[2]!),
    "--to",
    iso(times[0]!),
  );
  assert.equal(reversed.code, 2);
  assert.match(reversed.stderr, /--from .* must be earlier than --to/);
  const badTime = await run("monitor", "report", DEMO_XGB, "--from", "yesterday");
  assert.equal(badTime.code, 2);
  assert.match(badTime.stderr, /--from must be/);
  const badFormat = await run("monitor", "report", DEMO_XGB, "--format", "xml");
  assert.equal(badFormat.code, 2);

  const notProfile = join(scratch.path, "p.json");
  writeFileSync(notProfile, '{"kind": "something else"}');
  const bad = await run("monitor", "report", DEMO_XGB, "--data-dir", server.dataDir, "--profile", notProfile);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /is not a reference profile/);
  // Without a profile the rates are still reported, and a note says why drift is left out.
  const stored = join(server.dataDir, "profiles", "credit-demo", "1.0.0.json");
  const aside = join(scratch.path, "aside.json");
  renameSync(stored, aside);
  try {
    const bare = await run("monitor", "report", DEMO_XGB, "--data-dir", server.dataDir, "--format", "json");
    assert.equal(bare.code, 0, bare.stderr);
    assert.match(bare.stderr, /no reference profile at .*1\.0\.0\.json: drift and anomalies are left out/);
    const r = JSON.parse(bare.stdout) as LedgerMonitorReport;
    assert.equal(r.profile, null);
    assert.equal(r.dataset, null);
    assert.equal(r.window, firstCount * 2);
    assert.ok(r.features.every((f) => f.drift === undefined));
  } finally {
    renameSync(aside, stored);
  }
});
