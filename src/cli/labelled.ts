/**
 * Labelled rows for the offline fairness commands: a CSV with a header naming the model's features, the
 * sensitive attributes audited and a label column; every row validated as `warden predict` validates it, every
 * problem named by line and field. Scored through `warden predict`'s runtime and decision policy.
 */
import { createHash } from "node:crypto";
import { parse as parseCsv } from "csv-parse/sync";
import {
  type FairnessAttribute,
  MAX_LABELLED_BYTES,
  type Manifest,
  readBoundedFile,
} from "../config/index.js";
import { applyPolicy, coerceCsvCell, type FeatureValue, validateInstance } from "../decision/index.js";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import { CHUNK_ROWS, type InputRow, openScorer } from "./predict.js";
import { reasonOf } from "./stream-output.js";

/** Rows read from a labelled CSV. */
export interface LabelledRows {
  readonly path: string;
  readonly sha256: string;
  readonly labelColumn: string;
  /** The file line each row starts on (the header is line 1). */
  readonly lines: readonly number[];
  readonly inputs: readonly InputRow[];
  /** Subject values per audited attribute, one per row (null when missing). */
  readonly attributeValues: ReadonlyMap<string, readonly FeatureValue[]>;
  /** The label per row, as written. */
  readonly labels: readonly string[];
  /** 1 when the label is the favourable one. */
  readonly yTrue: Uint8Array;
}

/** The most bad rows named in an error (the count says how many there were). */
const SHOWN_PROBLEMS = 50;

function problemsError(path: string, problems: FieldProblem[], rows: number): WardenError {
  const shown = problems.slice(0, SHOWN_PROBLEMS);
  const more = problems.length - shown.length;
  return new WardenError(
    "WARDEN_ERR_INPUT_FILE",
    `${path}: ${rows} bad row${rows === 1 ? "" : "s"}; nothing was audited\n${shown
      .map((p) => `  ${p.field}: expected ${p.expected}, found ${p.found}${p.fix ? ` — ${p.fix}` : ""}`)
      .join("\n")}${more > 0 ? `\n  ... and ${more} more problems` : ""}`,
    { details: problems },
  );
}

/**
 * Read and validate a labelled CSV: the label column must hold one of the model's labels, the audited
 * attributes must be columns, and every row must be a valid request. Throws one error naming every bad row by
 * line and field (an audit over silently fewer rows would mislead).
 */
export function readLabelled(
  manifest: Manifest,
  path: string,
  labelColumn: string,
  attributes: readonly FairnessAttribute[],
): LabelledRows {
  let bytes: Buffer;
  try {
    bytes = readBoundedFile(path, MAX_LABELLED_BYTES, { pipes: true });
  } catch (error) {
    throw new WardenError("WARDEN_ERR_INPUT_FILE", `cannot read ${path}: ${reasonOf(error)}`, {
      details: [{ field: path, expected: "a readable CSV file of at most 256 MiB", found: reasonOf(error) }],
    });
  }
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parseCsv(bytes, {
      columns: true,
      bom: true,
      skip_empty_lines: true,
      info: true,
    }) as typeof records;
  } catch (error) {
    const line = (error as { lines?: number }).lines;
    throw new WardenError(
      "WARDEN_ERR_INPUT_FILE",
      `cannot read ${path}${line !== undefined ? `, line ${line}` : ""}: ${reasonOf(error)}`,
      { details: [{ field: `${path}:${line ?? "?"}`, expected: "CSV", found: reasonOf(error) }] },
    );
  }
  if (records.length === 0) {
    throw new WardenError("WARDEN_ERR_INPUT_FILE", `${path} has no rows to audit`, {
      details: [{ field: path, expected: "a header and at least one row", found: "no rows" }],
    });
  }
  const header = Object.keys(records[0]!.record);
  const missingColumns = [labelColumn, ...attributes.map((a) => a.name)].filter((c) => !header.includes(c));
  if (missingColumns.length > 0) {
    throw new WardenError(
      "WARDEN_ERR_INPUT_FILE",
      `${path}: no column ${missingColumns.map((c) => JSON.stringify(c)).join(", ")} (the columns are ${header.join(", ")})`,
      {
        details: missingColumns.map((c) => ({
          field: `${path}:1`,
          expected:
            c === labelColumn ? `a label column ${JSON.stringify(c)}` : `a column for the attribute ${c}`,
          found: "no such column",
          fix:
            c === labelColumn
              ? "name the label column with --label, or set policy.fairness.label_column"
              : `add the ${c} column, or leave ${c} out of --by`,
        })),
      },
    );
  }
  const labelSet = manifest.output.labels ?? [];
  const favourable = manifest.output.favorable_label;
  const problems: FieldProblem[] = [];
  let badRows = 0;
  const lines: number[] = [];
  const inputs: InputRow[] = [];
  const labels: string[] = [];
  const yTrue = new Uint8Array(records.length);
  const attributeValues = new Map<string, FeatureValue[]>(attributes.map((a) => [a.name, []]));
  // The first line of a record: csv-parse gives the last (a quoted field can span lines).
  let nextLine = 2;
  records.forEach(({ record, info }, i) => {
    const line = nextLine;
    nextLine = info.lines + 1;
    const features: Record<string, unknown> = {};
    const subject: Record<string, unknown> = {};
    for (const spec of manifest.features) {
      if (!Object.hasOwn(record, spec.name)) continue;
      const value = coerceCsvCell(spec, record[spec.name]);
      if (spec.sensitive) subject[spec.name] = value;
      else features[spec.name] = value;
    }
    const rowProblems: FieldProblem[] = [];
    const checked = validateInstance(manifest, features, subject, "");
    for (const p of checked.problems) {
      rowProblems.push({ ...p, field: `line ${line}, ${p.field.replace(/^(features|subject)\./, "")}` });
    }
    const label = record[labelColumn]!.trim();
    if (!labelSet.includes(label)) {
      rowProblems.push({
        field: `line ${line}, ${labelColumn}`,
        expected: `one of the model's labels (${labelSet.join(", ")})`,
        found: describeValue(record[labelColumn]),
      });
    }
    if (rowProblems.length > 0) {
      badRows++;
      problems.push(...rowProblems);
      return;
    }
    lines.push(line);
    inputs.push({ row: i + 1, features, subject });
    labels.push(label);
    yTrue[inputs.length - 1] = label === favourable ? 1 : 0;
    for (const a of attributes) attributeValues.get(a.name)!.push(checked.instance!.subject[a.name] ?? null);
  });
  if (problems.length > 0) throw problemsError(path, problems, badRows);
  return {
    path,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    labelColumn,
    lines,
    inputs,
    attributeValues,
    labels,
    yTrue,
  };
}

/** The model's score (P(positive label)) and decision per row, through `warden predict`'s runtime and policy. */
export async function scoreLabelled(
  manifest: Manifest,
  rows: LabelledRows,
): Promise<{ scores: Float64Array; decisions: string[]; yPred: Uint8Array }> {
  const n = rows.inputs.length;
  const scores = new Float64Array(n);
  const decisions: string[] = [];
  const yPred = new Uint8Array(n);
  const scorer = await openScorer(manifest);
  try {
    for (let start = 0; start < n; start += CHUNK_ROWS) {
      const chunk = rows.inputs.slice(start, start + CHUNK_ROWS);
      const { valid, results } = await scorer.score(chunk);
      if (valid.length !== chunk.length) throw new Error("a validated row was refused when scored");
      results.forEach((result, j) => {
        const outcome = applyPolicy(manifest, result);
        scores[start + j] = outcome.score;
        decisions.push(outcome.decision!);
        yPred[start + j] = outcome.decision === manifest.output.favorable_label ? 1 : 0;
      });
    }
  } finally {
    await scorer.close();
  }
  return { scores, decisions, yPred };
}

/** The model must be binary for a fairness audit: a selection is deciding the favourable label. */
export function requireBinary(manifest: Manifest): void {
  if (manifest.task !== "binary") {
    throw new WardenError(
      "WARDEN_ERR_USAGE",
      `${manifest.name} ${manifest.version} is a ${manifest.task} model; fairness audits need a binary one`,
      {
        details: [
          {
            field: `${manifest.manifestPath}#/task`,
            expected: "binary (a favourable and an adverse decision)",
            found: manifest.task,
          },
        ],
      },
    );
  }
}
