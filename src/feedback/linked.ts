import { type LedgerRecord, LINKED_KINDS } from "../ledger/index.js";

export { LINKED_KINDS, type LinkedKind } from "../ledger/index.js";

/** The decision an outcome, appeal or review points to; undefined for any other record. */
export function linkedDecisionId(record: LedgerRecord): string | undefined {
  if (!(LINKED_KINDS as readonly string[]).includes(record.kind)) return undefined;
  const id = record.body.decision_id;
  return typeof id === "string" ? id : undefined;
}
