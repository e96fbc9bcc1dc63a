import { basename, extname, join, resolve } from "node:path";
import type { Command } from "commander";
import { type FairnessAttribute, loadManifest, type Manifest } from "../config/index.js";
import {
  auditVerdicts,
  type CriterionVerdict,
  type EncodedAttribute,
  encodePolicyAttribute,
  type FairnessAudit,
  fairnessAudit,
  overallVerdict,
  type RateMetric,
  type Verdict,
} from "../fairness/index.js";
import { ledgerPath } from "../ledger/index.js";
import {
  groupLedgerDecisions,
  type LedgerDecisions,
  ledgerAuditReport,
  readLedgerDecisions,
} from "./audit-fairness-ledger.js";
import { renderAuditHtml } from "./fairness-html.js";
import { type CliIo, choiceOption, intOption, UsageError } from "./index.js";
import { readLabelled, requireBinary, scoreLabelled } from "./labelled.js";
import { checkTimeRange, timeOption, withOutput } from "./ledger-export.js";
import { addStoreOptions, openRecordSource, storeLocation } from "./ledger-proofs.js";

const AUDIT_FORMATS = ["json", "html"] as const;
type AuditFormat = (typeof AUDIT_FORMATS)[number];

interface AuditOptions {
  ledger?: boolean;
  dataDir?: string;
  postgresUrl?: string;
  postgresSchema?: string;
  from?: number;
  to?: number;
  encryptionKey?: string;
  by?: string;
  label?: string;
  format?: AuditFormat;
  out?: string;
  seed?: number;
  resamples?: number;
}

/** One audit of the report: one attribute, or the intersection of several. */
export interface AuditSection {
  readonly attributes: readonly string[];
  /** The reference rule used: a named group, or the policy's rule. */
  readonly reference: string;
  /**
   * The audit. Of a labelled CSV: every row. Of the ledger: every decision audited, for the selection-rate
   * figures only (labels are not used there: y is 0 throughout, so its error rates mean nothing).
   */
  readonly audit: FairnessAudit;
  /**
   * Ledger audits only: the audit over the labelled decisions, for the error-rate figures (TPR, FPR,
   * precision, accuracy, calibration). Absent when no decision audited has a label.
   */
  readonly labelled_audit?: FairnessAudit;
  readonly criteria: readonly CriterionVerdict[];
  readonly verdict: Verdict;
}

/** The data of an audit of a labelled CSV. */
export interface CsvAuditData {
  readonly file: string;
  readonly sha256: string;
  readonly rows: number;
  readonly label_column: string;
}

/** The data of an audit of the ledger's decisions (`--ledger`). */
export interface LedgerAuditData {
  readonly source: "ledger";
  /** The ledger read: its SQLite file, or the PostgreSQL schema. */
  readonly ledger: string;
  /** The range of decision times, ISO-8601; null where open. `from` is inclusive, `to` not. */
  readonly from: string | null;
  readonly to: string | null;
  /** Decisions of this model version in the range. */
  readonly decisions: number;
  /** Of those, the decisions audited: their subject could be read (in clear, or from the vault). */
  readonly audited: number;
  /** Of the audited decisions, those with a label (an outcome or a reviewer's final decision). */
  readonly labelled: number;
  /** Decisions whose subject could not be read, left out of every figure, by reason. */
  readonly subjects_unavailable: {
    readonly count: number;
    readonly reasons: Readonly<Record<string, number>>;
  };
  /** Labels that are not one of the model's labels (left out: the decision counts as unlabelled). */
  readonly labels_ignored: number;
  /** Decisions of other versions of the model in the range (not audited). */
  readonly other_versions: number;
  readonly label_rule: string;
}

/** The report `warden audit fairness` writes (JSON; undefined figures are null with their reason). */
export interface FairnessAuditReport {
  readonly kind: "warden.fairness_audit";
  readonly model: string;
  readonly version: string;
  readonly manifest_sha256: string;
  readonly data: CsvAuditData | LedgerAuditData;
  /** ŷ = 1: the model decided this label; y = 1: the label column holds it. */
  readonly favourable_label: string;
  readonly threshold: number;
  readonly policy: {
    readonly reference: string;
    readonly min_group_size: number;
    readonly small_groups: "exclude";
    readonly thresholds: Manifest["fairness"]["thresholds"];
    readonly alpha: number;
    readonly bootstrap: { readonly resamples: number; readonly seed: number };
  };
  /** Ledger audits: accuracy and base rate over the labelled decisions, selection rate over all audited. */
  readonly overall: {
    readonly accuracy: number;
    readonly selection_rate: number;
    readonly base_rate: number;
  };
  readonly audits: readonly AuditSection[];
  readonly verdict: Verdict;
}

/** Whether a report is of the ledger's decisions. */
export function isLedgerData(data: FairnessAuditReport["data"]): data is LedgerAuditData {
  return (data as LedgerAuditData).source === "ledger";
}

/** One line saying what was audited. */
export function describeData(report: FairnessAuditReport): string {
  const d = report.data;
  if (!isLedgerData(d))
    return `${d.file} (${d.rows} rows, label column ${d.label_column}, sha256 ${d.sha256})`;
  const unavailable = Object.entries(d.subjects_unavailable.reasons)
    .map(([reason, n]) => `${n} ${reason}`)
    .join(", ");
  return (
    `the ledger ${d.ledger}, decisions from ${d.from ?? "the start"} to ${d.to ?? "now"}: ${d.decisions} decisions, ` +
    `${d.audited} audited, ${d.labelled} labelled, ${d.subjects_unavailable.count} subjects unavailable` +
    `${unavailable === "" ? "" : ` (${unavailable})`}` +
    `${d.labels_ignored > 0 ? `, ${d.labels_ignored} labels not of the model ignored` : ""}` +
    `${d.other_versions > 0 ? `; ${d.other_versions} decisions of other versions left out` : ""}`
  );
}

/** The attributes named by --by (default: every attribute of the policy), checked against the policy. */
export function attributesBy(manifest: Manifest, by: string | undefined): FairnessAttribute[] {
  const policy = manifest.fairness;
  if (by === undefined) {
    if (policy.attributes.length === 0) {
      throw new UsageError(
        `${manifest.name} ${manifest.version} has no sensitive attribute to audit${policy.unbucketed.length > 0 ? ` (${policy.unbucketed.join(", ")} need buckets in policy.fairness.attributes)` : ""}`,
      );
    }
    return [...policy.attributes];
  }
  const names = by.split(",").map((s) => s.trim());
  if (names.some((n) => n === ""))
    throw new UsageError(`--by must list attributes separated by commas; got ${JSON.stringify(by)}`);
  if (new Set(names).size !== names.length) throw new UsageError(`--by names an attribute twice: ${by}`);
  return names.map((name) => {
    const attribute = policy.attributes.find((a) => a.name === name);
    if (attribute !== undefined) return attribute;
    const hint = policy.unbucketed.includes(name)
      ? `${name} is numeric: give it buckets in policy.fairness.attributes`
      : `the audited attributes are ${policy.attributes.map((a) => a.name).join(", ") || "(none)"}`;
    throw new UsageError(`--by: ${JSON.stringify(name)} is not an audited sensitive attribute; ${hint}`);
  });
}

/** The sets of attributes audited: each alone and, with several, their intersection (indexes). */
function attributeSets(attributes: readonly FairnessAttribute[]): number[][] {
  return attributes.length > 1 ? [...attributes.map((_, i) => [i]), attributes.map((_, i) => i)] : [[0]];
}

/** The rows of an audit: groups already encoded, labels, decisions, P(favourable). */
interface AuditRows {
  readonly encoded: readonly EncodedAttribute[];
  readonly yTrue: Uint8Array;
  readonly yPred: Uint8Array;
  readonly scores?: Float64Array;
}

/** The report's sections: one per attribute set, each audited with the policy's settings. */
export function auditSections(
  manifest: Manifest,
  attributes: readonly FairnessAttribute[],
  rows: AuditRows,
  bootstrap: { resamples: number; seed: number },
  labelled?: AuditRows,
): AuditSection[] {
  const policy = manifest.fairness;
  return attributeSets(attributes).map((set): AuditSection => {
    const first = attributes[set[0]!]!;
    const named =
      set.length === 1 &&
      first.reference !== undefined &&
      rows.encoded[set[0]!]!.levels.includes(first.reference)
        ? first.reference
        : undefined;
    const run = (data: AuditRows, testedMetrics?: readonly RateMetric[]) =>
      fairnessAudit(
        {
          groups: set.map((i) => data.encoded[i]!),
          yTrue: data.yTrue,
          yPred: data.yPred,
          ...(data.scores !== undefined ? { scores: data.scores } : {}),
        },
        {
          reference: named === undefined ? policy.reference : { group: named },
          minGroupSize: policy.minGroupSize,
          smallGroups: "exclude",
          alpha: policy.alpha,
          ...(testedMetrics !== undefined ? { testedMetrics } : {}),
          bootstrap:
            bootstrap.resamples === 0 ? false : { resamples: bootstrap.resamples, seed: bootstrap.seed },
        },
      );
    let audit: FairnessAudit;
    let labelledAudit: FairnessAudit | undefined;
    let criteria: CriterionVerdict[];
    if (labelled === undefined) {
      audit = run(rows);
      criteria = auditVerdicts(audit, policy.thresholds);
    } else {
      // Selection rates over every decision; error rates over the labelled ones.
      audit = run(rows, ["selection_rate"]);
      const all = auditVerdicts(audit, policy.thresholds);
      if (labelled.yTrue.length > 0) {
        labelledAudit = run(labelled);
        criteria = [all[0]!, ...auditVerdicts(labelledAudit, policy.thresholds).slice(1)];
      } else {
        criteria = [
          all[0]!,
          ...all.slice(1).map(
            (c): CriterionVerdict => ({
              ...c,
              value: null,
              reason: "no-labelled-decisions",
              interval: null,
              verdict: "insufficient",
              interval_agrees: null,
            }),
          ),
        ];
      }
    }
    return {
      attributes: set.map((i) => attributes[i]!.name),
      reference: named === undefined ? policy.reference : `group ${named}`,
      audit,
      ...(labelledAudit !== undefined ? { labelled_audit: labelledAudit } : {}),
      criteria,
      verdict: overallVerdict(criteria),
    };
  });
}

/** Accuracy, selection rate and base rate of rows. */
export function overallRates(
  yTrue: Uint8Array,
  yPred: Uint8Array,
): { accuracy: number; selection_rate: number; base_rate: number } {
  const n = yTrue.length;
  let correct = 0;
  let selected = 0;
  let positives = 0;
  for (let i = 0; i < n; i++) {
    if (yTrue[i] === yPred[i]) correct++;
    selected += yPred[i]!;
    positives += yTrue[i]!;
  }
  return { accuracy: correct / n, selection_rate: selected / n, base_rate: positives / n };
}

/** The report's fields other than the data, the overall rates and the sections. */
export function reportHead(manifest: Manifest, bootstrap: { resamples: number; seed: number }) {
  const policy = manifest.fairness;
  return {
    kind: "warden.fairness_audit" as const,
    model: manifest.name,
    version: manifest.version,
    manifest_sha256: manifest.manifestSha256,
    favourable_label: manifest.output.favorable_label!,
    threshold: manifest.output.threshold,
    policy: {
      reference: policy.reference,
      min_group_size: policy.minGroupSize,
      small_groups: "exclude" as const,
      thresholds: policy.thresholds,
      alpha: policy.alpha,
      bootstrap,
    },
  };
}

/** Build the report: every attribute alone, and their intersection when there are several. */
export function buildAuditReport(
  manifest: Manifest,
  attributes: readonly FairnessAttribute[],
  data: {
    file: string;
    sha256: string;
    labelColumn: string;
    attributeValues: ReadonlyMap<string, readonly unknown[]>;
    yTrue: Uint8Array;
    yPred: Uint8Array;
    favourableScores: Float64Array;
  },
  bootstrap: { resamples: number; seed: number },
): FairnessAuditReport {
  const encoded = attributes.map((a) => encodePolicyAttribute(a, data.attributeValues.get(a.name)!));
  const audits = auditSections(
    manifest,
    attributes,
    { encoded, yTrue: data.yTrue, yPred: data.yPred, scores: data.favourableScores },
    bootstrap,
  );
  const { kind, model, version, manifest_sha256, ...rest } = reportHead(manifest, bootstrap);
  return {
    kind,
    model,
    version,
    manifest_sha256,
    data: { file: data.file, sha256: data.sha256, rows: data.yTrue.length, label_column: data.labelColumn },
    ...rest,
    overall: overallRates(data.yTrue, data.yPred),
    audits,
    verdict: overallVerdict(audits),
  };
}

/** The verdicts in a few lines, for the terminal. */
export function verdictSummary(report: FairnessAuditReport): string {
  const lines = [
    isLedgerData(report.data)
      ? `fairness audit of ${report.model} ${report.version} on ${describeData(report)} (favourable: ${report.favourable_label})`
      : `fairness audit of ${report.model} ${report.version} on ${report.data.file} (${report.data.rows} rows; favourable: ${report.favourable_label})`,
  ];
  for (const section of report.audits) {
    const parts = section.criteria.map((c) => {
      const value =
        c.value === null
          ? `undefined: ${c.reason}`
          : `${c.value.toFixed(3)}, required ${c.comparison} ${c.threshold}`;
      return `${c.criterion} ${c.verdict.toUpperCase()} (${c.figure} ${value})`;
    });
    lines.push(`  ${section.attributes.join(" × ")}: ${section.verdict.toUpperCase()} — ${parts.join("; ")}`);
  }
  const failing = report.audits.flatMap((s) => s.criteria).filter((c) => c.verdict === "fail").length;
  lines.push(
    `verdict: ${report.verdict.toUpperCase()}${failing > 0 ? ` (${failing} criteria fail the policy's thresholds)` : ""}`,
  );
  return `${lines.join("\n")}\n`;
}

function formatOf(options: AuditOptions): AuditFormat {
  if (options.format !== undefined) return options.format;
  const ext = options.out === undefined ? "" : extname(options.out).toLowerCase();
  return ext === ".html" || ext === ".htm" ? "html" : "json";
}

/** `warden audit fairness`: a fairness audit of a model on labelled rows, or of its decisions in the ledger. */
export function auditCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const audit = program.command("audit").description("Offline audits of a model on labelled data");
  addStoreOptions(
    audit
      .command("fairness")
      .description(
        "Audit a model's decisions across the groups of its sensitive attributes, each alone and, with several, " +
          "their intersection: per-group rates with bootstrap intervals, disparities, Fisher tests with Holm's " +
          "correction, and a verdict per criterion against policy.fairness's thresholds. Either score labelled " +
          "rows with the model (the same validation, runtime and decision policy as warden predict), or, with " +
          "--ledger, audit the decisions the version recorded in the ledger: the recorded decisions and " +
          "scores, the subjects' attributes (in clear, or read back from the subject vault with the data " +
          "folder's key; a purged subject is counted unavailable, never guessed), and each decision's final " +
          "label (its latest outcome or reviewer's final decision): selection rates over every decision, " +
          "error rates over the labelled ones. Exit 0 when the report is written, whatever the verdict " +
          "(printed); 1 on bad rows, files or ledger; 2 on misuse.",
      )
      .argument("<manifest>", "the model's manifest (YAML)")
      .argument(
        "[labelled]",
        "labelled rows (CSV): the features, the sensitive attributes and the label column (not with --ledger)",
      )
      .option("--ledger", "audit the version's decisions recorded in the ledger instead of a labelled CSV")
      .option(
        "--by <attributes>",
        "attributes to audit, comma-separated (default: every one in policy.fairness)",
      )
      .option("--label <column>", "the label column (default: policy.fairness.label_column, else label)")
      .option("--data-dir <dir>", "with --ledger: the server's data folder (default warden-data)")
      .option(
        "--from <time>",
        "with --ledger: decisions at or after this time (ISO-8601)",
        timeOption("--from"),
      )
      .option("--to <time>", "with --ledger: decisions before this time (ISO-8601)", timeOption("--to"))
      .option(
        "--encryption-key <file>",
        "with --ledger: the subject encryption key (default: <data-dir>/keys/subject-encryption.key)",
      )
      .option(
        "--format <format>",
        "json or html (default: html for an --out ending .html, else json)",
        choiceOption("--format", AUDIT_FORMATS),
      )
      .option("--out <file>", "write the report here (default: standard output)")
      .option("--seed <n>", "bootstrap seed (default: the policy's)", intOption("--seed", 0, 2 ** 32 - 1))
      .option(
        "--resamples <n>",
        "bootstrap resamples, 0 for no intervals (default: the policy's)",
        intOption("--resamples", 0, 100_000),
      ),
  ).action((manifestPath: string, labelledPath: string | undefined, options: AuditOptions) =>
    run(async () => {
      checkAuditFlags(labelledPath, options);
      const format = formatOf(options);
      const bootstrapOf = (manifest: Manifest) => ({
        resamples: options.resamples ?? manifest.fairness.bootstrap.resamples,
        seed: options.seed ?? manifest.fairness.bootstrap.seed,
      });
      let report: FairnessAuditReport;
      if (options.ledger === true) {
        const manifest = loadManifest(manifestPath, { checkArtifact: false });
        requireBinary(manifest);
        const attributes = attributesBy(manifest, options.by);
        report = await auditLedger(manifest, attributes, options, bootstrapOf(manifest));
      } else {
        const manifest = loadManifest(manifestPath);
        requireBinary(manifest);
        const attributes = attributesBy(manifest, options.by);
        const labelColumn = options.label ?? manifest.fairness.labelColumn;
        const rows = readLabelled(manifest, labelledPath!, labelColumn, attributes);
        const scored = await scoreLabelled(manifest, rows);
        const favourableIsPositive = manifest.output.favorableIndex === manifest.output.positiveIndex;
        const favourableScores = favourableIsPositive ? scored.scores : scored.scores.map((s) => 1 - s);
        report = buildAuditReport(
          manifest,
          attributes,
          {
            file: basename(labelledPath!),
            sha256: rows.sha256,
            labelColumn,
            attributeValues: rows.attributeValues,
            yTrue: rows.yTrue,
            yPred: scored.yPred,
            favourableScores,
          },
          bootstrapOf(manifest),
        );
      }
      const summary = verdictSummary(report);
      if (options.out === undefined) io.stderr(summary);
      return withOutput(options.out, io, async (output) => {
        await output.write(
          format === "html" ? renderAuditHtml(report) : `${JSON.stringify(report, null, 2)}\n`,
        );
        return options.out === undefined ? "" : `${summary}wrote ${resolve(options.out)}\n`;
      });
    }),
  );
}

/** The flags of a CSV audit and of a ledger audit do not mix. */
function checkAuditFlags(labelledPath: string | undefined, options: AuditOptions): void {
  if (options.ledger === true) {
    if (labelledPath !== undefined) {
      throw new UsageError(
        `--ledger audits the decisions recorded in the ledger: expected no labelled CSV, found ${JSON.stringify(labelledPath)}`,
      );
    }
    if (options.label !== undefined) {
      throw new UsageError(
        "--label names a CSV's label column: expected no --label with --ledger (its labels are the decisions' outcomes and reviews)",
      );
    }
    checkTimeRange(options.from, options.to, ["--from", "--to"]);
    return;
  }
  if (labelledPath === undefined) {
    throw new UsageError(
      "expected a labelled CSV after the manifest, or --ledger to audit the decisions recorded in the ledger; found neither",
    );
  }
  const ledgerOnly: [string, unknown][] = [
    ["--data-dir", options.dataDir],
    ["--from", options.from],
    ["--to", options.to],
    ["--encryption-key", options.encryptionKey],
    ["--postgres-url", options.postgresUrl],
  ];
  const given = ledgerOnly.find(([, value]) => value !== undefined);
  if (given !== undefined) {
    throw new UsageError(
      `${given[0]} reads the ledger: expected it only with --ledger, found it with the labelled CSV ${JSON.stringify(labelledPath)}`,
    );
  }
  if (options.label !== undefined && options.label.trim() === "")
    throw new UsageError("--label must name a column");
}

/** The ledger audit: read, group, audit. */
async function auditLedger(
  manifest: Manifest,
  attributes: readonly FairnessAttribute[],
  options: AuditOptions,
  bootstrap: { resamples: number; seed: number },
): Promise<FairnessAuditReport> {
  const dataDir = resolve(options.dataDir ?? "warden-data");
  const storeOptions = { ...options, dataDir };
  const location = storeLocation(storeOptions);
  // A missing ledger fails here, before --out is created.
  const store = await openRecordSource(storeOptions);
  let read: LedgerDecisions;
  try {
    read = await readLedgerDecisions(
      store.source,
      manifest,
      attributes,
      { since: options.from, until: options.to },
      {
        dataDir,
        encryptionKeyFile: resolve(options.encryptionKey ?? join(dataDir, "keys", "subject-encryption.key")),
      },
    );
  } finally {
    await store.close();
  }
  const grouped = groupLedgerDecisions(manifest, attributes, read);
  return ledgerAuditReport(
    manifest,
    attributes,
    read,
    grouped,
    {
      ledger:
        location.kind === "sqlite" ? ledgerPath(location.dataDir) : `PostgreSQL schema ${location.schema}`,
      since: options.from,
      until: options.to,
    },
    bootstrap,
  );
}
