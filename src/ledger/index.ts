/**
 * The decision ledger: an append-only, hash-chained record of every decision and rejection, stored in an
 * embedded SQLite file (`<dataDir>/ledger.sqlite`), written through a group-committing writer, and checked by
 * verifyLedger. Merkle checkpoints (merkle.ts, signing.ts): RFC 9162 roots, inclusion and consistency proofs
 * over the records, and Ed25519-signed tree heads.
 */
export {
  type FullVerifyResult,
  type LedgerBackend,
  type LedgerLocation,
  openLedgerBackend,
  sqliteBackend,
  verifyLedgerAt,
  verifyLedgerFully,
} from "./backend.js";
export {
  type CheckpointSource,
  type ConsistencyEvidence,
  checkCheckpoints,
  defaultSigningKeyPath,
  type InclusionEvidence,
  leafHashesOf,
  makeCheckpoint,
  proveConsistency,
  proveInclusion,
  type StoredCheckpoint,
  sqliteCheckpoints,
} from "./checkpoints.js";
export { CanonicalText, canonicalJson, chainHash, GENESIS_HASH } from "./hash.js";
export { uncommittedJournalEntries } from "./journal.js";
export {
  consistencyProof,
  EMPTY_ROOT_HEX,
  emptyRoot,
  fromHex,
  HASH_BYTES,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  MerkleTree,
  nodeHash,
  type ProofCheck,
  type ProofFailure,
  proofFromHex,
  proofToHex,
  rootOf,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";
export {
  keyIdOf,
  loadOrCreateSigningKey,
  loadPublicKey,
  makeTreeHead,
  type SignedTreeHead,
  type SigningKey,
  signTreeHead,
  type TreeHead,
  type TreeHeadCheck,
  type TreeHeadFailure,
  treeHeadSigningInput,
  verifyTreeHead,
  writeFileAtomically,
} from "./signing.js";
export {
  type LedgerReader,
  type LedgerStore,
  ledgerPath,
  openLedgerReader,
  openSqliteLedger,
  type ScanOptions,
  type SqliteLedgerOptions,
} from "./sqlite-store.js";
export {
  type LedgerAttachment,
  type LedgerThreadOptions,
  type LedgerWriter,
  type LedgerWriterOptions,
  type LedgerWriterStats,
  startLedgerThread,
} from "./thread-writer.js";
export {
  type LedgerEntry,
  type LedgerRecord,
  LINKED_KINDS,
  type LinkedKind,
  RECORD_KINDS,
  REVIEW_MARK,
  type RecordKind,
  type ReviewSources,
} from "./types.js";
export {
  type LedgerAnchor,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyResult,
  verifyLedger,
  verifyLedgerParallel,
} from "./verify.js";
