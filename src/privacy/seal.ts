/**
 * The cryptography of subject storage. A decision whose model stores its subject `pseudonymised` or `encrypted`
 * records, in the hashed ledger entry, one commitment per attribute:
 *
 *     commitment = hex sha256( canonical JSON of {"attribute": name, "salt": salt, "value": value} )
 *
 * (RFC 8785 canonical JSON, UTF-8; `salt` is 32 hex digits, 16 random bytes fresh for each decision, and
 * `value` the attribute's JSON value: a number, string, boolean or null). The salt lives only in the subject
 * vault, beside the stored form:
 * - pseudonym = hex HMAC-SHA256(pseudonym key, canonical JSON of {"attribute", "model", "value"}): equal values
 *   of one model's attribute get equal pseudonyms, so groups can still be compared; it cannot be reversed;
 * - ciphertext = AES-256-GCM(encryption key, 12-byte random IV, canonical JSON of the whole subject), with the
 *   decision id as additional authenticated data, so a row cannot be passed off as another decision's.
 *
 * Without the salt a commitment says nothing about the value (128 random bits stand in front of it), so once
 * retention removes the vault row the ledger keeps no personal data; with the salt, anyone can check a claimed
 * value against the ledger ({@link verifySubjectClaim}).
 */
import { createCipheriv, createDecipheriv, createHmac, hash, randomFillSync } from "node:crypto";
import type { FeatureValue } from "../decision/input.js";
import { describeValue, WardenError } from "../errors/index.js";
import { canonicalJson } from "../ledger/hash.js";

/** Salt bytes per decision. */
export const SALT_BYTES = 16;
const IV_BYTES = 12;
const AAD_PREFIX = "warden-subject-v1\0";

// Random bytes are drawn in blocks: one system call per 256 decisions rather than two per decision.
const POOL = Buffer.alloc(256 * (SALT_BYTES + IV_BYTES));
let poolAt = POOL.length;

/**
 * `use` the next `bytes` random bytes of the pool (a view, valid only during the call), then overwrite them, so
 * that pool bytes never serve twice even if the buffer leaks.
 */
function withRandom<T>(bytes: number, use: (random: Buffer) => T): T {
  if (poolAt + bytes > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += bytes;
  try {
    return use(POOL.subarray(at, at + bytes));
  } finally {
    POOL.fill(0, at, at + bytes);
  }
}

/** A fresh salt: 32 hex digits. */
export function newSalt(): string {
  return withRandom(SALT_BYTES, (bytes) => bytes.toString("hex"));
}

/** The commitment to one attribute's value (see the module comment). */
export function subjectCommitment(salt: string, attribute: string, value: FeatureValue): string {
  // One-shot hashing: a third of createHash's cost for inputs this small (it runs for every decision). The
  // canonical text is written out directly (keys in RFC 8785 order: attribute, salt, value); the salt is hex,
  // so needs no escaping.
  return hash(
    "sha256",
    `{"attribute":${quotedName(attribute)},"salt":"${salt}","value":${jsonValue(value)}}`,
    "hex",
  );
}

/** Attribute names as JSON strings; names come from manifests, so the cache stays small (and is capped). */
const quotedNames = new Map<string, string>();
function quotedName(name: string): string {
  let quoted = quotedNames.get(name);
  if (quoted === undefined) {
    quoted = canonicalJson(name);
    if (quotedNames.size < 1024) quotedNames.set(name, quoted);
  }
  return quoted;
}

/** A value as canonical JSON: JSON.stringify's text for everything but a non-finite number, which canonicalJson refuses. */
function jsonValue(value: FeatureValue): string {
  return typeof value === "number" && !Number.isFinite(value) ? canonicalJson(value) : JSON.stringify(value);
}

/** A commitment as it stands in the ledger entry's `subject`, one per attribute. */
export interface Commitment {
  readonly commitment: string;
}

/** The commitments to a subject, keys in the subject's order. */
export function commitSubject(
  salt: string,
  subject: Readonly<Record<string, FeatureValue>>,
): Record<string, Commitment> {
  const out: Record<string, Commitment> = {};
  for (const name of Object.keys(subject))
    out[name] = { commitment: subjectCommitment(salt, name, subject[name]!) };
  return out;
}

/** The pseudonym of one attribute value of a model. */
export function pseudonymOf(key: Buffer, model: string, attribute: string, value: FeatureValue): string {
  return createHmac("sha256", key).update(canonicalJson({ attribute, model, value }), "utf8").digest("hex");
}

/** An encrypted subject as the vault keeps it. */
export interface SealedBox {
  readonly alg: "A256GCM";
  readonly key_id: string;
  /** base64 */
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
}

/** Encrypt a subject for one decision. */
export function encryptSubject(
  key: Buffer,
  keyId: string,
  decisionId: string,
  subject: Readonly<Record<string, FeatureValue>>,
): SealedBox {
  // The cipher copies the IV when it is made.
  const [cipher, iv] = withRandom(
    IV_BYTES,
    (bytes) => [createCipheriv("aes-256-gcm", key, bytes), bytes.toString("base64")] as const,
  );
  cipher.setAAD(Buffer.from(AAD_PREFIX + decisionId, "utf8"));
  const ct = Buffer.concat([cipher.update(canonicalJson(subject), "utf8"), cipher.final()]);
  return {
    alg: "A256GCM",
    key_id: keyId,
    iv,
    ct: ct.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
  };
}

/**
 * Decrypt a subject.
 *
 * @throws WardenError WARDEN_ERR_PRIVACY_KEY when the box was sealed under another key; WARDEN_ERR_VAULT when
 *   it does not authenticate (damaged, or moved from another decision).
 */
export function decryptSubject(
  key: Buffer,
  keyId: string,
  decisionId: string,
  box: SealedBox,
): Record<string, FeatureValue> {
  if (box.key_id !== keyId) {
    throw new WardenError(
      "WARDEN_ERR_PRIVACY_KEY",
      `the subject of decision ${decisionId} was encrypted under key ${box.key_id}; the configured encryption key is ${keyId}`,
      {
        details: [
          {
            field: "privacy.encryption_key_file",
            expected: `the key with id ${box.key_id}`,
            found: `the key with id ${keyId}`,
            fix: "point privacy.encryption_key_file at the key this data folder was written with",
          },
        ],
      },
    );
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(box.iv, "base64"));
    decipher.setAAD(Buffer.from(AAD_PREFIX + decisionId, "utf8"));
    decipher.setAuthTag(Buffer.from(box.tag, "base64"));
    const text = Buffer.concat([decipher.update(Buffer.from(box.ct, "base64")), decipher.final()]).toString(
      "utf8",
    );
    return JSON.parse(text) as Record<string, FeatureValue>;
  } catch {
    throw new WardenError(
      "WARDEN_ERR_VAULT",
      `the encrypted subject of decision ${decisionId} does not authenticate: the vault row is damaged or belongs to another decision`,
    );
  }
}

/** The outcome of checking claimed values against a decision's commitments. */
export interface ClaimCheck {
  /** True when every claimed attribute matches its commitment (and at least one was claimed). */
  readonly ok: boolean;
  /** Claimed attributes whose value matches the commitment. */
  readonly matched: readonly string[];
  /** Claimed attributes whose value does not. */
  readonly mismatched: readonly string[];
  /** Claimed attributes the decision holds no commitment for. */
  readonly uncommitted: readonly string[];
}

/**
 * Check clear values against the commitments of a decision's ledger entry (`body.subject`), given the salt from
 * its vault row. This is the proof that a value is the one recorded: the entry is covered by the hash chain,
 * and a different value (or salt) gives a different commitment.
 */
export function verifySubjectClaim(
  committed: Readonly<Record<string, unknown>>,
  salt: string,
  claimed: Readonly<Record<string, FeatureValue>>,
): ClaimCheck {
  const matched: string[] = [];
  const mismatched: string[] = [];
  const uncommitted: string[] = [];
  for (const name of Object.keys(claimed)) {
    const entry = Object.hasOwn(committed, name) ? committed[name] : undefined;
    const commitment =
      typeof entry === "object" && entry !== null
        ? (entry as { commitment?: unknown }).commitment
        : undefined;
    if (typeof commitment !== "string") uncommitted.push(name);
    else if (subjectCommitment(salt, name, claimed[name]!) === commitment) matched.push(name);
    else mismatched.push(name);
  }
  return {
    ok: matched.length > 0 && mismatched.length === 0 && uncommitted.length === 0,
    matched,
    mismatched,
    uncommitted,
  };
}

/** Parse a stored box, refusing anything else. */
export function parseBox(decisionId: string, text: string): SealedBox {
  const box = JSON.parse(text) as Partial<SealedBox>;
  for (const field of ["alg", "key_id", "iv", "ct", "tag"] as const) {
    if (typeof box[field] !== "string") {
      throw new WardenError("WARDEN_ERR_VAULT", `the vault row of decision ${decisionId} is damaged`, {
        details: [{ field, expected: "a string", found: describeValue(box[field]) }],
      });
    }
  }
  return box as SealedBox;
}

/** Date part → the date part `days` later, for the days in use. */
const dayCache = new Map<string, { days: number; day: string }>();
/** The time `days` after an ISO time, as ISO. */
export function addDays(time: string, days: number): string {
  // The day count is added to the date part only (times are ISO UTC with milliseconds): no Date object per
  // decision. Falls back to Date arithmetic for anything else.
  const match = /^(\d{4}-\d{2}-\d{2})(T.*Z)$/.exec(time);
  if (match === null) return new Date(Date.parse(time) + days * 86_400_000).toISOString();
  const cached = dayCache.get(match[1]!);
  const day =
    cached !== undefined && cached.days === days
      ? cached.day
      : new Date(Date.parse(`${match[1]}T00:00:00.000Z`) + days * 86_400_000).toISOString().slice(0, 10);
  if (cached?.day !== day) dayCache.set(match[1]!, { days, day });
  if (dayCache.size > 64) dayCache.clear();
  return `${day}${match[2]}`;
}

/** The keys a sealer needs: copies of the key bytes, with their ids (see keys.ts). Never logged or recorded. */
export interface SealKeys {
  readonly encryption: { readonly id: string; readonly key: Uint8Array };
  readonly pseudonym: { readonly id: string; readonly key: Uint8Array };
}

/** What a sealed subject is recorded for: the model and its privacy policy. */
export interface SealTarget {
  readonly model: string;
  readonly version: string;
  readonly storage: "pseudonymised" | "encrypted";
  readonly retentionDays: number;
}

/** A subject sealed for one decision: what its ledger entry and its vault row hold. */
export interface SealedSubject {
  /** One commitment (64 hex digits) per attribute, in the subject's key order. */
  readonly commitments: readonly string[];
  /**
   * The vault row (privacy/vault.ts `VaultRow`) as one line of JSON text, ready for the ledger's journal;
   * undefined when the subject is empty.
   */
  readonly vaultJson: string | undefined;
}

/** A key's bytes as a Buffer (a view, made once per key). */
const keyViews = new WeakMap<Uint8Array, Buffer>();
function keyBytes(key: Uint8Array): Buffer {
  let view = keyViews.get(key);
  if (view === undefined) {
    view = Buffer.from(key.buffer, key.byteOffset, key.length);
    keyViews.set(key, view);
  }
  return view;
}

/**
 * Seal one decision's subject: commitments for the ledger entry, and the vault row holding the salt with the
 * pseudonyms or the ciphertext. Runs on a model's worker thread, beside inference (see runtime/worker.ts), so
 * the serving thread never spends its time on the ciphers.
 */
export function sealSubject(
  keys: SealKeys,
  target: SealTarget,
  decisionId: string,
  time: string,
  subject: Readonly<Record<string, FeatureValue>>,
): SealedSubject {
  const names = Object.keys(subject);
  if (names.length === 0) return { commitments: [], vaultJson: undefined };
  const salt = newSalt();
  let payload: string;
  if (target.storage === "encrypted") {
    const key = keyBytes(keys.encryption.key);
    payload = JSON.stringify(encryptSubject(key, keys.encryption.id, decisionId, subject));
  } else {
    const key = keyBytes(keys.pseudonym.key);
    const pseudonyms: Record<string, string> = {};
    for (const name of names) pseudonyms[name] = pseudonymOf(key, target.model, name, subject[name]!);
    payload = JSON.stringify({ alg: "HS256", key_id: keys.pseudonym.id, pseudonyms });
  }
  const commitments = names.map((name) => subjectCommitment(salt, name, subject[name]!));
  // Field for field privacy/vault.ts `VaultRow`.
  const row = {
    decision_id: decisionId,
    model: target.model,
    version: target.version,
    time,
    storage: target.storage,
    retention_days: target.retentionDays,
    retain_until: addDays(time, target.retentionDays),
    salt,
    payload,
    purged_at: null,
    purge_record: null,
  };
  return { commitments, vaultJson: JSON.stringify(row) };
}
