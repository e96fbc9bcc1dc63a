import { basename, resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { stringify as stringifyCsv } from "csv-stringify/sync";
import { loadManifest, type Manifest } from "../config/index.js";
import {
  countOutcomes,
  encodeGroups,
  encodePolicyAttribute,
  type GroupEncoding,
  groupThresholds,
  rate,
  reweighing,
  THRESHOLD_CONSTRAINTS,
  type ThresholdConstraint,
} from "../fairness/index.js";
import { attributesBy } from "./audit-fairness.js";
import { type CliIo, choiceOption, UsageError } from "./index.js";
import { type LabelledRows, readLabelled, requireBinary, scoreLabelled } from "./labelled.js";
import { withOutput } from "./ledger-export.js";

/** Said with every threshold recommendation, in the report and on the terminal. */
export const DISPARATE_TREATMENT_WARNING =
  "Group-specific thresholds decide people differently because of a protected characteristic. In some domains " +
  "that is unlawful disparate treatment: in US credit, the Equal Credit Opportunity Act and Regulation B " +
  "(12 CFR part 1002) forbid discriminating on, among others, marital status and age; in the EU, treating " +
  "someone less favourably because of a protected ground is direct discrimination under the non-discrimination " +
  "directives and Article 21 of the Charter of Fundamental Rights. This is a recommendation for review by your " +
  "legal and compliance functions: Warden has not applied it, and never applies thresholds by itself.";

interface CommonOptions {
  by?: string;
  label?: string;
  out?: string;
}

interface MitigateOptions extends CommonOptions {
  constraint: ThresholdConstraint;
  tolerance: number;
}

function fraction(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
      throw new InvalidArgumentError(`${name} must be a number from 0 to 1; got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** The rows read, grouped by the intersection of the --by attributes. */
function groupsOf(manifest: Manifest, rows: LabelledRows, by: string | undefined): GroupEncoding {
  const attributes = attributesBy(manifest, by);
  return encodeGroups(attributes.map((a) => encodePolicyAttribute(a, rows.attributeValues.get(a.name)!)));
}

function read(manifest: Manifest, path: string, options: CommonOptions) {
  if (options.label !== undefined && options.label.trim() === "")
    throw new UsageError("--label must name a column");
  const attributes = attributesBy(manifest, options.by);
  const labelColumn = options.label ?? manifest.fairness.labelColumn;
  return { rows: readLabelled(manifest, path, labelColumn, attributes), labelColumn };
}

interface GroupRates {
  readonly selection_rate: number | null;
  readonly tpr: number | null;
  readonly fpr: number | null;
  readonly accuracy: number | null;
}

function ratesOf(encoding: GroupEncoding, yTrue: Uint8Array, yPred: Uint8Array): GroupRates[] {
  const counts = countOutcomes(encoding, yTrue, yPred);
  const figure = (x: number) => (Number.isFinite(x) ? x : null);
  return encoding.groups.map((_, g) => ({
    selection_rate: figure(rate("selection_rate", counts.cells, g)),
    tpr: figure(rate("tpr", counts.cells, g)),
    fpr: figure(rate("fpr", counts.cells, g)),
    accuracy: figure(rate("accuracy", counts.cells, g)),
  }));
}

function accuracy(yTrue: Uint8Array, yPred: Uint8Array): number {
  let correct = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) correct++;
  return correct / yTrue.length;
}

/** `warden fairness mitigate` and `warden fairness reweigh`. */
export function fairnessCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const fairness = program
    .command("fairness")
    .description("Fairness mitigations to review: per-group thresholds, reweighing weights for training");
  fairness
    .command("mitigate")
    .description(
      "Recommend per-group decision thresholds that bring the groups' selection rates (demographic_parity) or " +
        "true positive rates (equal_opportunity) within --tolerance of each other on labelled rows, with the " +
        "most correct decisions among such thresholds (a deterministic search). Reports each group's threshold " +
        "and rates before and after and the accuracy cost. Nothing is applied: group-specific thresholds may be " +
        "unlawful disparate treatment (see the warning in the report).",
    )
    .argument("<manifest>", "the model's manifest (YAML)")
    .argument("<labelled>", "labelled rows (CSV)")
    .requiredOption(
      "--constraint <constraint>",
      "demographic_parity or equal_opportunity",
      choiceOption("--constraint", THRESHOLD_CONSTRAINTS),
    )
    .option(
      "--by <attributes>",
      "the groups: one attribute or an intersection, comma-separated (default: every one)",
    )
    .option(
      "--tolerance <gap>",
      "the largest gap allowed between the groups' rates (default 0.02)",
      fraction("--tolerance"),
      0.02,
    )
    .option("--label <column>", "the label column (default: policy.fairness.label_column, else label)")
    .option("--out <file>", "write the recommendation (JSON) here (default: standard output)")
    .action((manifestPath: string, labelledPath: string, options: MitigateOptions) =>
      run(async () => {
        const manifest = loadManifest(manifestPath);
        requireBinary(manifest);
        const { rows, labelColumn } = read(manifest, labelledPath, options);
        const encoding = groupsOf(manifest, rows, options.by);
        const scored = await scoreLabelled(manifest, rows);
        const favourableIsPositive = manifest.output.favorableIndex === manifest.output.positiveIndex;
        const policyThreshold = manifest.output.threshold;
        const found = groupThresholds(
          {
            codes: encoding.codes,
            groupCount: encoding.groups.length,
            scores: scored.scores,
            yTrue: rows.yTrue,
            favourableIsPositive,
            threshold: policyThreshold,
          },
          {
            constraint: options.constraint,
            tolerance: options.tolerance,
            minGroupSize: manifest.fairness.minGroupSize,
          },
        );
        const before = ratesOf(encoding, rows.yTrue, scored.yPred);
        const after = ratesOf(encoding, rows.yTrue, found.yPred);
        const metric = options.constraint === "demographic_parity" ? "selection_rate" : "tpr";
        const gapOf = (rates: GroupRates[]) => {
          const values = rates.flatMap((r, g) =>
            found.constrained[g] && r[metric] !== null ? [r[metric]!] : [],
          );
          return values.length < 2 ? null : Math.max(...values) - Math.min(...values);
        };
        const sizes = countOutcomes(encoding, rows.yTrue, scored.yPred).sizes;
        const accuracyBefore = accuracy(rows.yTrue, scored.yPred);
        const accuracyAfter = accuracy(rows.yTrue, found.yPred);
        const report = {
          kind: "warden.fairness_thresholds",
          model: manifest.name,
          version: manifest.version,
          manifest_sha256: manifest.manifestSha256,
          data: {
            file: basename(labelledPath),
            sha256: rows.sha256,
            rows: rows.yTrue.length,
            label_column: labelColumn,
          },
          applied: false,
          warning: DISPARATE_TREATMENT_WARNING,
          attributes: encoding.attributes,
          constraint: options.constraint,
          rate: metric,
          tolerance: options.tolerance,
          favourable_label: manifest.output.favorable_label,
          positive_label: manifest.output.positive_label,
          rule: `decide ${manifest.output.positive_label} when the score (P(${manifest.output.positive_label})) ≥ the group's threshold`,
          policy_threshold: policyThreshold,
          gap: { before: gapOf(before), after: gapOf(after) },
          accuracy: { before: accuracyBefore, after: accuracyAfter, cost: accuracyBefore - accuracyAfter },
          groups: encoding.groups.map((group, g) => ({
            group: group.label,
            rows: sizes[g]!,
            constrained: found.constrained[g]!,
            threshold: { before: policyThreshold, after: found.thresholds[g]! },
            before: before[g]!,
            after: after[g]!,
          })),
        };
        const lines = [
          `per-group thresholds for ${manifest.name} ${manifest.version} toward ${options.constraint} (${metric} gap ≤ ${options.tolerance}) over ${encoding.attributes.join(" × ")}:`,
          ...report.groups.map(
            (g) =>
              `  ${g.group}: ${g.constrained ? `threshold ${g.threshold.after}` : `keeps ${policyThreshold} (fewer than ${manifest.fairness.minGroupSize} rows or no favourable outcome)`}; ${metric} ${fmt(g.before[metric])} → ${fmt(g.after[metric])}`,
          ),
          `  ${metric} gap ${fmt(report.gap.before)} → ${fmt(report.gap.after)}; accuracy ${fmt(accuracyBefore)} → ${fmt(accuracyAfter)} (cost ${fmt(accuracyBefore - accuracyAfter)})`,
          `WARNING: ${DISPARATE_TREATMENT_WARNING}`,
        ];
        const summary = `${lines.join("\n")}\n`;
        if (options.out === undefined) io.stderr(summary);
        return withOutput(options.out, io, async (output) => {
          await output.write(`${JSON.stringify(report, null, 2)}\n`);
          return options.out === undefined ? "" : `${summary}wrote ${resolve(options.out)}\n`;
        });
      }),
    );

  fairness
    .command("reweigh")
    .description(
      "Reweighing weights for the next training round (Kamiran & Calders): each row of group g and label y gets " +
        "w(g, y) = P(g)·P(y) / P(g, y), which makes the weighted label independent of the group. Writes CSV: " +
        "line, row, the --by attributes' groups, label, weight, one line per input row in order.",
    )
    .argument("<manifest>", "the model's manifest (YAML)")
    .argument("<labelled>", "labelled rows (CSV): the training rows")
    .option(
      "--by <attributes>",
      "the groups: one attribute or an intersection, comma-separated (default: every one)",
    )
    .option("--label <column>", "the label column (default: policy.fairness.label_column, else label)")
    .requiredOption("--out <file>", "write the weights (CSV) here")
    .action((manifestPath: string, labelledPath: string, options: CommonOptions & { out: string }) =>
      run(async () => {
        const manifest = loadManifest(manifestPath);
        requireBinary(manifest);
        const { rows } = read(manifest, labelledPath, options);
        const encoding = groupsOf(manifest, rows, options.by);
        const { weights, cells } = reweighing(encoding.codes, encoding.groups.length, rows.yTrue);
        const header = ["line", "row", ...encoding.attributes, rows.labelColumn, "weight"];
        const out: (string | number)[][] = [header];
        for (let i = 0; i < weights.length; i++) {
          const group = encoding.groups[encoding.codes[i]!]!;
          out.push([
            rows.lines[i]!,
            rows.inputs[i]!.row,
            ...encoding.attributes.map((a) => group.values[a]!),
            rows.labels[i]!,
            weights[i]!,
          ]);
        }
        const favourable = manifest.output.favorable_label!;
        const other = manifest.output.labels!.find((l) => l !== favourable)!;
        const table = cells
          .filter((c) => c.count > 0)
          .map(
            (c) =>
              `  ${encoding.groups[c.group]!.label}, ${c.y === 1 ? favourable : other}: ${c.count} rows, weight ${c.weight.toFixed(4)}`,
          );
        return withOutput(options.out, io, async (output) => {
          await output.write(stringifyCsv(out));
          return `reweighing over ${encoding.attributes.join(" × ")} (w = P(g)·P(y) / P(g, y)):\n${table.join("\n")}\nwrote ${resolve(options.out)}\n`;
        });
      }),
    );
}

const fmt = (x: number | null): string => (x === null ? "—" : x.toFixed(4));
