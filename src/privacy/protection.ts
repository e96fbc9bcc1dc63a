import type { FeatureValue } from "../decision/input.js";
import { WardenError } from "../errors/index.js";
import type { LedgerRecord } from "../ledger/index.js";
import { loadOrCreatePrivacyKey, type PrivacyKey } from "./keys.js";
import {
  type ClaimCheck,
  decryptSubject,
  parseBox,
  pseudonymOf,
  type SealKeys,
  verifySubjectClaim,
} from "./seal.js";
import { openSubjectVault, type SubjectVault } from "./vault.js";

/** Key files per purpose. */
export interface PrivacyKeyFiles {
  readonly encryption_key_file: string;
  readonly pseudonym_key_file: string;
}

/** What `GET /v1/decisions/{id}` shows of a protected subject's vault row. */
export interface SubjectVaultView {
  readonly storage: string;
  /** `stored`, `purged` (retention removed it) or `missing` (no row: a vault from elsewhere, or lost). */
  readonly status: "stored" | "purged" | "missing";
  readonly retain_until?: string;
  readonly purged_at?: string;
  readonly purge_record?: string;
  /** Pseudonymised: the pseudonyms (not reversible). */
  readonly pseudonyms?: Readonly<Record<string, string>>;
  /** Encrypted: the id of the key the subject is encrypted under (the ciphertext itself is not shown). */
  readonly key_id?: string;
}

/**
 * Subject protection for a server: the keys and the vault. Implements the pipeline's sealer; reads back for the
 * decision routes.
 */
export class SubjectProtection {
  readonly vault: SubjectVault;
  readonly #encryption: PrivacyKey;
  readonly #pseudonym: PrivacyKey;

  constructor(vault: SubjectVault, encryption: PrivacyKey, pseudonym: PrivacyKey) {
    this.vault = vault;
    this.#encryption = encryption;
    this.#pseudonym = pseudonym;
  }

  /** Key notes for the log (files readable by others, keys created now); never key material. */
  keyNotes(): { level: "info" | "warn"; message: string }[] {
    const notes: { level: "info" | "warn"; message: string }[] = [];
    for (const key of [this.#encryption, this.#pseudonym]) {
      if (key.created)
        notes.push({
          level: "info",
          message: `created the ${key.purpose} key ${key.path} (id ${key.id}, mode 0600)`,
        });
      if (key.warning) notes.push({ level: "warn", message: key.warning });
    }
    return notes;
  }

  /**
   * Copies of the key bytes for the model workers, which seal each decision's subject beside its inference
   * (runtime/worker.ts, privacy/seal.ts `sealSubject`).
   */
  sealKeys(): SealKeys {
    return {
      encryption: { id: this.#encryption.id, key: new Uint8Array(this.#encryption.bytes()) },
      pseudonym: { id: this.#pseudonym.id, key: new Uint8Array(this.#pseudonym.bytes()) },
    };
  }

  /** The vault's view of a decision's protected subject; undefined for a record without one. */
  view(record: LedgerRecord): SubjectVaultView | undefined {
    const storage = protectedStorage(record);
    if (storage === undefined) return undefined;
    const row = this.vault.get(record.id);
    if (row === undefined) return { storage, status: "missing" };
    if (row.payload === null) {
      return {
        storage,
        status: "purged",
        retain_until: row.retain_until,
        ...(row.purged_at ? { purged_at: row.purged_at } : {}),
        ...(row.purge_record ? { purge_record: row.purge_record } : {}),
      };
    }
    const stored = JSON.parse(row.payload) as { key_id: string; pseudonyms?: Record<string, string> };
    return {
      storage,
      status: "stored",
      retain_until: row.retain_until,
      key_id: stored.key_id,
      ...(stored.pseudonyms ? { pseudonyms: stored.pseudonyms } : {}),
    };
  }

  /**
   * The clear subject of an encrypted decision, checked against the ledger's commitments.
   *
   * @throws WardenError WARDEN_ERR_SUBJECT_UNAVAILABLE when there is nothing to reveal (clear or pseudonymised
   *   storage, purged, missing); WARDEN_ERR_VAULT when the values disagree with the commitments;
   *   WARDEN_ERR_PRIVACY_KEY under another key.
   */
  reveal(record: LedgerRecord): Record<string, FeatureValue> {
    const storage = protectedStorage(record);
    const row = this.vault.get(record.id);
    if (storage !== "encrypted" || row?.payload == null || row.salt === null) {
      throw new WardenError(
        "WARDEN_ERR_SUBJECT_UNAVAILABLE",
        `decision ${record.id} has no encrypted subject to reveal (${
          storage === undefined
            ? "its subject is recorded in clear"
            : storage !== "encrypted"
              ? `its subject is ${storage}, which cannot be reversed`
              : row === undefined
                ? "its vault row is missing"
                : "retention purged it"
        })`,
      );
    }
    const subject = decryptSubject(
      this.#encryption.bytes(),
      this.#encryption.id,
      record.id,
      parseBox(record.id, row.payload),
    );
    const check = verifySubjectClaim(record.body.subject as Record<string, unknown>, row.salt, subject);
    if (!check.ok && Object.keys(subject).length > 0) {
      throw new WardenError(
        "WARDEN_ERR_VAULT",
        `the vault's subject of decision ${record.id} does not match its ledger commitments`,
      );
    }
    return subject;
  }

  /**
   * Check claimed clear values against a decision's commitments with the salt from the vault (and, for
   * pseudonymised storage, against the stored pseudonyms with the key).
   */
  check(
    record: LedgerRecord,
    claimed: Readonly<Record<string, FeatureValue>>,
  ): ClaimCheck & { pseudonyms?: boolean } {
    const row = this.vault.get(record.id);
    if (row?.salt == null || row.payload === null) {
      return { ok: false, matched: [], mismatched: [], uncommitted: Object.keys(claimed) };
    }
    const check = verifySubjectClaim(record.body.subject as Record<string, unknown>, row.salt, claimed);
    if (row.storage !== "pseudonymised") return check;
    const { pseudonyms } = JSON.parse(row.payload) as { pseudonyms: Record<string, string> };
    const key = this.#pseudonym.bytes();
    const agree = Object.keys(claimed).every(
      (name) => pseudonyms[name] === pseudonymOf(key, record.model, name, claimed[name]!),
    );
    return { ...check, ok: check.ok && agree, pseudonyms: agree };
  }

  close(): void {
    this.vault.close();
  }
}

/** The storage of a decision record whose subject is protected; undefined for clear storage or another kind. */
export function protectedStorage(record: LedgerRecord): string | undefined {
  if (record.kind !== "decision") return undefined;
  const privacy = record.body.privacy as { subject_storage?: unknown } | undefined;
  const storage = privacy?.subject_storage;
  return typeof storage === "string" && storage !== "clear" ? storage : undefined;
}

/**
 * Load (creating missing ones) the keys and open the vault of a data folder.
 *
 * @throws WardenError WARDEN_ERR_PRIVACY_KEY, WARDEN_ERR_VAULT
 */
export function openSubjectProtection(
  dataDir: string,
  keys: PrivacyKeyFiles,
  options: { synchronous?: "normal" | "full" } = {},
): SubjectProtection {
  const encryption = loadOrCreatePrivacyKey("encryption", keys.encryption_key_file);
  const pseudonym = loadOrCreatePrivacyKey("pseudonym", keys.pseudonym_key_file);
  const vault = openSubjectVault(dataDir, options.synchronous ? { synchronous: options.synchronous } : {});
  return new SubjectProtection(vault, encryption, pseudonym);
}
