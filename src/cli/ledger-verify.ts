import { resolve } from "node:path";
import type { Command } from "commander";
import { openLedgerReader, uncommittedJournalEntries, verifyLedgerParallel } from "../ledger/index.js";
import { type CliIo, EXIT, intOption, UsageError } from "./index.js";

/** `warden ledger verify [--data-dir]`: recompute the hash chain; print "ok N records" or the first bad one. */
export function ledgerVerifyCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const ledger = program.command("ledger").description("Inspect the decision ledger");
  ledger
    .command("verify")
    .description('Recompute the ledger\'s hash chain and report the first broken record, or "ok N records"')
    .option("--data-dir <dir>", "the server's data folder", "warden-data")
    .option(
      "--anchor-seq <n>",
      "also require record n to exist with --anchor-hash (a head kept elsewhere: detects a truncated or rewritten tail)",
      intOption("--anchor-seq", 1, Number.MAX_SAFE_INTEGER),
    )
    .option("--anchor-hash <hex>", "the hash record --anchor-seq must have (64 hex digits)")
    .action((options: { dataDir: string; anchorSeq?: number; anchorHash?: string }) =>
      run(async () => {
        const dataDir = resolve(options.dataDir);
        if ((options.anchorSeq === undefined) !== (options.anchorHash === undefined)) {
          throw new UsageError("--anchor-seq and --anchor-hash go together");
        }
        if (options.anchorHash !== undefined && !/^[0-9a-f]{64}$/.test(options.anchorHash)) {
          throw new UsageError(
            `--anchor-hash must be 64 lower-case hex digits; got ${JSON.stringify(options.anchorHash)}`,
          );
        }
        const report = await verifyLedgerParallel(
          dataDir,
          options.anchorSeq !== undefined
            ? { anchor: { seq: options.anchorSeq, hash: options.anchorHash! } }
            : {},
        );
        if (report.ok) {
          io.stdout(`ok ${report.count} records\n`);
          const reader = openLedgerReader(dataDir);
          let waiting: number;
          try {
            waiting = uncommittedJournalEntries(dataDir, (id) => reader.get(id) !== undefined);
          } finally {
            reader.close();
          }
          if (waiting > 0) {
            io.stdout(
              `${waiting} acknowledged record${waiting === 1 ? " waits" : "s wait"} in the journal ` +
                "(the server stopped before committing them); the next `warden serve` on this folder commits them\n",
            );
          }
          return EXIT.ok;
        }
        const bad = report.firstBad;
        io.stdout(`FAILED: record ${bad.seq}${bad.id ? ` (${bad.id})` : ""}: ${bad.reason}\n`);
        io.stdout(`${report.count} records before it verified\n`);
        return EXIT.failure;
      }),
    );
}
