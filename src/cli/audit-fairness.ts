import { basename, extname, resolve } from "node:path";
import type { Command } from "commander";
import { type FairnessAttribute, loadManifest, type Manifest } from "../config/index.js";
import {
  auditVerdicts,
  type CriterionVerdict,
  encodePolicyAttribute,
  type FairnessAudit,
  fairnessAudit,
  overallVerdict,
  type Verdict,
} from "../fairness/index.js";
import { renderAuditHtml } from "./fairness-html.js";
import { type CliIo, choiceOption, intOption, UsageError } from "./index.js";
import { readLabelled, requireBinary, scoreLabelled } from "./labelled.js";
import { withOutput } from "./ledger-export.js";

const AUDIT_FORMATS = ["json", "html"] as const;
type AuditFormat = (typeof AUDIT_FORMATS)[number];

interface AuditOptions {
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
  readonly audit: FairnessAudit;
  readonly criteria: readonly CriterionVerdict[];
  readonly verdict: Verdict;
}

/** The report `warden audit fairness` writes (JSON; undefined figures are null with their reason). */
export interface FairnessAuditReport {
  readonly kind: "warden.fairness_audit";
  readonly model: string;
  readonly version: string;
  readonly manifest_sha256: string;
  readonly data: {
    readonly file: string;
    readonly sha256: string;
    readonly rows: number;
    readonly label_column: string;
  };
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
  readonly overall: {
    readonly accuracy: number;
    readonly selection_rate: number;
    readonly base_rate: number;
  };
  readonly audits: readonly AuditSection[];
  readonly verdict: Verdict;
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
  const policy = manifest.fairness;
  const encoded = attributes.map((a) => encodePolicyAttribute(a, data.attributeValues.get(a.name)!));
  const sets =
    attributes.length > 1 ? [...attributes.map((_, i) => [i]), attributes.map((_, i) => i)] : [[0]];
  const audits = sets.map((set): AuditSection => {
    const first = attributes[set[0]!]!;
    const named =
      set.length === 1 && first.reference !== undefined && encoded[set[0]!]!.levels.includes(first.reference)
        ? first.reference
        : undefined;
    const audit = fairnessAudit(
      {
        groups: set.map((i) => encoded[i]!),
        yTrue: data.yTrue,
        yPred: data.yPred,
        scores: data.favourableScores,
      },
      {
        reference: named === undefined ? policy.reference : { group: named },
        minGroupSize: policy.minGroupSize,
        smallGroups: "exclude",
        alpha: policy.alpha,
        bootstrap:
          bootstrap.resamples === 0 ? false : { resamples: bootstrap.resamples, seed: bootstrap.seed },
      },
    );
    const criteria = auditVerdicts(audit, policy.thresholds);
    return {
      attributes: set.map((i) => attributes[i]!.name),
      reference: named === undefined ? policy.reference : `group ${named}`,
      audit,
      criteria,
      verdict: overallVerdict(criteria),
    };
  });
  const n = data.yTrue.length;
  let correct = 0;
  let selected = 0;
  let positives = 0;
  for (let i = 0; i < n; i++) {
    if (data.yTrue[i] === data.yPred[i]) correct++;
    selected += data.yPred[i]!;
    positives += data.yTrue[i]!;
  }
  return {
    kind: "warden.fairness_audit",
    model: manifest.name,
    version: manifest.version,
    manifest_sha256: manifest.manifestSha256,
    data: { file: data.file, sha256: data.sha256, rows: n, label_column: data.labelColumn },
    favourable_label: manifest.output.favorable_label!,
    threshold: manifest.output.threshold,
    policy: {
      reference: policy.reference,
      min_group_size: policy.minGroupSize,
      small_groups: "exclude",
      thresholds: policy.thresholds,
      alpha: policy.alpha,
      bootstrap,
    },
    overall: { accuracy: correct / n, selection_rate: selected / n, base_rate: positives / n },
    audits,
    verdict: overallVerdict(audits),
  };
}

/** The verdicts in a few lines, for the terminal. */
export function verdictSummary(report: FairnessAuditReport): string {
  const lines = [
    `fairness audit of ${report.model} ${report.version} on ${report.data.file} (${report.data.rows} rows; favourable: ${report.favourable_label})`,
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

/** `warden audit fairness`: an offline fairness audit of a model on labelled rows. */
export function auditCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const audit = program.command("audit").description("Offline audits of a model on labelled data");
  audit
    .command("fairness")
    .description(
      "Score labelled rows with the model (the same validation, runtime and decision policy as warden predict) and " +
        "audit its decisions across the groups of its sensitive attributes, each alone and, with several, their " +
        "intersection: per-group rates with bootstrap intervals, disparities, Fisher tests with Holm's " +
        "correction, and a verdict per criterion against policy.fairness's thresholds. Exit 0 when the report is " +
        "written, whatever the verdict (printed); 1 on bad rows or files; 2 on misuse.",
    )
    .argument("<manifest>", "the model's manifest (YAML)")
    .argument(
      "<labelled>",
      "labelled rows (CSV): the features, the sensitive attributes and the label column",
    )
    .option(
      "--by <attributes>",
      "attributes to audit, comma-separated (default: every one in policy.fairness)",
    )
    .option("--label <column>", "the label column (default: policy.fairness.label_column, else label)")
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
    )
    .action((manifestPath: string, labelledPath: string, options: AuditOptions) =>
      run(async () => {
        if (options.label !== undefined && options.label.trim() === "")
          throw new UsageError("--label must name a column");
        const format = formatOf(options);
        const manifest = loadManifest(manifestPath);
        requireBinary(manifest);
        const attributes = attributesBy(manifest, options.by);
        const labelColumn = options.label ?? manifest.fairness.labelColumn;
        const rows = readLabelled(manifest, labelledPath, labelColumn, attributes);
        const scored = await scoreLabelled(manifest, rows);
        const favourableIsPositive = manifest.output.favorableIndex === manifest.output.positiveIndex;
        const favourableScores = favourableIsPositive ? scored.scores : scored.scores.map((s) => 1 - s);
        const report = buildAuditReport(
          manifest,
          attributes,
          {
            file: basename(labelledPath),
            sha256: rows.sha256,
            labelColumn,
            attributeValues: rows.attributeValues,
            yTrue: rows.yTrue,
            yPred: scored.yPred,
            favourableScores,
          },
          {
            resamples: options.resamples ?? manifest.fairness.bootstrap.resamples,
            seed: options.seed ?? manifest.fairness.bootstrap.seed,
          },
        );
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
