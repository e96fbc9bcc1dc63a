import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { loadManifest, type Manifest } from "../config/index.js";
import { validateInstance } from "../decision/index.js";
import {
  DEMO_XGB,
  demoCopy,
  HOLDOUT_CSV,
  holdoutInstances,
  startTestServer,
  tempDir,
} from "../testing/index.js";
import type { FairnessAuditReport, LedgerAuditData } from "./audit-fairness.js";
import { main } from "./index.js";

const scratch = tempDir("audit-ledger");
const FAIRNESS = {
  attributes: { Age: { buckets: [25, 35, 50] }, Marital: {} },
  reference: "largest",
  min_group_size: 30,
  label_column: "Status",
  thresholds: {
    selection_rate_ratio: 0.8,
    equal_opportunity_difference: 0.1,
    equalized_odds_difference: 0.1,
  },
  alpha: 0.05,
  bootstrap: { resamples: 200, seed: 0 },
};
const CLEAR = demoCopy(scratch.path, {
  name: "credit-clear",
  version: "1.0.0",
  riskTier: "limited",
  // Borderline scores are held for review: a reviewer's final decision labels them too.
  policy: { subject_storage: "clear", fairness: FAIRNESS, review: { borderline: { low: 0.35, high: 0.65 } } },
});
const manifests: Record<string, Manifest> = {
  "credit-demo": loadManifest(DEMO_XGB),
  "credit-clear": loadManifest(CLEAR),
};

let server: Awaited<ReturnType<typeof startTestServer>>;

/** What the test sent and was answered, per model: the first range's decisions, and the labels sent. */
interface Sent {
  id: string;
  subject: Record<string, unknown>;
  decision: string;
  label?: string;
}
const first: Record<string, Sent[]> = { "credit-demo": [], "credit-clear": [] };
let secondCount = 0;
let heldCount = 0;
const times: number[] = [];
/** Protected decisions whose vault row the test purges. */
const purged = new Set<string>();

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

async function post(path: string, body: unknown, status: number, actor?: string): Promise<unknown> {
  const response = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: {
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...(actor !== undefined ? { "x-warden-actor": actor } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  assert.equal(response.status, status, await response.clone().text());
  return response.json();
}

async function decide(model: string, instances: { features: unknown; subject: unknown }[]) {
  const answer = (await post(`/v1/models/${model}/decisions`, { instances }, 200)) as {
    decisions: { decision_id: string; decision: string | null; status?: string }[];
  };
  return answer.decisions;
}

/** The model's decision as the ledger records it (a held decision's answer has none yet). */
async function recordedDecision(id: string): Promise<string> {
  const response = await fetch(`${server.url}/v1/decisions/${id}`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { decision: string }).decision;
}

/** Claim and resolve a held decision's review item with `decision`. */
async function resolveReview(decisionId: string, decision: string): Promise<void> {
  const list = await fetch(`${server.url}/v1/review/items?model=credit-clear&status=pending&limit=500`);
  const items = ((await list.json()) as { items: { item_id: string; decision_id: string }[] }).items;
  const item = items.find((i) => i.decision_id === decisionId);
  assert.ok(item, `decision ${decisionId} is in the review queue`);
  await post(`/v1/review/items/${item.item_id}/claim`, undefined, 200, "alice");
  await post(`/v1/review/items/${item.item_id}/resolve`, { decision, reason_code: "checked" }, 200, "alice");
}

async function mark(): Promise<number> {
  await sleep(5);
  const now = Date.now();
  await sleep(5);
  return now;
}

const manifest = manifests["credit-demo"]!;
const cases = holdoutInstances(manifest)
  .filter((row) => validateInstance(manifest, row.features, row.subject, "").instance !== undefined)
  .filter((_, i) => i % 2 === 0);

before(async () => {
  server = await startTestServer({ models: [DEMO_XGB, CLEAR] });
  times.push(await mark());
  for (const model of Object.keys(first)) {
    const answers = await decide(
      model,
      cases.map((c) => ({ features: c.features, subject: c.subject })),
    );
    for (const [i, answer] of answers.entries()) {
      const held = answer.status === "pending_review";
      const sent: Sent = {
        id: answer.decision_id,
        subject: cases[i]!.subject,
        // The model's decision, recorded even while a reviewer has the case.
        decision: answer.decision ?? (await recordedDecision(answer.decision_id)),
      };
      first[model]!.push(sent);
      if (held) heldCount++;
      const truth = cases[i]!.status;
      const other = truth === "good" ? "bad" : "good";
      // Outcomes for two decisions in three; every fifth first gets a wrong one that a later one corrects.
      if (i % 3 !== 2) {
        const outcomes = `/v1/decisions/${answer.decision_id}/outcomes`;
        if (i % 5 === 0) await post(outcomes, { outcome: other, source: "first-guess" }, 201);
        await post(outcomes, { outcome: truth, source: "collections-system" }, 201);
        sent.label = truth;
      }
      // Held decisions: a reviewer's final decision, recorded after any outcome, is the label.
      if (held && i % 2 === 0) {
        const reviewed = i % 3 === 2 ? truth : other;
        await resolveReview(answer.decision_id, reviewed);
        sent.label = reviewed;
      }
    }
  }
  times.push(await mark());
  // The second range: more decisions, no outcomes.
  const more = cases.slice(0, 60);
  secondCount = more.length;
  for (const model of Object.keys(first)) {
    await decide(
      model,
      more.map((c) => ({ features: c.features, subject: c.subject })),
    );
  }
  times.push(await mark());
  await server.close();
  // Retention purges some protected subjects: every seventh of the first range.
  const vault = new Database(join(server.dataDir, "vault.sqlite"));
  const purge = vault.prepare(
    "UPDATE subjects SET salt = NULL, payload = NULL, purged_at = ? WHERE decision_id = ?",
  );
  first["credit-demo"]!.forEach((s, i) => {
    if (i % 7 !== 3) return;
    purge.run(new Date().toISOString(), s.id);
    purged.add(s.id);
  });
  vault.close();
});
after(() => {
  scratch.remove();
  server.stop().catch(() => undefined);
});

const iso = (ms: number) => new Date(ms).toISOString();

async function audit(manifestPath: string, ...flags: string[]): Promise<FairnessAuditReport> {
  const result = await run(
    "audit",
    "fairness",
    manifestPath,
    "--ledger",
    "--data-dir",
    server.dataDir,
    "--format",
    "json",
    "--resamples",
    "20",
    ...flags,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /verdict: /);
  return JSON.parse(result.stdout) as FairnessAuditReport;
}

/** The group of a subject for the policy's attributes, counted here without the library. */
function groupOf(m: Manifest, subject: Record<string, unknown>, names: readonly string[]): string {
  const parts = names.map((name) => {
    const attribute = m.fairness.attributes.find((a) => a.name === name)!;
    const value = subject[name];
    let level: string;
    if (value === null || value === undefined) level = "(missing)";
    else if (attribute.buckets !== undefined) {
      const k = attribute.buckets.filter((edge) => (value as number) >= edge).length;
      level = attribute.levels[k]!;
    } else level = String(value);
    return names.length === 1 ? level : `${name}=${level}`;
  });
  return parts.join(", ");
}

/** Selection rate per group over `sent`, and TPR and FPR over the labelled ones (favourable: good). */
function independent(m: Manifest, sent: readonly Sent[], names: readonly string[]) {
  const groups = new Map<
    string,
    { n: number; selected: number; tp: number; fn: number; fp: number; tn: number }
  >();
  for (const s of sent) {
    const key = groupOf(m, s.subject, names);
    const g = groups.get(key) ?? { n: 0, selected: 0, tp: 0, fn: 0, fp: 0, tn: 0 };
    const approved = s.decision === "good";
    g.n++;
    if (approved) g.selected++;
    if (s.label !== undefined) {
      if (s.label === "good") approved ? g.tp++ : g.fn++;
      else approved ? g.fp++ : g.tn++;
    }
    groups.set(key, g);
  }
  return groups;
}

function checkFigures(report: FairnessAuditReport, m: Manifest, sent: readonly Sent[]): void {
  assert.equal(report.audits.length, 3);
  for (const section of report.audits) {
    const expected = independent(m, sent, section.attributes);
    const labelled = section.labelled_audit!;
    assert.ok(labelled, "a labelled audit");
    let seen = 0;
    section.audit.groups.forEach((g, i) => {
      const e = expected.get(g.group.label);
      if (e === undefined) {
        assert.equal(g.count, 0, `${g.group.label} has no decisions`);
        return;
      }
      seen++;
      assert.equal(g.count, e.n, `${g.group.label}: decisions`);
      assert.equal(g.metrics.selection_rate.value, e.selected / e.n, `${g.group.label}: selection rate`);
      const l = labelled.groups[i]!;
      assert.equal(l.group.label, g.group.label);
      assert.equal(l.count, e.tp + e.fn + e.fp + e.tn, `${g.group.label}: labelled`);
      assert.deepEqual(l.confusion, { tp: e.tp, fn: e.fn, fp: e.fp, tn: e.tn }, g.group.label);
      if (e.tp + e.fn > 0) assert.equal(l.metrics.tpr.value, e.tp / (e.tp + e.fn), `${g.group.label}: TPR`);
      else assert.ok(Number.isNaN(l.metrics.tpr.value) || l.metrics.tpr.value === null);
      if (e.fp + e.tn > 0) assert.equal(l.metrics.fpr.value, e.fp / (e.fp + e.tn), `${g.group.label}: FPR`);
    });
    assert.equal(seen, expected.size, `every group of ${section.attributes.join(" × ")} found`);
    assert.deepEqual(
      section.criteria.map((c) => c.criterion),
      ["demographic_parity", "equal_opportunity", "equalized_odds"],
    );
  }
}

test("warden audit fairness --ledger: a clear-subject model's figures equal a count of the answers and labels sent", async () => {
  const m = manifests["credit-clear"]!;
  const report = await audit(CLEAR, "--from", iso(times[0]!), "--to", iso(times[1]!));
  const sent = first["credit-clear"]!;
  const data = report.data as LedgerAuditData;
  assert.equal(data.source, "ledger");
  assert.equal(data.ledger, join(server.dataDir, "ledger.sqlite"));
  assert.equal(data.from, iso(times[0]!));
  assert.equal(data.to, iso(times[1]!));
  assert.equal(data.decisions, sent.length);
  assert.equal(data.audited, sent.length);
  assert.equal(data.labelled, sent.filter((s) => s.label !== undefined).length);
  assert.deepEqual(data.subjects_unavailable, { count: 0, reasons: {} });
  assert.equal(data.other_versions, 0);
  checkFigures(report, m, sent);
  assert.ok(heldCount >= 10, `${heldCount} decisions held for review`);
  const approved = sent.filter((s) => s.decision === "good").length;
  assert.equal(report.overall.selection_rate, approved / sent.length);
});

test("warden audit fairness --ledger: a protected model's subjects are read back from the vault; purged ones are counted unavailable", async () => {
  const m = manifests["credit-demo"]!;
  const report = await audit(DEMO_XGB, "--from", iso(times[0]!), "--to", iso(times[1]!));
  const all = first["credit-demo"]!;
  const sent = all.filter((s) => !purged.has(s.id));
  assert.ok(purged.size > 10);
  const data = report.data as LedgerAuditData;
  assert.equal(data.decisions, all.length);
  assert.equal(data.audited, sent.length);
  assert.equal(data.labelled, sent.filter((s) => s.label !== undefined).length);
  assert.deepEqual(data.subjects_unavailable, {
    count: purged.size,
    reasons: { "purged by retention": purged.size },
  });
  checkFigures(report, m, sent);
});

test("warden audit fairness --ledger: --from and --to select the decisions; outcomes recorded later still label them", async () => {
  const second = await audit(CLEAR, "--from", iso(times[1]!), "--to", iso(times[2]!), "--by", "Marital");
  const data = second.data as LedgerAuditData;
  assert.equal(data.decisions, secondCount);
  assert.equal(data.labelled, 0);
  assert.equal(second.audits.length, 1);
  assert.equal(second.audits[0]!.labelled_audit, undefined);
  assert.equal(second.audits[0]!.criteria[1]!.verdict, "insufficient");
  assert.equal(second.audits[0]!.criteria[1]!.reason, "no-labelled-decisions");

  const whole = await audit(CLEAR);
  const wholeData = whole.data as LedgerAuditData;
  assert.equal(wholeData.decisions, first["credit-clear"]!.length + secondCount);
  assert.equal(wholeData.from, null);
  assert.equal(wholeData.to, null);
  const since = await audit(CLEAR, "--from", iso(times[1]!));
  assert.equal((since.data as LedgerAuditData).decisions, secondCount);
});

test("warden audit fairness --ledger: the HTML report heads with the range and the counts", async () => {
  const out = join(scratch.path, "audit.html");
  const result = await run(
    "audit",
    "fairness",
    DEMO_XGB,
    "--ledger",
    "--data-dir",
    server.dataDir,
    "--resamples",
    "0",
    "--out",
    out,
  );
  assert.equal(result.code, 0, result.stderr);
  const { readFileSync } = await import("node:fs");
  const html = readFileSync(out, "utf8");
  assert.match(html, /subjects unavailable \(\d+ purged by retention\)/);
  assert.match(html, /<th>labelled<\/th>/);
  assert.match(result.stdout + result.stderr, /wrote .*audit\.html/);
});

test("warden audit fairness: flag errors name the flag (exit 2); a missing ledger is exit 1", async () => {
  const usage = async (pattern: RegExp, ...argv: string[]) => {
    const r = await run("audit", "fairness", ...argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  };
  await usage(/--ledger.*expected no labelled CSV, found/, DEMO_XGB, HOLDOUT_CSV, "--ledger");
  await usage(/expected a labelled CSV .* or --ledger/, DEMO_XGB);
  await usage(
    /--from reads the ledger: expected it only with --ledger/,
    DEMO_XGB,
    HOLDOUT_CSV,
    "--from",
    iso(times[0]!),
  );
  await usage(/--data-dir reads the ledger/, DEMO_XGB, HOLDOUT_CSV, "--data-dir", server.dataDir);
  await usage(/--from must be .*; got "yesterday"/, DEMO_XGB, "--ledger", "--from", "yesterday");
  await usage(
    /--from .* must be earlier than --to/,
    DEMO_XGB,
    "--ledger",
    "--from",
    iso(times[1]!),
    "--to",
    iso(times[0]!),
  );
  await usage(/--label .*expected no --label with --ledger/, DEMO_XGB, "--ledger", "--label", "Status");
  await usage(
    /--by: "Sex" is not an audited sensitive attribute/,
    DEMO_XGB,
    "--ledger",
    "--data-dir",
    server.dataDir,
    "--by",
    "Sex",
  );
  await usage(/--resamples must be an integer/, DEMO_XGB, "--ledger", "--resamples", "-1");
  await usage(/--postgres-url must start with postgres/, DEMO_XGB, "--ledger", "--postgres-url", "mysql://x");

  const empty = tempDir("audit-ledger-empty");
  try {
    const r = await run("audit", "fairness", DEMO_XGB, "--ledger", "--data-dir", empty.path);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ledger/);
    assert.match(r.stderr, new RegExp(empty.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  } finally {
    empty.remove();
  }
  // A range without decisions: nothing to audit, exit 1.
  const none = await run(
    "audit",
    "fairness",
    DEMO_XGB,
    "--ledger",
    "--data-dir",
    server.dataDir,
    "--to",
    iso(times[0]! - 60_000),
  );
  assert.equal(none.code, 1, none.stderr);
  assert.match(none.stderr, /nothing to audit: .* holds 0 decisions of credit-demo 1\.0\.0/);
});
