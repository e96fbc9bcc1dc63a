import { Worker } from "node:worker_threads";
import { WardenError } from "../errors/index.js";
import { ledgerPath, type PreparedEntry, prepareEntry } from "./sqlite-store.js";
import type {
  AppendResult,
  LedgerThreadReply,
  LedgerThreadRequest,
  LedgerThreadStart,
} from "./thread-protocol.js";
import type { LedgerEntry, LedgerRecord } from "./types.js";

const THREAD_URL = new URL("./writer-thread.js", import.meta.url);
const CHECKPOINT_URL = new URL("./checkpoint-thread.js", import.meta.url);
/** How often the checkpoint thread copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 200;

/** Options of a ledger writer. */
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

/** Group-committing front of a ledger store. The only writer of its store. */
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
  /** False once the writer can no longer record anything (its thread died): the server is then not ready. */
  healthy(): boolean;
}

/** Options of {@link startLedgerThread}. */
export interface LedgerThreadOptions extends LedgerWriterOptions {
  /** See SqliteLedgerOptions.synchronous (default "normal"). */
  readonly synchronous?: "normal" | "full";
}

interface Pending {
  readonly entry: LedgerEntry;
  readonly prepared: PreparedEntry;
  readonly resolve: (record: LedgerRecord) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Start the ledger writer in its own thread and return a {@link LedgerWriter} for the calling thread.
 * Entries written in one event-loop turn travel as one message and are committed in one transaction there
 * (group commit); each `write` resolves only after its commit. The caller's thread makes each entry's
 * canonical JSON (flat strings are cheap to pass between threads); hashing, SQLite work and WAL checkpoints
 * run in the ledger's own threads.
 * Resolves once the ledger is open (creating `<dataDir>/ledger.sqlite` if needed).
 *
 * If the thread dies, every pending and later write fails with WARDEN_ERR_LEDGER: a server must not answer
 * decisions it cannot record.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the ledger cannot be opened.
 */
export async function startLedgerThread(
  dataDir: string,
  options: LedgerThreadOptions = {},
): Promise<LedgerWriter> {
  const start: LedgerThreadStart = { dataDir, synchronous: options.synchronous ?? "normal" };
  const maxBatch = options.maxBatch ?? 512;
  const worker = new Worker(THREAD_URL, { workerData: start, name: "ledger-writer" });
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number) =>
      reject(
        new WardenError("WARDEN_ERR_LEDGER", `the ledger thread exited (${code}) while opening ${dataDir}`),
      );
    worker.once("error", reject);
    worker.once("exit", onExit);
    worker.once("message", (message: LedgerThreadReply) => {
      worker.off("error", reject);
      worker.off("exit", onExit);
      if (message.type === "ready") resolve();
      else {
        void worker.terminate();
        reject(
          new WardenError(
            "WARDEN_ERR_LEDGER",
            message.type === "failed" ? message.message : "unexpected reply",
          ),
        );
      }
    });
  });
  const checkpointer = new Worker(CHECKPOINT_URL, {
    workerData: { file: ledgerPath(dataDir), intervalMs: CHECKPOINT_INTERVAL_MS },
    name: "ledger-checkpointer",
  });
  return new ThreadedLedgerWriter(worker, checkpointer, maxBatch, options.onCommit);
}

class ThreadedLedgerWriter implements LedgerWriter {
  readonly #worker: Worker;
  readonly #checkpointer: Worker;
  readonly #maxBatch: number;
  readonly #onCommit: ((records: readonly LedgerRecord[]) => void) | undefined;
  #queue: Pending[] = [];
  #tick: NodeJS.Immediate | undefined;
  readonly #inFlight = new Map<number, Pending[]>();
  #nextBatch = 1;
  #failure: WardenError | undefined;
  #closing: Promise<void> | undefined;
  #drained: (() => void)[] = [];
  /** Resolve when each thread has exited (whatever the reason), so close() never waits on a dead thread. */
  readonly #writerExited: Promise<void>;
  readonly #checkpointerExited: Promise<void>;
  #entriesWritten = 0;
  #entriesFailed = 0;
  #batches = 0;
  #lastBatchSize = 0;

  constructor(
    worker: Worker,
    checkpointer: Worker,
    maxBatch: number,
    onCommit: ((records: readonly LedgerRecord[]) => void) | undefined,
  ) {
    this.#worker = worker;
    this.#checkpointer = checkpointer;
    this.#maxBatch = maxBatch;
    this.#onCommit = onCommit;
    this.#writerExited = new Promise((resolve) => worker.once("exit", () => resolve()));
    this.#checkpointerExited = new Promise((resolve) => checkpointer.once("exit", () => resolve()));
    worker.on("message", (message: LedgerThreadReply) => {
      if (message.type === "appended") this.#settle(message.batch, message.results);
    });
    const die = (reason: string) => {
      this.#failure ??= new WardenError("WARDEN_ERR_LEDGER", `the ledger thread stopped: ${reason}`);
      void checkpointer.terminate();
      for (const batch of this.#inFlight.values()) for (const p of batch) this.#fail(p, this.#failure);
      this.#inFlight.clear();
      for (const p of this.#queue) this.#fail(p, this.#failure);
      this.#queue = [];
      this.#notifyDrained();
    };
    worker.on("error", (error) => die(error.message));
    // A failed checkpointer costs disk (the WAL grows until the writer's close folds it in), not decisions.
    checkpointer.on("error", () => {});
    worker.on("exit", (code) => {
      if (this.#closing === undefined || this.#inFlight.size > 0) die(`exit ${code}`);
    });
  }

  write(entry: LedgerEntry): Promise<LedgerRecord> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closing !== undefined) {
      return Promise.reject(
        new WardenError(
          "WARDEN_ERR_SHUTTING_DOWN",
          "The decision ledger is closing; no new decisions are recorded",
        ),
      );
    }
    let prepared: PreparedEntry;
    try {
      // Canonicalised here, so the thread receives flat strings (cheap to pass) and the caller learns at once
      // about data that cannot be recorded.
      prepared = prepareEntry(entry);
    } catch (error) {
      this.#entriesFailed += 1;
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, prepared, resolve, reject });
      if (this.#queue.length >= this.#maxBatch) this.#send();
      else this.#tick ??= setImmediate(() => this.#send());
    });
  }

  drain(): Promise<void> {
    this.#send();
    if (this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.drain();
      // The checkpointer's connection goes first, so the writer's is the last one and its close folds the WAL
      // into ledger.sqlite. (Messages to a thread that has already exited are dropped; its exit promise is
      // settled, so nothing here waits on a dead thread.)
      this.#checkpointer.postMessage("stop");
      await this.#checkpointerExited;
      if (this.#failure !== undefined) {
        await this.#worker.terminate();
        return;
      }
      // The thread closes its store, answers "closed" and exits.
      this.#worker.postMessage({ type: "close" } satisfies LedgerThreadRequest);
      await this.#writerExited;
    })();
    return this.#closing;
  }

  healthy(): boolean {
    return this.#failure === undefined;
  }

  stats(): LedgerWriterStats {
    return {
      entriesWritten: this.#entriesWritten,
      entriesFailed: this.#entriesFailed,
      batches: this.#batches,
      lastBatchSize: this.#lastBatchSize,
      queued: this.#queue.length + [...this.#inFlight.values()].reduce((n, b) => n + b.length, 0),
    };
  }

  #send(): void {
    if (this.#tick !== undefined) clearImmediate(this.#tick);
    this.#tick = undefined;
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    const id = this.#nextBatch++;
    this.#inFlight.set(id, batch);
    const message: LedgerThreadRequest = { type: "append", batch: id, entries: batch.map((p) => p.prepared) };
    this.#worker.postMessage(message);
  }

  #settle(id: number, results: readonly AppendResult[]): void {
    const batch = this.#inFlight.get(id);
    if (batch === undefined) return;
    this.#inFlight.delete(id);
    const committed: LedgerRecord[] = [];
    batch.forEach((pending, i) => {
      const result = results[i]!;
      if (result.ok) {
        const { id, kind, time, model, version, artifact_sha256, body } = pending.entry;
        const record: LedgerRecord = {
          id,
          kind,
          time,
          model,
          version,
          artifact_sha256,
          body,
          seq: result.seq,
          prev_hash: result.prev_hash,
          hash: result.hash,
        };
        committed.push(record);
        pending.resolve(record);
      } else {
        this.#fail(pending, new WardenError(result.code, result.message));
      }
    });
    if (committed.length > 0) {
      this.#batches += 1;
      this.#lastBatchSize = committed.length;
      this.#entriesWritten += committed.length;
      try {
        this.#onCommit?.(committed);
      } catch {
        // A metrics callback must not turn a committed write into a reported failure.
      }
    }
    this.#notifyDrained();
  }

  #fail(pending: Pending, error: WardenError): void {
    this.#entriesFailed += 1;
    pending.reject(error);
  }

  #notifyDrained(): void {
    if (this.#inFlight.size > 0 || this.#queue.length > 0) return;
    const waiting = this.#drained;
    this.#drained = [];
    for (const resolve of waiting) resolve();
  }
}
