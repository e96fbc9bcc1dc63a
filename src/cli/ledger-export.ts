import { extname } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import {
  EXPORT_FORMATS,
  type ExportFormat,
  exportLedger,
  ISO_TIME_EXPECTED,
  parseIsoTime,
  type RecordFilter,
} from "../feedback/index.js";
import { RECORD_KINDS, type RecordKind } from "../ledger/index.js";
import { type CliIo, choiceOption, EXIT, UsageError } from "./index.js";
import { addStoreOptions, openRecordSource, type StoreOptions } from "./ledger-proofs.js";
import { OutputError, openStreamOutput, type StreamOutput } from "./stream-output.js";

/** Parse an ISO-8601 time flag to milliseconds since the epoch, for commander. */
export function timeOption(name: string) {
  return (value: string): number => {
    const time = parseIsoTime(value);
    if (time === undefined) {
      throw new InvalidArgumentError(`${name} must be ${ISO_TIME_EXPECTED}; got ${JSON.stringify(value)}`);
    }
    return time;
  };
}

/** `--kind k ...` (repeatable, several values each): record kinds from the closed list. */
function kindOption(value: string, previous: RecordKind[] | undefined): RecordKind[] {
  if (!(RECORD_KINDS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(
      `--kind must be one of ${RECORD_KINDS.join(", ")}; got ${JSON.stringify(value)}`,
    );
  }
  return [...(previous ?? []), value as RecordKind];
}

/** --format, else from --out's extension (.csv, .ndjson, .jsonl), else NDJSON. */
export function exportFormat(format: ExportFormat | undefined, out: string | undefined): ExportFormat {
  if (format !== undefined) return format;
  const ext = out === undefined ? "" : extname(out).toLowerCase();
  return ext === ".csv" ? "csv" : "ndjson";
}

/** --since must come before --until (or the command's flags of the same meaning). */
export function checkTimeRange(
  since: number | undefined,
  until: number | undefined,
  flags: readonly [string, string] = ["--since", "--until"],
): void {
  if (since !== undefined && until !== undefined && since >= until) {
    throw new UsageError(
      `${flags[0]} (${new Date(since).toISOString()}) must be earlier than ${flags[1]} (${new Date(until).toISOString()})`,
    );
  }
}

/**
 * Run `work` against an output opened on `out`, closing it afterwards. A write failure is reported in one
 * line with exit code 1 (the registry has no code for output failures, and main() prints a stack for errors
 * outside it).
 */
export async function withOutput(
  out: string | undefined,
  io: CliIo,
  work: (output: StreamOutput) => Promise<string>,
): Promise<number> {
  try {
    const output = await openStreamOutput(out, io);
    let summary: string;
    try {
      summary = await work(output);
    } finally {
      await output.close();
    }
    if (!output.closed) io.stderr(summary);
    return EXIT.ok;
  } catch (error) {
    if (!(error instanceof OutputError)) throw error;
    io.stderr(`warden: ${error.message}\n`);
    return EXIT.failure;
  }
}

interface LedgerExportOptions extends StoreOptions {
  dataDir: string;
  model?: string;
  since?: number;
  until?: number;
  kind?: RecordKind[];
  format?: ExportFormat;
  out?: string;
}

/** `warden ledger export`: stream the ledger's records, filtered, as NDJSON or CSV. */
export function ledgerExportCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const ledger =
    program.commands.find((c) => c.name() === "ledger") ??
    program.command("ledger").description("Inspect the decision ledger");
  addStoreOptions(ledger.command("export"))
    .description(
      "Stream ledger records in sequence order as NDJSON (one full record per line) or CSV (flattened body; see docs/architecture.md). " +
        "Reads one record at a time, so any size of ledger exports in bounded memory.",
    )
    .option("--data-dir <dir>", "the server's data folder", "warden-data")
    .option("--model <name>", "only records of this model")
    .option("--since <time>", "only records at or after this time (ISO-8601)", timeOption("--since"))
    .option("--until <time>", "only records before this time (ISO-8601)", timeOption("--until"))
    .option(
      "--kind <kind...>",
      `only records of these kinds (${RECORD_KINDS.join(", ")}); repeatable`,
      kindOption,
    )
    .option(
      "--format <format>",
      "ndjson or csv (default: from --out's extension, else ndjson)",
      choiceOption("--format", EXPORT_FORMATS),
    )
    .option("--out <file>", "write here (default: standard output)")
    .action((options: LedgerExportOptions) =>
      run(async () => {
        checkTimeRange(options.since, options.until);
        const format = exportFormat(options.format, options.out);
        const filter: RecordFilter = {
          model: options.model,
          since: options.since,
          until: options.until,
          kinds: options.kind,
        };
        // Open the ledger first: a missing one fails before --out is created.
        const store = await openRecordSource(options);
        try {
          return await withOutput(options.out, io, async (output) => {
            const count = await exportLedger(store.source, { filter, format }, async (text) => {
              await output.write(text);
              return !output.closed;
            });
            return `exported ${count} record${count === 1 ? "" : "s"} as ${format}\n`;
          });
        } finally {
          await store.close();
        }
      }),
    );
}
