import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import {
  defaultSigningKeyPath,
  loadPublicKey,
  openLedgerReader,
  uncommittedJournalEntries,
  verifyLedgerFully,
} from "../ledger/index.js";
import { type CliIo, EXIT, intOption, UsageError } from "./index.js";
import { addStoreOptions, type StoreOptions, storeLocation } from "./ledger-proofs.js";

/** `warden ledger verify [--data-dir]`: recompute the hash chain; print "ok N records" or the first bad one. */
export function ledgerVerifyCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const ledger = program.command("ledger").description("Inspect the decision ledger");
  addStoreOptions(ledger.command("verify"))
    .description(
      'Recompute the ledger\'s hash chain and check its signed checkpoints (signature, Merkle root, size); report the first broken record or checkpoint, or "ok N records"',
    )
    .option("--data-dir <dir>", "the server's data folder", "warden-data")
    .option(
      "--public-key <file>",
      "the checkpoint signing key's public half (default: <data-dir>/keys/ledger-ed25519.pem.pub when it exists)",
    )
    .option(
      "--anchor-seq <n>",
      "also require record n to exist with --anchor-hash (a head kept elsewhere: detects a truncated or rewritten tail)",
      intOption("--anchor-seq", 1, Number.MAX_SAFE_INTEGER),
    )
    .option("--anchor-hash <hex>", "the hash record --anchor-seq must have (64 hex digits)")
    .action((options: StoreOptions & { anchorSeq?: number; anchorHash?: string; publicKey?: string }) =>
      run(async () => {
        const dataDir = resolve(options.dataDir);
        const location = storeLocation(options);
        if ((options.anchorSeq === undefined) !== (options.anchorHash === undefined)) {
          throw new UsageError("--anchor-seq and --anchor-hash go together");
        }
        if (options.anchorHash !== undefined && !/^[0-9a-f]{64}$/.test(options.anchorHash)) {
          throw new UsageError(
            `--anchor-hash must be 64 lower-case hex digits; got ${JSON.stringify(options.anchorHash)}`,
          );
        }
        const keyPath = options.publicKey ?? `${defaultSigningKeyPath(dataDir)}.pub`;
        if (options.publicKey !== undefined && !existsSync(keyPath)) {
          throw new UsageError(`--public-key ${keyPath}: no such file`);
        }
        const publicKey = existsSync(keyPath) ? loadPublicKey(keyPath) : undefined;
        const full = await verifyLedgerFully(location, {
          ...(options.anchorSeq !== undefined
            ? { anchor: { seq: options.anchorSeq, hash: options.anchorHash! } }
            : {}),
          ...(publicKey ? { publicKey } : {}),
        });
        const report = full.chain;
        if (report.ok && full.checkpointProblem !== undefined) {
          const bad = full.checkpointProblem;
          io.stdout(`FAILED: checkpoint ${bad.tree_size}: ${bad.reason}\n`);
          io.stdout(`the hash chain of ${report.count} records verified\n`);
          return EXIT.failure;
        }
        if (report.ok) {
          io.stdout(`ok ${report.count} records\n`);
          if (full.checkpoints > 0) {
            io.stdout(
              `${full.checkpoints} signed checkpoint${full.checkpoints === 1 ? "" : "s"} verified (the latest covers ${full.latestCheckpoint} records); ` +
                (full.signaturesChecked
                  ? `signatures checked with ${keyPath}\n`
                  : `signatures NOT checked: no public key (pass --public-key)\n`),
            );
          }
          if (location.kind !== "sqlite") return EXIT.ok;
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
