import type { ErrorCode } from "../errors/index.js";
import type { PreparedEntry } from "./sqlite-store.js";

/** What the ledger thread is started with. */
export interface LedgerThreadStart {
  readonly dataDir: string;
  readonly synchronous: "normal" | "full";
}

/** Main thread → ledger thread. */
export type LedgerThreadRequest =
  | { readonly type: "append"; readonly batch: number; readonly entries: readonly PreparedEntry[] }
  | { readonly type: "close" };

/** The outcome of one entry, in the order sent. */
export type AppendResult =
  | { readonly ok: true; readonly seq: number; readonly prev_hash: string; readonly hash: string }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Ledger thread → main thread. */
export type LedgerThreadReply =
  | { readonly type: "ready"; readonly count: number }
  | { readonly type: "appended"; readonly batch: number; readonly results: readonly AppendResult[] }
  | { readonly type: "closed"; readonly count: number }
  | { readonly type: "failed"; readonly code: ErrorCode; readonly message: string };
