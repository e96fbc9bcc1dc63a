/**
 * Retention and privacy of subject data: keys, commitments, pseudonyms and encryption (seal.ts), the subject
 * vault outside the hash chain (vault.ts), the server's sealer (protection.ts) and retention purges (purge.ts).
 */
export {
  KEY_BYTES,
  KEY_PURPOSES,
  type KeyPurpose,
  keyIdOf,
  loadOrCreatePrivacyKey,
  type PrivacyKey,
} from "./keys.js";
export {
  openSubjectProtection,
  type PrivacyKeyFiles,
  protectedStorage,
  SubjectProtection,
  type SubjectVaultView,
} from "./protection.js";
export {
  type PurgeModelReport,
  type PurgeOptions,
  type PurgeReport,
  purgeSubjects,
  RETENTION_ALL_VERSIONS,
  RETENTION_NO_ARTIFACT,
} from "./purge.js";
export {
  type ClaimCheck,
  type Commitment,
  commitSubject,
  decryptSubject,
  encryptSubject,
  newSalt,
  pseudonymOf,
  SALT_BYTES,
  type SealedBox,
  subjectCommitment,
  verifySubjectClaim,
} from "./seal.js";
export { addDays, openSubjectVault, SubjectVault, type VaultRow, vaultPath } from "./vault.js";
