import { WardenError } from "../errors/index.js";
import type { LedgerStore } from "./sqlite-store.js";
import type { LedgerEntry, LedgerRecord } from "./types.js";

/** Options of {@link createLedgerWriter}. */
export interface LedgerWriterOptions {
  /** Commit at once when this many entries are queued, without waiting for the next tick (default 512). */
  readonly maxBatch?: number;
  /**
   * Called after each committed transaction with its records (in sequence order), for metrics. It runs after
   * the commit and cannot affect the ledger: an exception it throws is ignored.
   */
  readonly onCommit?: (records: readonly LedgerRecord[]) => void;
}

/** Counters for metrics; all start at 0 when the writer is created. */
export interface LedgerWriterStats {
  /** Entries committed to the ledger. */
  readonly entriesWritten: number;
  /** Entries whose write was rejected. */
  readonly entriesFailed: number;
  /** Transactions committed. */
  readonly batches: number;
  /** Entries in the last committed transaction. */
  readonly lastBatchSize: number;
  /** Entries waiting for the next commit. */
  readonly queued: number;
}

/** Group-committing front of a {@link LedgerStore}. The only writer of its store. */
export interface LedgerWriter {
  /**
   * Queue an entry. It is committed with the other entries queued in the same event-loop turn, in one
   * transaction; the promise resolves with the stored record only after that transaction has committed, so a
   * caller that waits for it before answering never acknowledges a decision that is not in the ledger
   * (durable as far as the store's `synchronous` option promises: across a process crash by default).
   *
   * @throws (rejects) WardenError WARDEN_ERR_LEDGER when this entry cannot be stored (invalid, duplicate id,
   *   disk error); WARDEN_ERR_SHUTTING_DOWN once {@link LedgerWriter.close} has been called.
   */
  write(entry: LedgerEntry): Promise<LedgerRecord>;
  /** Commit everything queued so far; resolves once it is committed (or rejected). */
  drain(): Promise<void>;
  /** Refuse new writes, commit everything queued, then close the store. Idempotent. */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  stats(): LedgerWriterStats;
}

/**
 * A writer that batches concurrent {@link LedgerWriter.write} calls into few transactions (group commit):
 * one commit, and with `synchronous: "full"` one fsync, serves every request of an event-loop turn.
 *
 * @throws RangeError when `maxBatch` is not a positive integer.
 */
export function createLedgerWriter(store: LedgerStore, options: LedgerWriterOptions = {}): LedgerWriter {
  const maxBatch = options.maxBatch ?? 512;
  if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError("maxBatch must be an integer ≥ 1");
  }
  return new GroupCommitWriter(store, maxBatch, options.onCommit);
}

interface Pending {
  readonly entry: LedgerEntry;
  readonly resolve: (record: LedgerRecord) => void;
  readonly reject: (error: unknown) => void;
}

class GroupCommitWriter implements LedgerWriter {
  readonly #store: LedgerStore;
  readonly #maxBatch: number;
  readonly #onCommit: ((records: readonly LedgerRecord[]) => void) | undefined;
  #queue: Pending[] = [];
  #tick: NodeJS.Immediate | undefined;
  #closing: Promise<void> | undefined;
  #entriesWritten = 0;
  #entriesFailed = 0;
  #batches = 0;
  #lastBatchSize = 0;

  constructor(
    store: LedgerStore,
    maxBatch: number,
    onCommit: ((records: readonly LedgerRecord[]) => void) | undefined,
  ) {
    this.#store = store;
    this.#maxBatch = maxBatch;
    this.#onCommit = onCommit;
  }

  write(entry: LedgerEntry): Promise<LedgerRecord> {
    if (this.#closing !== undefined) {
      return Promise.reject(
        new WardenError(
          "WARDEN_ERR_SHUTTING_DOWN",
          "The decision ledger is closing; no new decisions are recorded",
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, resolve, reject });
      if (this.#queue.length >= this.#maxBatch) this.#flush();
      else this.#tick ??= setImmediate(() => this.#flush());
    });
  }

  async drain(): Promise<void> {
    this.#flush();
  }

  close(): Promise<void> {
    this.#closing ??= this.drain().then(() => this.#store.close());
    return this.#closing;
  }

  stats(): LedgerWriterStats {
    return {
      entriesWritten: this.#entriesWritten,
      entriesFailed: this.#entriesFailed,
      batches: this.#batches,
      lastBatchSize: this.#lastBatchSize,
      queued: this.#queue.length,
    };
  }

  #flush(): void {
    if (this.#tick !== undefined) clearImmediate(this.#tick);
    this.#tick = undefined;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    try {
      this.#settle(batch, this.#store.append(batch.map((pending) => pending.entry)));
    } catch (error) {
      if (batch.length === 1) {
        this.#fail(batch[0]!, error);
        return;
      }
      // One bad entry (a duplicate id, data JSON cannot hold) must not fail the unrelated decisions that
      // happened to share its transaction: retry them one by one, so only the culprits are rejected. The store
      // rolled the failed transaction back and still chains from the last committed record.
      for (const pending of batch) {
        try {
          this.#settle([pending], this.#store.append([pending.entry]));
        } catch (error) {
          this.#fail(pending, error);
        }
      }
    }
  }

  #settle(batch: readonly Pending[], records: readonly LedgerRecord[]): void {
    this.#batches += 1;
    this.#lastBatchSize = records.length;
    this.#entriesWritten += records.length;
    batch.forEach((pending, i) => {
      pending.resolve(records[i]!);
    });
    try {
      this.#onCommit?.(records);
    } catch {
      // A metrics callback must not turn a committed write into a reported failure.
    }
  }

  #fail(pending: Pending, error: unknown): void {
    this.#entriesFailed += 1;
    pending.reject(
      error instanceof WardenError
        ? error
        : new WardenError("WARDEN_ERR_LEDGER", "The decision could not be recorded", { cause: error }),
    );
  }
}
