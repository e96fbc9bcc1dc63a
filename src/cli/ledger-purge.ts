import { resolve } from "node:path";
import type { Command } from "commander";
import { parseServerConfig, readServerConfigFile } from "../config/index.js";
import { type LedgerLocation, openLedgerReader } from "../ledger/index.js";
import { purgeSubjects } from "../privacy/index.js";
import { type CliIo, EXIT } from "./index.js";
import { timeOption } from "./ledger-export.js";

interface PurgeCommandOptions {
  dataDir?: string;
  config?: string;
  before?: number;
  dryRun?: boolean;
}

/**
 * `warden ledger purge [--data-dir] [--config] [--before T] [--dry-run]`: remove the subject data outside the
 * chain (vault salts and stored subjects) of decisions whose retention period has ended; refuse anything
 * younger. Records each purge as a `retention` ledger record; never deletes a ledger record.
 */
export function ledgerPurgeCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const ledger =
    program.commands.find((c) => c.name() === "ledger") ??
    program.command("ledger").description("Inspect the decision ledger");
  ledger
    .command("purge")
    .description(
      "Remove the personal data kept outside the hash chain (the subject vault's salts, pseudonyms and ciphertexts) " +
        "of decisions older than their model's retention period (policy.retention_days), never earlier. " +
        "Ledger records are never deleted: their commitments stay, and the purge is recorded as a `retention` record per model. " +
        "Run it while no server uses the folder.",
    )
    .option("--data-dir <dir>", "the server's data folder (default ./warden-data, or the config's data_dir)")
    .option("--config <file>", "the server configuration (for data_dir and a PostgreSQL ledger)")
    .option(
      "--before <time>",
      "only decisions made before this time (ISO-8601); refused if any of them is still within its retention period",
      timeOption("--before"),
    )
    .option("--dry-run", "report what would be removed, change nothing")
    .action((options: PurgeCommandOptions) =>
      run(async () => {
        const before = options.before === undefined ? undefined : new Date(options.before).toISOString();
        let dataDir = resolve(options.dataDir ?? "warden-data");
        let location: LedgerLocation = { kind: "sqlite", dataDir };
        if (options.config !== undefined) {
          const raw = readServerConfigFile(options.config);
          if (options.dataDir !== undefined) raw.data_dir = options.dataDir;
          const config = parseServerConfig(raw, options.config);
          dataDir = config.data_dir;
          location = config.ledger.postgres
            ? { kind: "postgres", url: config.ledger.postgres.url, schema: config.ledger.postgres.schema }
            : { kind: "sqlite", dataDir };
        }
        // A mistyped folder holds no ledger: say so, rather than "nothing to purge".
        if (location.kind === "sqlite") openLedgerReader(dataDir).close();
        const report = await purgeSubjects(dataDir, { before, dryRun: options.dryRun === true, location });
        const verb = report.dryRun ? "would remove" : "removed";
        for (const m of report.models) {
          const versions = Object.entries(m.versions)
            .map(([v, x]) => `${v}: ${x.count} (${x.retention_days} days)`)
            .join(", ");
          io.stdout(
            `${m.model}: ${verb} ${m.count} subject${m.count === 1 ? "" : "s"} of decisions from ${m.first_time} to ${m.last_time} [${versions}]${m.record_id ? `; ledger record ${m.record_id}` : ""}\n`,
          );
        }
        io.stdout(
          report.total === 0
            ? `nothing to purge: no stored subject of a decision before ${report.before} has reached the end of its retention period\n`
            : `${report.dryRun ? "dry run: " : ""}${verb} ${report.total} subject${report.total === 1 ? "" : "s"} in all; ledger records are kept (their commitments stay)\n`,
        );
        return EXIT.ok;
      }),
    );
}
