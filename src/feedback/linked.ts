import type { LedgerRecord } from "../ledger/index.js";

/** Kinds of record that point to an earlier decision through `body.decision_id`. */
export const LINKED_KINDS = ["outcome", "appeal", "review"] as const;
export type LinkedKind = (typeof LINKED_KINDS)[number];

/** The decision an outcome, appeal or review points to; undefined for any other record. */
export function linkedDecisionId(record: LedgerRecord): string | undefined {
  if (!(LINKED_KINDS as readonly string[]).includes(record.kind)) return undefined;
  const id = record.body.decision_id;
  return typeof id === "string" ? id : undefined;
}

/** Records read between two turns of the event loop while scanning for a request. */
const SCAN_SLICE = 2048;

/**
 * Every outcome, appeal and review that points to `decision`, in ledger order.
 *
 * This SCANS the ledger: every record after the decision is read (what points to a decision is always
 * recorded after it), so the cost grows with the records written since the decision. It is the only place
 * that looks records up by the decision they point to, so an index (decision_id → seq) can replace the scan
 * here without changing any caller. It reads through `scan` (any ledger store: SQLite or PostgreSQL) and lets
 * the event loop turn every SCAN_SLICE records, so other requests are served meanwhile. It sees the ledger as
 * committed (callers that just wrote should wait for the commit first).
 */
export async function findLinkedRecords(
  scan: (afterSeq: number) => AsyncIterable<LedgerRecord>,
  decision: { readonly id: string; readonly seq: number },
): Promise<LedgerRecord[]> {
  const found: LedgerRecord[] = [];
  let read = 0;
  for await (const record of scan(decision.seq)) {
    if (linkedDecisionId(record) === decision.id) found.push(record);
    if (++read % SCAN_SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return found;
}
