/**
 * `warden ledger checkpoint | prove | consistency`: signed Merkle checkpoints of the ledger and the proofs
 * they allow (see src/ledger/checkpoints.ts), for the embedded SQLite ledger or a PostgreSQL one.
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import { readerSource, type SnapshotReader } from "../feedback/index.js";
import {
  type CheckpointSource,
  defaultSigningKeyPath,
  type LedgerLocation,
  ledgerPath,
  loadOrCreateSigningKey,
  makeCheckpoint,
  openLedgerBackend,
  openLedgerReader,
  proveConsistency,
  proveInclusion,
  sqliteCheckpoints,
} from "../ledger/index.js";
import { type CliIo, EXIT, intOption, UsageError } from "./index.js";

/** Flags every ledger command shares: where the ledger is. */
export interface StoreOptions {
  readonly dataDir: string;
  readonly postgresUrl?: string;
  readonly postgresSchema?: string;
}

/** Add `--postgres-url` and `--postgres-schema` to a ledger command. */
export function addStoreOptions(command: Command): Command {
  return command
    .option(
      "--postgres-url <url>",
      "use the PostgreSQL ledger at this URL instead of <data-dir>/ledger.sqlite",
    )
    .option("--postgres-schema <name>", "the PostgreSQL schema of the ledger", "warden");
}

/**
 * The ledger the flags name.
 *
 * @throws UsageError when the PostgreSQL flags are malformed.
 */
export function storeLocation(options: StoreOptions): LedgerLocation {
  if (options.postgresUrl === undefined) return { kind: "sqlite", dataDir: resolve(options.dataDir) };
  if (!/^postgres(ql)?:\/\//.test(options.postgresUrl)) {
    throw new UsageError(
      `--postgres-url must start with postgres:// or postgresql://; got ${JSON.stringify(options.postgresUrl)}`,
    );
  }
  const schema = options.postgresSchema ?? "warden";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new UsageError(
      `--postgres-schema must be lower-case letters, digits and _; got ${JSON.stringify(schema)}`,
    );
  }
  return { kind: "postgres", url: options.postgresUrl, schema };
}

/** The records of the ledger the flags name, for the exports; `close` when done. */
export async function openRecordSource(
  options: StoreOptions,
): Promise<{ source: SnapshotReader; close: () => Promise<void> }> {
  const location = storeLocation(options);
  if (location.kind === "sqlite") {
    const sqlite = openLedgerReader(location.dataDir);
    return { source: readerSource(sqlite), close: async () => sqlite.close() };
  }
  const backend = await openLedgerBackend(location);
  return { source: backend, close: () => backend.close() };
}

/** Run `body` with the checkpoint source of the ledger the flags name, closing it afterwards. */
async function withCheckpoints<T>(
  options: StoreOptions,
  body: (source: CheckpointSource) => Promise<T>,
): Promise<T> {
  const location = storeLocation(options);
  if (location.kind === "sqlite") {
    // A missing file or a database that is no ledger gets the same clear error as `warden ledger verify`.
    openLedgerReader(location.dataDir).close();
    // Its own connection: this works beside a running server, which keeps the records' writer connection.
    const source = sqliteCheckpoints(ledgerPath(location.dataDir));
    try {
      return await body(source);
    } finally {
      source.close();
    }
  }
  const store = await openLedgerBackend(location);
  try {
    return await body(store.checkpoints);
  } finally {
    await store.close();
  }
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

export function ledgerProofCommands(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const ledger = program.commands.find((c) => c.name() === "ledger");
  if (ledger === undefined) throw new Error("the ledger command must be registered first");

  addStoreOptions(
    ledger
      .command("checkpoint")
      .description(
        "Sign a Merkle checkpoint (tree head) over every record so far and store it beside the records; prints it",
      )
      .option("--data-dir <dir>", "the server's data folder", "warden-data")
      .option("--key <file>", "Ed25519 private key (PKCS#8 PEM; created if missing)", undefined),
  ).action((options: StoreOptions & { key?: string }) =>
    run(async () => {
      const keyPath = resolve(options.key ?? defaultSigningKeyPath(resolve(options.dataDir)));
      // The key is made only once the ledger is found: a mistyped folder gets an error, not a new key.
      const checkpoint = await withCheckpoints(options, (source) => {
        const key = loadOrCreateSigningKey(keyPath);
        if (key.created) io.stderr(`created signing key ${key.path} (public half ${key.publicKeyPath})\n`);
        return makeCheckpoint(source, key);
      });
      io.stdout(json(checkpoint.sth));
      return EXIT.ok;
    }),
  );

  addStoreOptions(
    ledger
      .command("prove")
      .argument("<id>", "a decision id (or any record's id)")
      .description(
        "Print an inclusion proof that the record is in the ledger as of the latest checkpoint (or --tree-size), checked before it is printed",
      )
      .option("--data-dir <dir>", "the server's data folder", "warden-data")
      .option(
        "--tree-size <n>",
        "prove against the checkpoint of this size",
        intOption("--tree-size", 1, Number.MAX_SAFE_INTEGER),
      ),
  ).action((id: string, options: StoreOptions & { treeSize?: number }) =>
    run(async () => {
      const evidence = await withCheckpoints(options, (source) =>
        proveInclusion(source, id, options.treeSize),
      );
      io.stdout(json(evidence));
      return EXIT.ok;
    }),
  );

  addStoreOptions(
    ledger
      .command("consistency")
      .argument(
        "<old-size>",
        "the earlier checkpoint's size",
        intOption("<old-size>", 0, Number.MAX_SAFE_INTEGER),
      )
      .argument(
        "<new-size>",
        "the later checkpoint's size",
        intOption("<new-size>", 0, Number.MAX_SAFE_INTEGER),
      )
      .description(
        "Print a consistency proof that the later checkpoint extends the earlier one (nothing before it was changed), checked before it is printed",
      )
      .option("--data-dir <dir>", "the server's data folder", "warden-data"),
  ).action((oldSize: number, newSize: number, options: StoreOptions) =>
    run(async () => {
      if (oldSize > newSize)
        throw new UsageError(`<old-size> ${oldSize} is larger than <new-size> ${newSize}`);
      const evidence = await withCheckpoints(options, (source) => proveConsistency(source, oldSize, newSize));
      io.stdout(json(evidence));
      return EXIT.ok;
    }),
  );
}
