import { extname } from "node:path";
import type { Command } from "commander";
import { loadManifest } from "../config/index.js";
import { EXPORT_FORMATS, type ExportFormat, exportTraining } from "../feedback/index.js";
import { type CliIo, choiceOption, UsageError } from "./index.js";
import { checkTimeRange, timeOption, withOutput } from "./ledger-export.js";
import { addStoreOptions, openRecordSource, type StoreOptions } from "./ledger-proofs.js";

interface TrainingOptions extends StoreOptions {
  model: string;
  dataDir: string;
  since?: number;
  until?: number;
  format?: ExportFormat;
  out?: string;
  manifest?: string;
}

/** --format, else from --out's extension (.ndjson, .jsonl), else CSV. */
function trainingFormat(format: ExportFormat | undefined, out: string | undefined): ExportFormat {
  if (format !== undefined) return format;
  const ext = out === undefined ? "" : extname(out).toLowerCase();
  return ext === ".ndjson" || ext === ".jsonl" ? "ndjson" : "csv";
}

/** `warden export training`: a model's decision inputs joined with their final labels. */
export function exportTrainingCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const exports =
    program.commands.find((c) => c.name() === "export") ??
    program.command("export").description("Export data built from the ledger");
  addStoreOptions(exports.command("training"))
    .description(
      "Join a model's decision inputs with their final labels (the latest outcome recorded for each decision): " +
        "one row per labelled decision with decision_id, time, version, the input features, label, label_source, " +
        "label_record_id and label_observed_at. Sensitive attributes are not features and are left out. " +
        "Memory grows with the number of outcomes, not with the ledger.",
    )
    .requiredOption("--model <name>", "the model whose decisions to export")
    .option("--data-dir <dir>", "the server's data folder", "warden-data")
    .option("--since <time>", "only decisions made at or after this time (ISO-8601)", timeOption("--since"))
    .option("--until <time>", "only decisions made before this time (ISO-8601)", timeOption("--until"))
    .option(
      "--format <format>",
      "csv or ndjson (default: from --out's extension, else csv)",
      choiceOption("--format", EXPORT_FORMATS),
    )
    .option("--out <file>", "write here (default: standard output)")
    .option("--manifest <file>", "the model's manifest: features in its order (default: sorted by name)")
    .action((options: TrainingOptions) =>
      run(async () => {
        checkTimeRange(options.since, options.until);
        if (options.model.trim() === "") throw new UsageError("--model must name a model");
        const format = trainingFormat(options.format, options.out);
        let featureOrder: string[] | undefined;
        if (options.manifest !== undefined) {
          const manifest = loadManifest(options.manifest, { checkArtifact: false });
          if (manifest.name !== options.model) {
            throw new UsageError(
              `--manifest ${options.manifest} is for model ${JSON.stringify(manifest.name)}, not --model ${JSON.stringify(options.model)}`,
            );
          }
          featureOrder = manifest.modelFeatures.map((f) => f.name);
        }
        // Open the ledger first: a missing one fails before --out is created.
        const store = await openRecordSource(options);
        try {
          return await withOutput(options.out, io, async (output) => {
            const summary = await exportTraining(
              store.source,
              { model: options.model, since: options.since, until: options.until, format, featureOrder },
              async (text) => {
                await output.write(text);
                return !output.closed;
              },
            );
            return (
              `exported ${summary.rows} labelled decision${summary.rows === 1 ? "" : "s"} of ${options.model} as ${format}` +
              `${summary.unlabelled > 0 ? ` (${summary.unlabelled} without an outcome left out)` : ""}\n`
            );
          });
        } finally {
          await store.close();
        }
      }),
    );
}
