/** Kinds of ledger record (closed list). */
export const RECORD_KINDS = ["decision", "rejection"] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/**
 * One ledger entry as the pipeline hands it over. It is hashed as canonical JSON (RFC 8785), so it must be
 * plain JSON data: no undefined, no NaN/Infinity, no class instances.
 */
export interface LedgerEntry {
  /** Decision id (UUIDv7), unique. */
  readonly id: string;
  readonly kind: RecordKind;
  /** ISO-8601 UTC time the decision was made. */
  readonly time: string;
  readonly model: string;
  readonly version: string;
  readonly artifact_sha256: string;
  /** Everything else: inputs, subject, outputs, decision, latency_ms, client id, errors, ... */
  readonly body: Readonly<Record<string, unknown>>;
}

/** An entry as stored: its position and its place in the hash chain. */
export interface LedgerRecord extends LedgerEntry {
  /** 1-based position in the ledger. */
  readonly seq: number;
  /** Hash of the previous record (64 zero hex digits for the first). */
  readonly prev_hash: string;
  /** sha256(prev_hash ‖ canonical JSON of the entry), hex. */
  readonly hash: string;
}
