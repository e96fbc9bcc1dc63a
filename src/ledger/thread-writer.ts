import { Worker } from "node:worker_threads";
import { WardenError } from "../errors/index.js";
import type { LedgerLocation } from "./backend.js";
import { attachmentLine, JournalWriter, journalDir, journalLine, lockJournal } from "./journal.js";
import type { MerkleThreadReply, MerkleThreadStart } from "./merkle-thread.js";
import { ledgerPath, prepareEntry } from "./sqlite-store.js";
import type {
  AppendFailure,
  LedgerThreadReply,
  LedgerThreadRequest,
  LedgerThreadStart,
} from "./thread-protocol.js";
import type { LedgerEntry, RecordKind } from "./types.js";

const THREAD_URL = new URL("./writer-thread.js", import.meta.url);
const CHECKPOINT_URL = new URL("./checkpoint-thread.js", import.meta.url);
const MERKLE_URL = new URL("./merkle-thread.js", import.meta.url);
/** How often the checkpoint thread copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 1000;

/** Entries a writer accepts ahead of its commits by default (about 300 MB of decisions at 3 KB each). */
export const DEFAULT_MAX_BACKLOG = 100_000;

/** Options of a ledger writer. */
export interface LedgerWriterOptions {
  /**
   * Most entries in one transaction (default 512): once this many are journaled and not yet sent, they go to
   * the ledger thread at once.
   */
  readonly maxBatch?: number;
  /**
   * How long journaled entries may wait to be sent to the ledger thread, so that several turns share one
   * message and one transaction (default 50 ms; 0 sends every turn). Each hand-off wakes the ledger thread,
   * which on a busy machine costs far more than the message itself (measured on a loaded 2-core VM: 0.1–0.25 ms
   * of the sending thread per message, whatever its size), so fewer and larger hand-offs save CPU. Answers never
   * wait for this: they wait only for the journal. It bounds how far the committed ledger trails the journal;
   * a reader that needs an entry committed (`drain`) sends at once.
   */
  readonly commitDelayMs?: number;
  /**
   * Most entries accepted and not yet committed (default {@link DEFAULT_MAX_BACKLOG}). Past it, `write` refuses
   * at once with WARDEN_ERR_LEDGER_BUSY (503) until the store catches up: when the store is slower than the
   * requests (a stalled disk, a PostgreSQL lock), the backlog would otherwise grow in memory without bound.
   * Every entry accepted stays acknowledged and is committed.
   */
  readonly maxBacklog?: number;
  /**
   * Called after each committed transaction with the kinds of its records (in sequence order), for metrics. It
   * runs after the commit and cannot affect the ledger: an exception it throws is ignored.
   */
  readonly onCommit?: (kinds: readonly RecordKind[]) => void;
  /**
   * Called when an acknowledged entry cannot be stored: its id is already in the ledger (ids must be unique;
   * Warden's are UUIDv7), or the store failed (the writer is then unhealthy and keeps the journal, which the
   * next start replays). For the log; an exception it throws is ignored.
   */
  readonly onError?: (error: WardenError) => void;
}

/** Counters for metrics; all start at 0 when the writer is created. */
export interface LedgerWriterStats {
  /** Entries committed to the ledger. */
  readonly entriesWritten: number;
  /** Entries refused: invalid, not journaled, or not storable. */
  readonly entriesFailed: number;
  /** Transactions committed. */
  readonly batches: number;
  /** Entries in the last committed transaction. */
  readonly lastBatchSize: number;
  /** Entries refused because the backlog was full (WARDEN_ERR_LEDGER_BUSY). */
  readonly refused: number;
  /** Entries accepted and not yet committed (queued for the journal, or journaled and on their way). */
  readonly queued: number;
  /** Entries an earlier run had journaled but not committed, appended when this writer started. */
  readonly replayed: number;
  /** Damaged journal lines skipped when this writer started. */
  readonly damaged: number;
}

/** What may travel with an entry through the journal and be stored before it is committed. */
export interface LedgerAttachment {
  /**
   * A protected subject's vault row (privacy/vault.ts `VaultRow`) as one line of JSON text, stored in
   * `<dataDir>/vault.sqlite`.
   */
  readonly vaultJson?: string;
}

/** Journaling, group-committing front of a ledger store. The only writer of its store. */
export interface LedgerWriter {
  /**
   * Accept an entry. Entries accepted in one event-loop turn are appended to the write-ahead journal together
   * (one write), and the promise resolves once they are there: from then on the entry survives a crash of the
   * process (and, with `synchronous: "full"`, a power loss), because the next start replays the journal. The
   * ledger thread commits the same entries, in order, in one transaction, shortly after; {@link drain} waits
   * for that. So a caller that waits for this promise before answering never acknowledges a decision that can
   * be lost, and does not wait for the hash chain and SQLite on its response path.
   *
   * @throws (rejects) WardenError WARDEN_ERR_LEDGER when this entry cannot be recorded (not plain JSON, a field
   *   missing, the journal cannot be written, the writer has failed); WARDEN_ERR_SHUTTING_DOWN once
   *   {@link LedgerWriter.close} has been called.
   */
  write(entry: LedgerEntry, attachment?: LedgerAttachment): Promise<void>;
  /** Resolves once everything accepted before the call is committed to the ledger (or has failed). */
  drain(): Promise<void>;
  /**
   * Refuse new writes, commit everything accepted, then close the store and delete the journal (kept instead
   * when the writer has failed, for the next start to replay). Idempotent.
   */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  stats(): LedgerWriterStats;
  /** False once the writer can no longer record anything (its thread died, the disk failed): not ready. */
  healthy(): boolean;
  /** Whether the backlog (entries accepted, not yet committed) has reached `maxBacklog`: writes are refused. */
  backlogged(): boolean;
}

/** Options of {@link startLedgerThread}. */
export interface LedgerThreadOptions extends LedgerWriterOptions {
  /**
   * Sign Merkle checkpoints with the Ed25519 key at `keyPath` (created if missing) every `intervalMs`
   * (0: only at close), in a thread of their own; close signs a last one over everything committed.
   */
  readonly checkpoints?: { readonly keyPath: string; readonly intervalMs: number };
  /** Told of each checkpoint signed (its size), for the log. */
  readonly onCheckpoint?: (treeSize: number) => void;
  /** Where the ledger lives (default: SQLite in the data folder). The journal always stays in the data folder. */
  readonly location?: LedgerLocation;
  /** See SqliteLedgerOptions.synchronous (default "normal"). */
  readonly synchronous?: "normal" | "full";
}

interface Pending {
  readonly line: string;
  readonly kind: RecordKind;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Start the ledger writer in its own thread and return a {@link LedgerWriter} for the calling thread. Before
 * it is ready, the thread replays the journal of an earlier run that stopped without committing everything.
 * Entries written in one event-loop turn are journaled with one write, travel as one message, and are
 * committed in one transaction there (group commit). The caller's thread makes each entry's canonical JSON
 * and journal line; hashing, SQLite work and WAL checkpoints run in the ledger's own threads.
 * Resolves once the ledger is open (creating `<dataDir>/ledger.sqlite` if needed).
 *
 * If the thread dies, every later write fails with WARDEN_ERR_LEDGER: a server must not answer decisions it
 * cannot record. What was journaled stays in the journal for the next start.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the ledger cannot be opened or the journal not replayed.
 */
export async function startLedgerThread(
  dataDir: string,
  options: LedgerThreadOptions = {},
): Promise<LedgerWriter> {
  const synchronous = options.synchronous ?? "normal";
  // Before the thread replays anything: one process per journal.
  const release = lockJournal(journalDir(dataDir));
  try {
    return await startLocked(dataDir, options, synchronous, release);
  } catch (error) {
    release();
    throw error;
  }
}

async function startLocked(
  dataDir: string,
  options: LedgerThreadOptions,
  synchronous: "normal" | "full",
  release: () => void,
): Promise<LedgerWriter> {
  const location: LedgerLocation = options.location ?? { kind: "sqlite", dataDir };
  const start: LedgerThreadStart = { dataDir, location, synchronous };
  const maxBatch = options.maxBatch ?? 512;
  const commitDelayMs = options.commitDelayMs ?? 50;
  const maxBacklog = options.maxBacklog ?? DEFAULT_MAX_BACKLOG;
  const worker = new Worker(THREAD_URL, { workerData: start, name: "ledger-writer" });
  const ready = await new Promise<Extract<LedgerThreadReply, { type: "ready" }>>((resolve, reject) => {
    const onExit = (code: number) =>
      reject(
        new WardenError("WARDEN_ERR_LEDGER", `the ledger thread exited (${code}) while opening ${dataDir}`),
      );
    worker.once("error", reject);
    worker.once("exit", onExit);
    worker.once("message", (message: LedgerThreadReply) => {
      worker.off("error", reject);
      worker.off("exit", onExit);
      if (message.type === "ready") resolve(message);
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
  let journal: JournalWriter;
  try {
    journal = new JournalWriter(journalDir(dataDir), synchronous === "full");
  } catch (error) {
    await worker.terminate();
    throw new WardenError(
      "WARDEN_ERR_LEDGER",
      `cannot open the ledger journal in ${dataDir}: ${String(error)}`,
      {
        cause: error,
      },
    );
  }
  // Only an SQLite ledger needs its WAL folded into the database file.
  const checkpointer =
    location.kind === "sqlite"
      ? new Worker(CHECKPOINT_URL, {
          workerData: { file: ledgerPath(location.dataDir), intervalMs: CHECKPOINT_INTERVAL_MS },
          name: "ledger-checkpointer",
        })
      : undefined;
  const signer =
    options.checkpoints === undefined
      ? undefined
      : new Worker(MERKLE_URL, {
          workerData: {
            location,
            keyPath: options.checkpoints.keyPath,
            intervalMs: options.checkpoints.intervalMs,
          } satisfies MerkleThreadStart,
          name: "ledger-merkle",
        });
  if (signer !== undefined) {
    signer.on("message", (reply: MerkleThreadReply) => {
      if (reply.type === "checkpoint") options.onCheckpoint?.(reply.treeSize);
      else options.onError?.(new WardenError("WARDEN_ERR_LEDGER", `checkpoint not signed: ${reply.message}`));
    });
    signer.on("error", (error) =>
      options.onError?.(
        new WardenError("WARDEN_ERR_LEDGER", `the checkpoint thread stopped: ${error.message}`),
      ),
    );
  }
  return new ThreadedLedgerWriter(
    worker,
    checkpointer,
    journal,
    { maxBatch, commitDelayMs, maxBacklog },
    options,
    ready,
    signer,
    release,
  );
}

/** A batch sent to the thread: the kinds of its entries, in order. */
type InFlight = readonly RecordKind[];

class ThreadedLedgerWriter implements LedgerWriter {
  readonly #worker: Worker;
  readonly #checkpointer: Worker | undefined;
  readonly #signer: Worker | undefined;
  readonly #release: () => void;
  readonly #journal: JournalWriter;
  readonly #maxBatch: number;
  readonly #maxBacklog: number;
  readonly #commitDelayMs: number;
  readonly #onCommit: ((kinds: readonly RecordKind[]) => void) | undefined;
  readonly #onError: ((error: WardenError) => void) | undefined;
  #queue: Pending[] = [];
  #tick: NodeJS.Immediate | undefined;
  /**
   * Journaled and acknowledged, not yet sent to the thread: their lines as the bytes the journal wrote (one
   * buffer per turn, outside the JavaScript heap, handed over without a copy), and their kinds.
   */
  #unsent: Uint8Array[] = [];
  #unsentKinds: RecordKind[] = [];
  #handOff: NodeJS.Timeout | undefined;
  readonly #inFlight = new Map<number, InFlight>();
  #inFlightEntries = 0;
  #nextBatch = 1;
  /** Batches settle in order: every batch up to this one is committed (or failed). */
  #settledThrough = 0;
  #failure: WardenError | undefined;
  #closing: Promise<void> | undefined;
  #drained: { readonly through: number; readonly resolve: () => void }[] = [];
  /** Resolve when each thread has exited (whatever the reason), so close() never waits on a dead thread. */
  readonly #writerExited: Promise<void>;
  readonly #checkpointerExited: Promise<void>;
  #entriesWritten = 0;
  #entriesRefused = 0;
  #entriesFailed = 0;
  #batches = 0;
  #lastBatchSize = 0;
  readonly #replayed: number;
  readonly #damaged: number;

  constructor(
    worker: Worker,
    checkpointer: Worker | undefined,
    journal: JournalWriter,
    limits: { maxBatch: number; commitDelayMs: number; maxBacklog: number },
    options: LedgerWriterOptions,
    ready: { replayed: number; damaged: number },
    signer: Worker | undefined = undefined,
    release: () => void = () => {},
  ) {
    this.#signer = signer;
    this.#release = release;
    this.#worker = worker;
    this.#checkpointer = checkpointer;
    this.#journal = journal;
    this.#maxBatch = limits.maxBatch;
    this.#maxBacklog = limits.maxBacklog;
    this.#commitDelayMs = limits.commitDelayMs;
    this.#onCommit = options.onCommit;
    this.#onError = options.onError;
    this.#replayed = ready.replayed;
    this.#damaged = ready.damaged;
    this.#writerExited = new Promise((resolve) => worker.once("exit", () => resolve()));
    this.#checkpointerExited =
      checkpointer === undefined
        ? Promise.resolve()
        : new Promise((resolve) => checkpointer.once("exit", () => resolve()));
    worker.on("message", (message: LedgerThreadReply) => {
      if (message.type === "appended") this.#settle(message.batch, message.committed, message.failures);
    });
    const die = (reason: string) => {
      this.#fail(new WardenError("WARDEN_ERR_LEDGER", `the ledger thread stopped: ${reason}`));
      void checkpointer?.terminate();
      // What was sent and not committed stays in the journal, for the next start to replay.
      this.#inFlight.clear();
      this.#inFlightEntries = 0;
      this.#settledThrough = this.#nextBatch - 1;
      this.#notifyDrained();
    };
    worker.on("error", (error) => die(error.message));
    // A failed checkpointer costs disk (the WAL grows until the writer's close folds it in), not decisions.
    checkpointer?.on("error", () => {});
    worker.on("exit", (code) => {
      if (this.#closing === undefined || this.#inFlight.size > 0) die(`exit ${code}`);
    });
  }

  write(entry: LedgerEntry, attachment?: LedgerAttachment): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closing !== undefined) {
      return Promise.reject(
        new WardenError(
          "WARDEN_ERR_SHUTTING_DOWN",
          "The decision ledger is closing; no new decisions are recorded",
        ),
      );
    }
    if (this.backlogged()) {
      this.#entriesRefused += 1;
      return Promise.reject(
        new WardenError(
          "WARDEN_ERR_LEDGER_BUSY",
          `the decision ledger has ${this.#backlog()} entries waiting to be committed (ledger.max_backlog ${this.#maxBacklog}); retry shortly`,
          { retryAfterSeconds: 1 },
        ),
      );
    }
    let line: string;
    try {
      // Canonicalised here, so the caller learns at once about data that cannot be recorded, and the thread
      // receives the journal's bytes (transferred, not copied) rather than objects.
      line = journalLine(prepareEntry(entry));
      if (attachment?.vaultJson !== undefined) line = attachmentLine(attachment.vaultJson) + line;
    } catch (error) {
      this.#entriesFailed += 1;
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ line, kind: entry.kind, resolve, reject });
      if (this.#queue.length >= this.#maxBatch) this.#flushJournal();
      else this.#tick ??= setImmediate(() => this.#flushJournal());
    });
  }

  drain(): Promise<void> {
    this.#flushJournal();
    this.#handOffNow();
    const through = this.#nextBatch - 1;
    if (this.#settledThrough >= through) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push({ through, resolve }));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.drain();
      // A last checkpoint over everything committed, before the connections close.
      if (this.#signer !== undefined) {
        const exited = new Promise<void>((resolve) => this.#signer!.once("exit", () => resolve()));
        this.#signer.postMessage("stop");
        await exited;
      }
      // The checkpointer's connection goes first, so the writer's is the last one and its close folds the WAL
      // into ledger.sqlite. (Messages to a thread that has already exited are dropped; its exit promise is
      // settled, so nothing here waits on a dead thread.)
      this.#checkpointer?.postMessage("stop");
      await this.#checkpointerExited;
      if (this.#failure !== undefined) {
        await this.#worker.terminate();
        this.#journal.close(false);
        this.#release();
        return;
      }
      // The thread closes its store, answers "closed" and exits.
      this.#worker.postMessage({ type: "close" } satisfies LedgerThreadRequest);
      await this.#writerExited;
      this.#journal.close(this.#failure === undefined);
      this.#release();
    })();
    return this.#closing;
  }

  healthy(): boolean {
    return this.#failure === undefined;
  }

  backlogged(): boolean {
    return this.#backlog() >= this.#maxBacklog;
  }

  /** Entries accepted and not yet committed. */
  #backlog(): number {
    return this.#queue.length + this.#unsentKinds.length + this.#inFlightEntries;
  }

  stats(): LedgerWriterStats {
    return {
      entriesWritten: this.#entriesWritten,
      entriesFailed: this.#entriesFailed,
      batches: this.#batches,
      lastBatchSize: this.#lastBatchSize,
      queued: this.#backlog(),
      refused: this.#entriesRefused,
      replayed: this.#replayed,
      damaged: this.#damaged,
    };
  }

  /** Journal this turn's entries with one write, acknowledge them, and schedule their hand-off to the thread. */
  #flushJournal(): void {
    if (this.#tick !== undefined) clearImmediate(this.#tick);
    this.#tick = undefined;
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    if (this.#failure !== undefined) {
      for (const p of batch) this.#refuse(p, this.#failure);
      return;
    }
    let text = "";
    for (const p of batch) text += p.line;
    let bytes: Uint8Array;
    try {
      // The batch number these lines will travel in: segments are retired by it.
      bytes = this.#journal.append(text, this.#nextBatch);
    } catch (error) {
      // Nothing of this turn is acknowledged. A journal that cannot be written (disk full, I/O error) is not a
      // passing problem: stop accepting decisions until an operator has looked.
      const failure = new WardenError(
        "WARDEN_ERR_LEDGER",
        `cannot write the ledger journal: ${String(error)}`,
        {
          cause: error,
        },
      );
      this.#fail(failure);
      for (const p of batch) this.#refuse(p, failure);
      return;
    }
    this.#unsent.push(bytes);
    for (const p of batch) this.#unsentKinds.push(p.kind);
    for (const p of batch) p.resolve();
    if (this.#unsentKinds.length >= this.#maxBatch || this.#commitDelayMs === 0) this.#handOffNow();
    else this.#handOff ??= setTimeout(() => this.#handOffNow(), this.#commitDelayMs);
  }

  /** Send what is journaled to the ledger thread, as one transaction. */
  #handOffNow(): void {
    if (this.#handOff !== undefined) clearTimeout(this.#handOff);
    this.#handOff = undefined;
    if (this.#unsentKinds.length === 0 || this.#failure !== undefined) return;
    const id = this.#nextBatch++;
    const kinds = this.#unsentKinds;
    const chunks = this.#unsent;
    this.#unsent = [];
    this.#unsentKinds = [];
    this.#inFlight.set(id, kinds);
    this.#inFlightEntries += kinds.length;
    // Transferred, not copied: each chunk has a buffer of its own (JournalWriter.append).
    this.#worker.postMessage(
      { type: "append", batch: id, chunks } satisfies LedgerThreadRequest,
      chunks.map((c) => c.buffer as ArrayBuffer),
    );
  }

  #settle(id: number, committed: number, failures: readonly AppendFailure[]): void {
    const kinds = this.#inFlight.get(id);
    if (kinds === undefined) return;
    this.#inFlight.delete(id);
    this.#inFlightEntries -= kinds.length;
    this.#settledThrough = id;
    let storeFailed = false;
    for (const f of failures) {
      this.#entriesFailed += 1;
      if (!f.permanent) storeFailed = true;
      this.#report(new WardenError(f.code, `an acknowledged ledger entry was not stored: ${f.message}`));
    }
    if (storeFailed) {
      // Keep the journal (the next start replays it) and stop accepting decisions.
      this.#fail(new WardenError("WARDEN_ERR_LEDGER", "the ledger store failed; see the previous error"));
    } else {
      this.#journal.committed(id);
    }
    if (committed > 0) {
      this.#batches += 1;
      this.#lastBatchSize = committed;
      this.#entriesWritten += committed;
      const failed = new Set(failures.map((f) => f.index));
      try {
        this.#onCommit?.(failed.size === 0 ? kinds : kinds.filter((_, i) => !failed.has(i)));
      } catch {
        // A metrics callback must not turn a committed write into a reported failure.
      }
    }
    this.#notifyDrained();
  }

  #fail(error: WardenError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#report(error);
  }

  #report(error: WardenError): void {
    try {
      this.#onError?.(error);
    } catch {
      // Reporting must not change what happened.
    }
  }

  #refuse(pending: Pending, error: WardenError): void {
    this.#entriesFailed += 1;
    pending.reject(error);
  }

  #notifyDrained(): void {
    if (this.#drained.length === 0) return;
    const waiting = this.#drained;
    this.#drained = [];
    for (const w of waiting) {
      if (this.#settledThrough >= w.through) w.resolve();
      else this.#drained.push(w);
    }
  }
}
