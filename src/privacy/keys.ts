/**
 * Subject privacy keys: 32 random bytes in a file of their own per purpose (encryption, pseudonyms), written as
 * 64 hex digits. A missing file is created with mode 0600 (its folder 0700), whole or not at all. Nothing here
 * ever puts key material into a message, a log line or the ledger: errors describe a file by its size and
 * shape only, and a key is known elsewhere by its id (a hash of it).
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { WardenError } from "../errors/index.js";

/** What a key is for; each purpose has its own key. */
export const KEY_PURPOSES = ["encryption", "pseudonym"] as const;
export type KeyPurpose = (typeof KEY_PURPOSES)[number];

/** Key length in bytes (AES-256, HMAC-SHA256). */
export const KEY_BYTES = 32;

/** A loaded key. Its `toJSON` and inspection never show the bytes. */
export interface PrivacyKey {
  readonly purpose: KeyPurpose;
  /** The key file. */
  readonly path: string;
  /** 16 hex digits of sha256 over the key (with the purpose): names the key in vault rows and messages. */
  readonly id: string;
  /** True when this call generated the key (the file did not exist). */
  readonly created: boolean;
  /** A note for the log when the file is readable by others than its owner. */
  readonly warning: string | undefined;
  /** The key bytes. Never log, return or record them. */
  bytes(): Buffer;
}

const EXPECTED = `${KEY_BYTES} random bytes written as ${KEY_BYTES * 2} hex digits (or base64)`;

/** The id of a key: public, and reveals nothing of it. */
export function keyIdOf(purpose: KeyPurpose, key: Buffer): string {
  return createHash("sha256").update(`warden-${purpose}-key\0`).update(key).digest("hex").slice(0, 16);
}

/**
 * Read the key at `path`, or create one there when the file does not exist.
 *
 * @throws WardenError WARDEN_ERR_PRIVACY_KEY when the file cannot be read or created, or does not hold a key.
 */
export function loadOrCreatePrivacyKey(purpose: KeyPurpose, path: string): PrivacyKey {
  let text = readKey(purpose, path, true);
  let created = false;
  if (text === undefined) {
    created = createKey(purpose, path);
    text = readKey(purpose, path, false)!;
  }
  const key = parseKey(purpose, path, text);
  let warning: string | undefined;
  try {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      warning = `the ${purpose} key file ${path} has mode ${mode.toString(8).padStart(4, "0")}: others can read it; run chmod 600 ${path}`;
    }
  } catch {
    // It was just read; a stat that fails now changes nothing.
  }
  const id = keyIdOf(purpose, key);
  const hidden = Object.freeze({ purpose, path, id, created });
  return Object.freeze({
    ...hidden,
    warning,
    bytes: () => Buffer.from(key),
    toJSON: () => hidden,
    [Symbol.for("nodejs.util.inspect.custom")]: () => `PrivacyKey(${purpose}, ${id})`,
  });
}

function readKey(purpose: KeyPurpose, path: string, missingOk: boolean): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && missingOk) return undefined;
    throw keyError(
      purpose,
      path,
      "a readable key file",
      code === "ENOENT" ? "no such file" : `an error reading it (${code ?? "unknown"})`,
      code === "EISDIR"
        ? "the path names a folder; give the key file's path"
        : "check the path and its permissions",
    );
  }
}

/** The key in a file's bytes: 64 hex digits or base64 of 32 bytes, surrounding white space ignored. */
function parseKey(purpose: KeyPurpose, path: string, raw: Buffer): Buffer {
  const text = raw.toString("latin1").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) {
    const key = Buffer.from(text, "base64");
    if (key.length === KEY_BYTES) return key;
  }
  const found =
    text === ""
      ? "an empty file"
      : /^[0-9a-fA-F]+$/.test(text)
        ? `${text.length} hex digits`
        : `${raw.length} bytes that are neither ${KEY_BYTES * 2} hex digits nor base64 of ${KEY_BYTES} bytes`;
  throw keyError(
    purpose,
    path,
    EXPECTED,
    found,
    `move ${path} away to have a new key created there (only for a new data folder: data protected under the old key needs it), or write one: openssl rand -hex ${KEY_BYTES} > ${path}`,
  );
}

/** Generate a key into `path`; false when another process created the file first. */
function createKey(purpose: KeyPurpose, path: string): boolean {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw keyError(
      purpose,
      path,
      "a folder where the key can be created",
      `an error creating ${dirname(path)} (${(error as NodeJS.ErrnoException).code ?? "unknown"})`,
      "check the path and its permissions",
    );
  }
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const fd = openSync(temp, "wx", 0o600);
    try {
      writeSync(fd, `${randomBytes(KEY_BYTES).toString("hex")}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temp, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    }
  } catch (error) {
    throw keyError(
      purpose,
      path,
      "a writable location for the key file",
      `an error writing it (${(error as NodeJS.ErrnoException).code ?? "unknown"})`,
      "check the folder's permissions and free space",
    );
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // Never created, or already gone.
    }
  }
}

// No `cause`: a system error's text is harmless, but a key error carries nothing it does not need.
function keyError(
  purpose: KeyPurpose,
  file: string,
  expected: string,
  found: string,
  fix: string,
): WardenError {
  const setting = purpose === "encryption" ? "privacy.encryption_key_file" : "privacy.pseudonym_key_file";
  return new WardenError(
    "WARDEN_ERR_PRIVACY_KEY",
    `${purpose} key ${file} (${setting}): expected ${expected}, found ${found}; ${fix}`,
    { details: [{ field: setting, expected, found, fix }] },
  );
}
