import { createReadStream, existsSync, statSync } from "node:fs";
import { extname } from "node:path";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream";
import type { Command } from "commander";
import { CsvError, parse as parseCsv } from "csv-parse";
import { stringify as stringifyCsv } from "csv-stringify/sync";
import { DEVICES, type Device, loadManifest, type Manifest } from "../config/index.js";
import { applyPolicy, coerceCsvCell, type ValidInstance, validateInstance } from "../decision/index.js";
import { type FieldProblem, WardenError } from "../errors/index.js";
import type { RowResult } from "../runtime/batcher.js";
import { createWorkerPool, DynamicBatcher } from "../runtime/index.js";
import { type CliIo, choiceOption, EXIT, intOption, UsageError } from "./index.js";
import {
  type BatchExplainer,
  batchExplainerFor,
  checkExplainFlags,
  type ExplainFlags,
  explanationCells,
  explanationHeader,
} from "./predict-explain.js";
import { OutputError, openStreamOutput, reasonOf, type StreamOutput } from "./stream-output.js";

const FORMATS = ["csv", "ndjson"] as const;
type Format = (typeof FORMATS)[number];

interface PredictOptions extends ExplainFlags {
  device?: Device;
  out?: string;
  format?: Format;
  inputFormat?: Format;
}

/** Rows scored together: bounds memory for any input size while keeping batches full. */
export const CHUNK_ROWS = 4096;

function formatOf(path: string): Format | undefined {
  const ext = extname(path).toLowerCase();
  return ext === ".csv" ? "csv" : ext === ".ndjson" || ext === ".jsonl" ? "ndjson" : undefined;
}

export interface InputRow {
  readonly row: number;
  readonly features?: unknown;
  readonly subject?: unknown;
  /** A problem found while reading the row (unparsable JSON line). */
  readonly readProblem?: FieldProblem;
}

/**
 * The input is read as a stream, so it may be a file of any size or a pipe (`/dev/stdin`, `<(...)`); a device
 * (/dev/zero would never end) or a folder is refused before reading.
 */
function checkInputKind(path: string): void {
  const stats = statSync(path);
  if (stats.isFile() || stats.isFIFO()) return;
  const kind = stats.isDirectory()
    ? "a directory"
    : stats.isCharacterDevice() || stats.isBlockDevice()
      ? "a device"
      : "not a file";
  throw new WardenError("WARDEN_ERR_INPUT_FILE", `input file ${path} is ${kind}`, {
    details: [
      {
        field: "input",
        expected: "a CSV or NDJSON file, or a pipe",
        found: kind,
        fix: "name the file of rows to score",
      },
    ],
  });
}

/** The input file cannot be read or parsed; CSV errors carry the line csv-parse stopped at. */
function inputFileError(path: string, error: unknown): WardenError {
  const line = error instanceof CsvError && typeof error.lines === "number" ? `, line ${error.lines}` : "";
  return new WardenError("WARDEN_ERR_INPUT_FILE", `cannot read ${path}${line}: ${reasonOf(error)}`, {
    cause: error,
  });
}

/**
 * Rows from a reader, whose errors become input-file errors. Only the reader's own errors land in the catch:
 * a consumer that fails (the model, the output) or stops early closes this generator with return(), which
 * yield* passes on to the reader and which runs no catch.
 */
async function* labelReadErrors(path: string, rows: AsyncGenerator<InputRow>): AsyncGenerator<InputRow> {
  try {
    yield* rows;
  } catch (error) {
    throw inputFileError(path, error);
  }
}

/** The longest CSV record read (characters): a tabular row is far shorter; a file without line ends is not rows. */
const MAX_CSV_RECORD = 1024 * 1024;

async function* readCsv(path: string, manifest: Manifest, io: CliIo): AsyncGenerator<InputRow> {
  const byName = new Map(manifest.features.map((f) => [f.name, f]));
  let header: string[] | undefined;
  // The header decides how every row is read: a repeated name (one column would silently hide the other) or a
  // header naming no feature at all (another file, or not CSV) fails the file.
  const columns = (names: string[]): string[] => {
    header = names;
    const seen = new Set<string>();
    for (const name of names) {
      if (seen.has(name)) throw new Error(`the header names column ${JSON.stringify(name)} twice`);
      seen.add(name);
    }
    if (!names.some((n) => byName.has(n))) {
      throw new Error(
        `the header names none of ${manifest.name}'s features (${manifest.features.map((f) => f.name).join(", ")})`,
      );
    }
    return names;
  };
  const parser = parseCsv({
    columns,
    bom: true,
    skip_empty_lines: true,
    trim: false,
    max_record_size: MAX_CSV_RECORD,
  });
  // pipeline, not pipe: an unreadable file (a directory, no permission) destroys the parser with its error,
  // which the loop below then throws, and stopping early closes the file. The loop sees every error, so the
  // callback has nothing left to do.
  pipeline(createReadStream(path), parser, () => {});
  let row = 0;
  for await (const record of parser as AsyncIterable<Record<string, string>>) {
    row++;
    if (row === 1) {
      const ignored = Object.keys(record).filter((c) => !byName.has(c));
      if (ignored.length > 0)
        io.stderr(`note: ignoring columns that are not features: ${ignored.join(", ")}\n`);
    }
    const features: Record<string, unknown> = {};
    const subject: Record<string, unknown> = {};
    for (const spec of manifest.features) {
      if (!Object.hasOwn(record, spec.name)) continue;
      const value = coerceCsvCell(spec, record[spec.name]);
      if (spec.sensitive) subject[spec.name] = value;
      else features[spec.name] = value;
    }
    yield { row, features, subject };
  }
  if (header === undefined) throw new Error("the file is empty: expected a header row naming the features");
}

async function* readNdjson(path: string, manifest: Manifest): AsyncGenerator<InputRow> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  const sensitive = new Set(manifest.sensitiveFeatures.map((f) => f.name));
  let row = 0;
  for await (const line of lines) {
    if (line.trim() === "") continue;
    row++;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      yield {
        row,
        readProblem: { field: "line", expected: "one JSON object per line", found: (error as Error).message },
      };
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      yield {
        row,
        readProblem: { field: "line", expected: "a JSON object", found: JSON.stringify(value).slice(0, 40) },
      };
      continue;
    }
    const object = value as Record<string, unknown>;
    if ("features" in object) {
      yield { row, features: object.features, subject: object.subject };
      continue;
    }
    // A flat object: sensitive attributes go to the subject, everything else is a feature.
    const features: Record<string, unknown> = {};
    const subject: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(object)) (sensitive.has(k) ? subject : features)[k] = v;
    yield { row, features, subject };
  }
}

function describeProblems(problems: readonly FieldProblem[]): string {
  return problems.map((p) => `${p.field}: expected ${p.expected}, found ${p.found}`).join("; ");
}

/** `warden predict`: offline batch scoring through the same runtime and decision policy as the server. */
export function predictCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  program
    .command("predict")
    .description(
      "Score a CSV or NDJSON file offline with a model (same validation, runtime and decision policy as the server). " +
        "Writes one output row per input row, in order; invalid rows carry an error naming the row and field. Exit code 1 when any row was invalid.",
    )
    .argument("<manifest>", "the model's manifest (YAML)")
    .argument(
      "<input>",
      "input file: .csv (header row of feature names) or .ndjson/.jsonl (one object per line)",
    )
    .option("--out <file>", "write results here (default: standard output)")
    .option(
      "--format <format>",
      "output format: csv or ndjson (default: from --out's extension, else ndjson)",
      choiceOption("--format", FORMATS),
    )
    .option(
      "--device <device>",
      "run the model on cpu or cuda (overrides the manifest's runtime.device)",
      choiceOption("--device", DEVICES),
    )
    .option(
      "--input-format <format>",
      "input format when the extension does not tell: csv or ndjson",
      choiceOption("--input-format", FORMATS),
    )
    .option(
      "--explain",
      "add each row's explanation, the way the model's policy.explanations explains its decisions: TreeSHAP on " +
        "the model's worker (XGBoost), else KernelSHAP in an explainer thread (slower: tens of ms a row). CSV: " +
        "contribution_<feature> per model feature, base, reasons (texts joined by ' | '), reason_codes (joined " +
        "by '|'); NDJSON: an explanation object. Refused (exit 1) for a model whose policy says never",
    )
    .option(
      "--explain-samples <n>",
      "KernelSHAP coalitions per row (default 2 × features + 256; at least 2 × features)",
      intOption("--explain-samples", 1, 1_000_000),
    )
    .option(
      "--explain-seed <n>",
      "KernelSHAP sampling seed (default 0; the same seed gives the same values)",
      intOption("--explain-seed", 0, 2 ** 32 - 1),
    )
    .action((manifestPath: string, inputPath: string, options: PredictOptions) =>
      run(async () => {
        checkExplainFlags(options);
        const inputFormat = options.inputFormat ?? formatOf(inputPath);
        if (inputFormat === undefined) {
          throw new UsageError(
            `cannot tell the format of ${inputPath}: name it .csv or .ndjson, or pass --input-format`,
          );
        }
        if (!existsSync(inputPath)) {
          throw new WardenError("WARDEN_ERR_INPUT_FILE", `input file ${inputPath} does not exist`);
        }
        checkInputKind(inputPath);
        const format: Format =
          options.format ?? (options.out ? (formatOf(options.out) ?? "ndjson") : "ndjson");
        const manifest = loadManifest(manifestPath, { device: options.device });
        const explainer = batchExplainerFor(manifest, options);
        try {
          return await score(manifest, inputPath, inputFormat, format, options.out, explainer, io);
        } catch (error) {
          // main() prints a stack for errors outside the registry, which has no code for output failures.
          if (!(error instanceof OutputError)) throw error;
          io.stderr(`warden: ${error.message}\n`);
          return EXIT.failure;
        } finally {
          await explainer?.close();
        }
      }),
    );
}

interface Tally {
  readonly total: number;
  readonly invalid: number;
  readonly seconds: number;
}

async function score(
  manifest: Manifest,
  inputPath: string,
  inputFormat: Format,
  format: Format,
  outPath: string | undefined,
  explainer: BatchExplainer | undefined,
  io: CliIo,
): Promise<number> {
  const output = await openStreamOutput(outPath, io, "results");
  let tally: Tally;
  try {
    tally = await scoreRows(manifest, inputPath, inputFormat, format, output, explainer, io);
  } finally {
    await output.close();
  }
  const { total, invalid, seconds } = tally;
  // A reader that closed standard output has what it wanted: stop without a summary (it would count only the
  // rows scored so far). The exit code is as if the input had ended there, not 1 for the closed pipe: nothing
  // failed, and `set -o pipefail` scripts that pipe into head must not break.
  if (!output.closed) {
    io.stderr(
      `scored ${total - invalid} of ${total} rows with ${manifest.name}@${manifest.version} in ${seconds.toFixed(2)} s${invalid > 0 ? `; ${invalid} invalid` : ""}\n`,
    );
  }
  return invalid > 0 ? EXIT.failure : EXIT.ok;
}

/** Validates rows and scores the valid ones, as `warden predict` does; reused by the offline audits. */
export interface Scorer {
  /** One check per row, the valid instances in order, and the model's result for each of them. */
  score(
    chunk: readonly InputRow[],
    explainer?: BatchExplainer,
  ): Promise<{
    checked: { instance?: ValidInstance; problems: FieldProblem[] }[];
    valid: ValidInstance[];
    results: RowResult[];
  }>;
  close(): Promise<void>;
}

/** The model's worker pool and an offline batcher: the runtime `warden predict` scores with. */
export async function openScorer(manifest: Manifest): Promise<Scorer> {
  const executor = await createWorkerPool(manifest);
  const batcher = new DynamicBatcher(
    // Offline: no queue limit or timeout pressure, batches as large as the manifest allows.
    { ...manifest.batching, max_queue_size: CHUNK_ROWS, timeout_ms: 3_600_000, max_queue_delay_us: 0 },
    executor,
    manifest.modelFeatures.length,
  );
  return {
    async score(chunk, explainer) {
      const checked = chunk.map((r) =>
        r.readProblem ? { problems: [r.readProblem] } : validateInstance(manifest, r.features, r.subject, ""),
      );
      const valid = checked.flatMap((c) => (c.instance ? [c.instance] : []));
      const results = await batcher.submit(
        valid.map((v) => v.row),
        explainer?.tasksFor(valid),
      );
      return { checked, valid, results };
    },
    async close() {
      batcher.close();
      await executor.close();
    },
  };
}

async function scoreRows(
  manifest: Manifest,
  inputPath: string,
  inputFormat: Format,
  format: Format,
  output: StreamOutput,
  explainer: BatchExplainer | undefined,
  io: CliIo,
): Promise<Tally> {
  const scorer = await openScorer(manifest);
  const labels = manifest.task === "regression" ? [] : [...(manifest.output.labels ?? ["0", "1"])];
  let total = 0;
  let invalid = 0;
  const started = performance.now();
  const flush = async (chunk: InputRow[]) => {
    const { checked, valid, results } = await scorer.score(chunk, explainer);
    const explanations = explainer ? await explainer.explain(valid, results) : undefined;
    const blankExplanation = explainer ? explanationCells(manifest, undefined) : [];
    let next = 0;
    const out: string[] = [];
    chunk.forEach((r, i) => {
      const c = checked[i]!;
      total++;
      if (!c.instance) {
        invalid++;
        const message = describeProblems(c.problems);
        io.stderr(`row ${r.row}: ${message}\n`);
        out.push(
          format === "csv"
            ? stringifyCsv([[r.row, "", "", ...labels.map(() => ""), ...blankExplanation, message]])
            : `${JSON.stringify({ row: r.row, error: c.problems })}\n`,
        );
        return;
      }
      const explanation = explanations?.[next];
      let outcome: ReturnType<typeof applyPolicy>;
      try {
        outcome = applyPolicy(manifest, results[next++]!);
      } catch (error) {
        // The model gave this row an output no decision can be made on (a non-finite value): reported as the
        // row's error, like an invalid row; the others are scored.
        invalid++;
        const problem = {
          field: "output",
          expected: "a finite model output",
          found: (error as Error).message.slice(0, 300),
        };
        io.stderr(`row ${r.row}: ${problem.found}\n`);
        out.push(
          format === "csv"
            ? stringifyCsv([[r.row, "", "", ...labels.map(() => ""), ...blankExplanation, problem.found]])
            : `${JSON.stringify({ row: r.row, error: [problem] })}\n`,
        );
        return;
      }
      out.push(
        format === "csv"
          ? stringifyCsv([
              [
                r.row,
                outcome.decision ?? "",
                outcome.score,
                ...labels.map((l) => outcome.probabilities?.[l] ?? ""),
                ...(explainer ? explanationCells(manifest, explanation) : []),
                "",
              ],
            ])
          : `${JSON.stringify({
              row: r.row,
              decision: outcome.decision,
              score: outcome.score,
              ...(outcome.probabilities ? { probabilities: outcome.probabilities } : {}),
              ...(explanation ? { explanation } : {}),
            })}\n`,
      );
    });
    await output.write(out.join(""));
  };
  try {
    if (format === "csv") {
      await output.write(
        stringifyCsv([
          [
            "row",
            "decision",
            "score",
            ...labels.map((l) => `p_${l}`),
            ...(explainer ? explanationHeader(manifest) : []),
            "error",
          ],
        ]),
      );
    }
    // KernelSHAP takes tens of ms a row: smaller chunks keep its results coming.
    const chunkRows = explainer?.rowsPerChunk ?? CHUNK_ROWS;
    let chunk: InputRow[] = [];
    const rows = labelReadErrors(
      inputPath,
      inputFormat === "csv" ? readCsv(inputPath, manifest, io) : readNdjson(inputPath, manifest),
    );
    for await (const row of rows) {
      chunk.push(row);
      if (chunk.length === chunkRows) {
        await flush(chunk);
        chunk = [];
        if (output.closed) break;
      }
    }
    if (chunk.length > 0 && !output.closed) await flush(chunk);
  } finally {
    await scorer.close();
  }
  return { total, invalid, seconds: (performance.now() - started) / 1000 };
}
