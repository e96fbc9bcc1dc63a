import type { ErrorCode } from "../errors/index.js";
import type { LedgerLocation } from "./backend.js";

/** What the ledger thread is started with. */
export interface LedgerThreadStart {
  /** The data folder: the journal lives here, and the SQLite ledger unless `location` says otherwise. */
  readonly dataDir: string;
  readonly location: LedgerLocation;
  readonly synchronous: "normal" | "full";
}

/** Main thread → ledger thread. */
export type LedgerThreadRequest =
  /**
   * Journal lines (see journal.ts), already written to the journal, to commit in one transaction: their UTF-8
   * bytes, in order, in one or more chunks (each turn's journal write), each ending with a line feed.
   */
  | { readonly type: "append"; readonly batch: number; readonly chunks: readonly Uint8Array[] }
  | { readonly type: "close" };

/** An entry of a batch that could not be stored (by its index in the batch). */
export interface AppendFailure {
  readonly index: number;
  readonly code: ErrorCode;
  readonly message: string;
  /**
   * True when storing it can never succeed (its id is already in the ledger); false for a failure of the
   * store (disk full, I/O error), after which the journal must be kept for the next start to replay.
   */
  readonly permanent: boolean;
}

/** Ledger thread → main thread. */
export type LedgerThreadReply =
  | {
      readonly type: "ready";
      readonly count: number;
      /** Journal entries from an earlier run that were not in the ledger and have now been appended. */
      readonly replayed: number;
      /** Damaged journal lines skipped during the replay. */
      readonly damaged: number;
    }
  | {
      readonly type: "appended";
      readonly batch: number;
      /** Entries committed. */
      readonly committed: number;
      readonly failures: readonly AppendFailure[];
    }
  | { readonly type: "closed"; readonly count: number }
  | { readonly type: "failed"; readonly code: ErrorCode; readonly message: string };
