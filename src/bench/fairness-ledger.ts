/**
 * The fairness suite's ledger case (issue 6): `warden audit fairness --ledger` over 1,000,000 decisions recorded
 * in a real SQLite ledger through the real writer (the ledger suite's {@link sqliteWriter}), with three
 * sensitive attributes in clear subjects (Age in the policy's numeric buckets, Marital, Sex: 4 × 5 × 2 = 40
 * intersectional groups) and outcomes for 30 % of them. Timed end to end as the command runs it: reading the
 * ledger (one pass over a snapshot), grouping (attributes into the policy's groups, labels joined), and the
 * audit (each attribute alone and their intersection, 200 bootstrap resamples).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { attributesBy } from "../cli/audit-fairness.js";
import {
  groupLedgerDecisions,
  ledgerAuditReport,
  readLedgerDecisions,
} from "../cli/audit-fairness-ledger.js";
import { openRecordSource } from "../cli/ledger-proofs.js";
import { loadManifest } from "../config/index.js";
import type { LedgerEntry } from "../ledger/index.js";
import { DEMO_XGB, tempDir } from "../testing/index.js";
import { sqliteWriter } from "./ledger.js";
import { formatTable, progress } from "./suite.js";

const DECISIONS = 1_000_000;
const LABELLED_SHARE = 0.3;
const RESAMPLES = 200;
const MARITAL = ["single", "married", "widow", "separated", "divorced"];
const SEX = ["F", "M"];

/** The demo's manifest with a third sensitive attribute, Sex, audited with Age and Marital. */
function benchManifest(dir: string) {
  const text = readFileSync(DEMO_XGB, "utf8")
    .replace(
      /^ {2}- name: Records$/m,
      '  - name: Sex\n    type: category\n    description: "Sex"\n    categories: [F, M]\n    sensitive: true\n  - name: Records',
    )
    .replace(
      /^policy: .*$/m,
      () =>
        `policy: ${JSON.stringify({
          subject_storage: "clear",
          fairness: {
            attributes: { Age: { buckets: [25, 35, 50] }, Marital: {}, Sex: {} },
            reference: "largest",
            min_group_size: 30,
            bootstrap: { resamples: RESAMPLES, seed: 0 },
          },
        })}`,
    )
    .replace(/^risk_tier: .*$/m, "risk_tier: limited");
  const path = join(dir, "manifest.yaml");
  writeFileSync(path, text);
  return loadManifest(path, { checkArtifact: false });
}

/** A small deterministic generator (the writer's entries must not depend on the call order). */
function hash(i: number, salt: number): number {
  let x = (i * 0x9e3779b1 + salt * 0x85ebca77) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x / 2 ** 32;
}

const START = Date.UTC(2026, 0, 1);
const id = (i: number) => `0190c9a2-7b3e-7def-8abc-${String(i).padStart(12, "0")}`;

/**
 * Entry i of the ledger: decisions 1 … DECISIONS, then the outcomes of 30 % of them (outcomes come later).
 */
function entryOf(manifest: ReturnType<typeof benchManifest>, labelled: readonly number[]) {
  const base = {
    model: manifest.name,
    version: manifest.version,
    artifact_sha256: manifest.artifact.sha256,
  };
  return (i: number): LedgerEntry => {
    if (i > DECISIONS) {
      const d = labelled[i - DECISIONS - 1]!;
      const score = scoreOf(d);
      return {
        ...base,
        id: `0190c9a3-7b3e-7def-8abc-${String(i).padStart(12, "0")}`,
        kind: "outcome",
        time: new Date(START + DECISIONS * 1000 + i).toISOString(),
        body: {
          decision_id: id(d),
          observed_at: new Date(START + DECISIONS * 1000 + i).toISOString(),
          outcome: hash(d, 7) < score ? "bad" : "good",
          source: "bench",
        },
      };
    }
    const age = 18 + Math.floor(hash(i, 1) * 60);
    const marital = MARITAL[Math.min(4, Math.floor(hash(i, 2) ** 2 * 5))]!;
    const sex = SEX[hash(i, 3) < 0.48 ? 0 : 1]!;
    const score = scoreOf(i);
    return {
      ...base,
      id: id(i),
      kind: "decision",
      time: new Date(START + i * 1000).toISOString(),
      body: {
        batch_size: 1,
        decision: score >= 0.5 ? "bad" : "good",
        deployment: "stable",
        inputs: {
          Seniority: i % 30,
          Home: "rent",
          Time: 36,
          Records: false,
          Job: "fixed",
          Expenses: 60,
          Income: 120 + (i % 200),
          Assets: 3000,
          Debt: 0,
          Amount: 1000 + (i % 500),
          Price: 1400,
        },
        latency_ms: 1.2,
        manifest_sha256: manifest.manifestSha256,
        outputs: { score },
        request_id: `req-${i}`,
        route: "model",
        subject: { Age: age, Marital: marital, Sex: sex },
        threshold: 0.5,
      },
    };
  };
}

/** P(bad) of decision i: a little higher for the young and for Sex M. */
function scoreOf(i: number): number {
  const age = 18 + Math.floor(hash(i, 1) * 60);
  const sex = hash(i, 3) < 0.48 ? 0 : 1;
  return Math.min(1, Math.max(0, 0.25 + 0.1 * sex + (age < 25 ? 0.1 : 0) + 0.4 * (hash(i, 4) - 0.5)));
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Write the ledger, then time the audit as `warden audit fairness --ledger` runs it. Returns the lines. */
export async function ledgerAuditBench(): Promise<{ lines: string[]; ok: boolean }> {
  const dir = tempDir("bench-fairness-ledger");
  try {
    const manifest = benchManifest(dir.path);
    const labelled: number[] = [];
    for (let d = 1; d <= DECISIONS; d++) if (hash(d, 5) < LABELLED_SHARE) labelled.push(d);
    const total = DECISIONS + labelled.length;
    progress(
      `fairness: writing ${DECISIONS.toLocaleString("en")} decisions and ${labelled.length.toLocaleString("en")} outcomes through the ledger writer`,
    );
    const written = await sqliteWriter(dir.path, total, entryOf(manifest, labelled));
    const attributes = attributesBy(manifest, undefined);

    progress("fairness: auditing the ledger (read, group, audit)");
    const t0 = performance.now();
    const store = await openRecordSource({ dataDir: dir.path });
    let read: Awaited<ReturnType<typeof readLedgerDecisions>>;
    try {
      read = await readLedgerDecisions(store.source, manifest, attributes, {});
    } finally {
      await store.close();
    }
    const t1 = performance.now();
    const grouped = groupLedgerDecisions(manifest, attributes, read);
    const t2 = performance.now();
    const report = ledgerAuditReport(
      manifest,
      attributes,
      read,
      grouped,
      { ledger: dir.path },
      { resamples: RESAMPLES, seed: 0 },
    );
    const t3 = performance.now();

    const intersection = report.audits[report.audits.length - 1]!;
    const ok =
      read.decisions === DECISIONS &&
      read.ids.length === DECISIONS &&
      grouped.labelled.yTrue.length === labelled.length &&
      intersection.attributes.length === 3;
    const lines = [
      "",
      `ledger audit (warden audit fairness --ledger): ${DECISIONS.toLocaleString("en")} decisions and ${labelled.length.toLocaleString("en")} outcomes in a SQLite ledger (written through the ledger writer in ${written.toFixed(1)} s, not counted)`,
      `3 sensitive attributes in clear subjects (Age in 4 buckets, Marital, Sex: ${intersection.audit.groups.length} intersectional groups), each alone and intersectional, ${RESAMPLES} bootstrap resamples; selection rates over every decision, error rates over the labelled`,
      "",
      formatTable(
        ["phase", "time"],
        [
          [
            `read the ledger (${(DECISIONS + labelled.length).toLocaleString("en")} records)`,
            seconds(t1 - t0),
          ],
          ["group (attributes → groups, labels joined)", seconds(t2 - t1)],
          [`audit (4 audits × 2, ${RESAMPLES} resamples)`, seconds(t3 - t2)],
          ["total", seconds(t3 - t0)],
        ],
      ),
      `verdict ${report.verdict}; ${ok ? "counts check" : "FAILED: the audit's counts differ from what was written"}`,
    ];
    return { lines, ok };
  } finally {
    dir.remove();
  }
}
