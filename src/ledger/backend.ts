/**
 * The ledger store as every backend offers it: asynchronous, so that an embedded SQLite file and a shared
 * PostgreSQL database stand behind the same interface (and the same test suite, store-suite.ts).
 */
import type { KeyObject } from "node:crypto";
import {
  type CheckpointProblem,
  type CheckpointSource,
  checkCheckpoints,
  type StoredCheckpoint,
  sqliteCheckpoints,
} from "./checkpoints.js";
import { leafHash } from "./merkle.js";
import {
  type ChainPosition,
  type LedgerStore,
  ledgerPath,
  openSqliteLedger,
  type PreparedEntry,
  type ScanOptions,
} from "./sqlite-store.js";
import type { LedgerRecord, ReviewSources } from "./types.js";
import { type VerifyOptions, type VerifyResult, verifyLedgerParallel, verifyRowStream } from "./verify.js";

/** Where a ledger lives. */
export type LedgerLocation =
  | { readonly kind: "sqlite"; readonly dataDir: string }
  | {
      readonly kind: "postgres";
      /** A libpq connection string, e.g. `postgres://postgres@127.0.0.1:5432/warden`. */
      readonly url: string;
      /** PostgreSQL schema holding the ledger's tables (default `warden`). */
      readonly schema?: string;
    };

/** An append-only, hash-chained store of ledger records. */
export interface LedgerBackend {
  /** For messages: the file, or the database and schema. */
  readonly description: string;
  /**
   * Append entries in one transaction, chaining each to the ledger's last record. All or none are stored.
   * Safe to call from several processes at once on a shared backend: appends are serialised, so the ledger
   * stays one verifiable chain.
   *
   * @throws WardenError WARDEN_ERR_LEDGER (duplicate id, storage failure, store closed)
   */
  appendPrepared(entries: readonly PreparedEntry[]): Promise<ChainPosition[]>;
  /** The record with this id, or undefined. */
  get(id: string): Promise<LedgerRecord | undefined>;
  /** Records in sequence order, read a page at a time. */
  scan(options?: ScanOptions): AsyncIterableIterator<LedgerRecord>;
  /** What points to a decision, through an index (see LedgerReader.linked). */
  linked(decisionId: string, afterSeq?: number, limit?: number): Promise<LedgerRecord[]>;
  /** The latest record of `kind` that points to a decision (see LedgerReader.latestLinked). */
  latestLinked(decisionId: string, kind: string): Promise<LedgerRecord | undefined>;
  /** What may have put a decision in the review queue, a stretch at a time (see LedgerReader.reviewSources). */
  reviewSources(afterSeq: number, limit: number): Promise<ReviewSources>;
  /** Number of records (the last sequence number). */
  count(): Promise<number>;
  /** Hash of the last record, or the genesis hash when empty. */
  lastHash(): Promise<string>;
  /** Signed Merkle checkpoints stored beside the records (checkpoints.ts). */
  readonly checkpoints: CheckpointSource;
  /** Close; later calls fail. Idempotent. */
  close(): Promise<void>;
}

/** The embedded SQLite store behind the asynchronous interface. */
export function sqliteBackend(store: LedgerStore): LedgerBackend {
  let checkpoints: ReturnType<typeof sqliteCheckpoints> | undefined;
  const source = () => {
    checkpoints ??= sqliteCheckpoints(store.file);
    return checkpoints;
  };
  return {
    checkpoints: {
      rows: (afterSeq) => source().rows(afterSeq),
      page: (afterSeq, limit) => source().page(afterSeq, limit),
      checkpoints: () => source().checkpoints(),
      latestCheckpoint: () => source().latestCheckpoint(),
      saveCheckpoint: (c) => source().saveCheckpoint(c),
    },
    description: store.file,
    appendPrepared: async (entries) => store.appendPrepared(entries),
    get: async (id) => store.get(id),
    async *scan(options) {
      yield* store.scan(options);
    },
    linked: async (decisionId, afterSeq, limit) => store.linked(decisionId, afterSeq, limit),
    latestLinked: async (decisionId, kind) => store.latestLinked(decisionId, kind),
    reviewSources: async (afterSeq, limit) => store.reviewSources(afterSeq, limit),
    count: async () => store.count(),
    lastHash: async () => store.lastHash(),
    close: async () => {
      checkpoints?.close();
      checkpoints = undefined;
      store.close();
    },
  };
}

/**
 * Open (creating or migrating it if needed) the ledger at `location`.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when it cannot be opened.
 */
export async function openLedgerBackend(
  location: LedgerLocation,
  options: {
    /** SQLite: see SqliteLedgerOptions. */
    synchronous?: "normal" | "full";
    /** SQLite: see SqliteLedgerOptions (default true). */
    autoCheckpoint?: boolean;
    /** PostgreSQL: the name recorded with each record this process appends (default host:pid). */
    writer?: string;
  } = {},
): Promise<LedgerBackend> {
  if (location.kind === "sqlite") {
    return sqliteBackend(
      openSqliteLedger(location.dataDir, {
        ...(options.synchronous ? { synchronous: options.synchronous } : {}),
        ...(options.autoCheckpoint === false ? { autoCheckpoint: false } : {}),
      }),
    );
  }
  const { openPostgresLedger } = await import("./postgres-store.js");
  return openPostgresLedger(location.url, {
    ...(location.schema ? { schema: location.schema } : {}),
    ...(options.writer ? { writer: options.writer } : {}),
  });
}

/**
 * Verify the ledger at `location` (see verifyLedger for the checks): SQLite in one read transaction,
 * PostgreSQL a page at a time.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the ledger cannot be opened.
 */
export async function verifyLedgerAt(
  location: LedgerLocation,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  if (location.kind === "sqlite") return verifyLedgerParallel(location.dataDir, options);
  const { openPostgresLedger, isPostgresLedger } = await import("./postgres-store.js");
  const store = await openPostgresLedger(location.url, location.schema ? { schema: location.schema } : {});
  try {
    if (!isPostgresLedger(store)) throw new Error("unreachable");
    const chain = await verifyRowStream(store.rows(), options);
    if (!chain.ok) return chain;
    // The link column (what GET /v1/decisions/{id}/history reads) must say what the hashed entries say.
    const problem = await store.linkProblem();
    return problem === undefined
      ? chain
      : {
          ok: false,
          count: problem.seq - 1,
          firstBad: { seq: problem.seq, id: problem.id, reason: problem.reason },
        };
  } finally {
    await store.close();
  }
}

/** The outcome of {@link verifyLedgerFully}: the hash chain, then the signed checkpoints. */
export interface FullVerifyResult {
  readonly chain: VerifyResult;
  /** Checkpoints checked (none when the chain already failed). */
  readonly checkpoints: number;
  /** The largest checkpoint's size, if any. */
  readonly latestCheckpoint?: number;
  /** Whether signatures were checked (a public key was given). */
  readonly signaturesChecked: boolean;
  /** The first bad checkpoint, when one is bad. */
  readonly checkpointProblem?: CheckpointProblem;
}

/**
 * Verify everything: the hash chain (verifyLedger's checks), then every stored checkpoint: its signature
 * (with `publicKey`), its Merkle root recomputed from the records, and that the ledger still holds as many
 * records as each checkpoint covers (so records cut off the end are detected without an anchor).
 */
export async function verifyLedgerFully(
  location: LedgerLocation,
  options: VerifyOptions & { publicKey?: KeyObject } = {},
): Promise<FullVerifyResult> {
  const signaturesChecked = options.publicKey !== undefined;
  let chain: VerifyResult;
  let leaves: Iterable<Uint8Array>;
  let stored: StoredCheckpoint[];
  if (location.kind === "sqlite") {
    let bytes: Buffer = Buffer.alloc(0);
    chain = await verifyLedgerParallel(location.dataDir, {
      ...options,
      onLeaves: (b) => {
        bytes = b;
      },
    });
    leaves = (function* () {
      for (let i = 0; i < bytes.length; i += 32) yield bytes.subarray(i, i + 32);
    })();
    const source = sqliteCheckpoints(ledgerPath(location.dataDir), { readonly: true });
    try {
      stored = await source.checkpoints();
    } finally {
      source.close();
    }
  } else {
    chain = await verifyLedgerAt(location, options);
    const store = await openLedgerBackend(location);
    try {
      stored = await store.checkpoints.checkpoints();
      const all: Buffer[] = [];
      if (chain.ok) for await (const row of store.checkpoints.rows(0)) all.push(leafHash(row[6]));
      leaves = all;
    } finally {
      await store.close();
    }
  }
  const latest = stored.length === 0 ? {} : { latestCheckpoint: stored[stored.length - 1]!.sth.tree_size };
  if (!chain.ok) return { chain, checkpoints: 0, signaturesChecked, ...latest };
  const problem = checkCheckpoints(stored, leaves, options.publicKey);
  return {
    chain,
    checkpoints: stored.length,
    signaturesChecked,
    ...latest,
    ...(problem ? { checkpointProblem: problem } : {}),
  };
}
