import { resolve } from "node:path";
import type { Command } from "commander";
import { verifyLedger } from "../ledger/index.js";
import { type CliIo, EXIT } from "./index.js";

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
    .action((options: { dataDir: string }) =>
      run(async () => {
        const dataDir = resolve(options.dataDir);
        const report = verifyLedger(dataDir);
        if (report.ok) {
          io.stdout(`ok ${report.count} records\n`);
          return EXIT.ok;
        }
        const bad = report.firstBad;
        io.stdout(`FAILED: record ${bad.seq}${bad.id ? ` (${bad.id})` : ""}: ${bad.reason}\n`);
        io.stdout(`${report.count} records before it verified\n`);
        return EXIT.failure;
      }),
    );
}
