/**
 * Signed tree heads (STH): a Merkle checkpoint of the ledger, signed with Ed25519.
 *
 * A tree head is `{tree_size, root_hash, timestamp, key_id}`: the number of leaves, their Merkle root (64
 * lower-case hex digits), when it was made (ISO-8601 UTC with milliseconds, as `Date.toISOString` writes it)
 * and which key signed it (hex SHA-256 of the public key's SPKI DER). The signature is Ed25519 over the UTF-8
 * bytes of the tree head's RFC 8785 canonical JSON ({@link treeHeadSigningInput}: exactly those four fields),
 * carried in base64 as `signature`. Signing size and root together is what binds a proof to one tree size.
 *
 * The key lives in a PKCS#8 PEM file ({@link loadOrCreateSigningKey}); its public half sits beside it as
 * `<path>.pub` (SPKI PEM), which is what an auditor needs ({@link loadPublicKey}).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import { canonicalJson } from "./hash.js";

/** What a tree head states. */
export interface TreeHead {
  /** Leaves in the tree (ledger records covered, from the first). */
  readonly tree_size: number;
  /** The Merkle root of those leaves: 64 lower-case hex digits. */
  readonly root_hash: string;
  /** When the head was made: ISO-8601 UTC with milliseconds, e.g. `2025-01-01T00:00:00.000Z`. */
  readonly timestamp: string;
  /** Hex SHA-256 of the signing key's public key in SPKI DER ({@link keyIdOf}). */
  readonly key_id: string;
}

/** A tree head and its Ed25519 signature (base64, 64 bytes) over {@link treeHeadSigningInput}. */
export interface SignedTreeHead extends TreeHead {
  readonly signature: string;
}

/** A loaded signing key. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** {@link keyIdOf} the public key. */
  readonly keyId: string;
  /** The private key file. */
  readonly path: string;
  /** The public key file: `<path>.pub`. */
  readonly publicKeyPath: string;
  /** True when this call generated the key (the file did not exist). */
  readonly created: boolean;
}

/** Why a signed tree head was refused. */
export type TreeHeadFailure =
  /** Not a signed tree head: a field missing, extra, or of the wrong form (see `field`); or not an Ed25519 public key. */
  | "malformed"
  /** `key_id` names another key than the one given to check with. */
  | "key-id-mismatch"
  /** The signature does not verify: the head was changed, or another key signed it. */
  | "bad-signature";

/** The outcome of checking a signed tree head. */
export type TreeHeadCheck =
  | { readonly ok: true; readonly head: TreeHead }
  | {
      readonly ok: false;
      readonly failure: TreeHeadFailure;
      readonly field?: string;
      readonly message: string;
    };

const HEX_HASH = /^[0-9a-f]{64}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** 64 bytes in padded base64, canonically (the last character before `==` carries 2 bits and 4 zero bits). */
const SIGNATURE_BASE64 = /^[A-Za-z0-9+/]{85}[AQgw]==$/;
const HEAD_FIELDS = ["key_id", "root_hash", "timestamp", "tree_size"] as const;
const SIGNED_FIELDS = [...HEAD_FIELDS, "signature"] as const;

/** The key id: hex SHA-256 of the public key's SPKI DER. A private key is taken as its public half. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  return createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");
}

/**
 * A tree head for `treeSize` leaves with Merkle root `root` (bytes or hex), made now (or at `time`), naming
 * the key with `keyId`.
 * @throws WardenError WARDEN_ERR_LEDGER when a field is out of form.
 */
export function makeTreeHead(
  treeSize: number,
  root: Uint8Array | string,
  keyId: string,
  time: Date = new Date(),
): TreeHead {
  const head: TreeHead = {
    tree_size: treeSize,
    root_hash: root instanceof Uint8Array ? Buffer.from(root).toString("hex") : root,
    timestamp: time instanceof Date && Number.isFinite(time.getTime()) ? time.toISOString() : String(time),
    key_id: keyId,
  };
  const problem = headProblems(head)[0];
  if (problem !== undefined) throw headError(problem);
  return head;
}

/** The exact text that is signed: the RFC 8785 canonical JSON of the four tree-head fields (signed as UTF-8). */
export function treeHeadSigningInput(head: TreeHead): string {
  return canonicalJson({
    key_id: head.key_id,
    root_hash: head.root_hash,
    timestamp: head.timestamp,
    tree_size: head.tree_size,
  });
}

/**
 * Sign a tree head with an Ed25519 private key.
 * @throws WardenError WARDEN_ERR_LEDGER when the head is out of form or its `key_id` is not this key's;
 *   WARDEN_ERR_SIGNING_KEY when `privateKey` is not an Ed25519 private key.
 */
export function signTreeHead(head: TreeHead, privateKey: KeyObject): SignedTreeHead {
  if (
    !isKeyObject(privateKey) ||
    privateKey.type !== "private" ||
    privateKey.asymmetricKeyType !== "ed25519"
  ) {
    throw new WardenError("WARDEN_ERR_SIGNING_KEY", "signTreeHead needs an Ed25519 private key", {
      details: [
        { field: "privateKey", expected: "an Ed25519 private KeyObject", found: describeKey(privateKey) },
      ],
    });
  }
  const problem = headProblems(head)[0];
  if (problem !== undefined) throw headError(problem);
  const keyId = keyIdOf(privateKey);
  if (head.key_id !== keyId) {
    throw headError({
      field: "key_id",
      expected: `the signing key's id ${keyId}`,
      found: describeValue(head.key_id),
      fix: "make the head with keyIdOf(key) or the SigningKey's keyId",
    });
  }
  const signature = sign(null, Buffer.from(treeHeadSigningInput(head), "utf8"), privateKey);
  return {
    tree_size: head.tree_size,
    root_hash: head.root_hash,
    timestamp: head.timestamp,
    key_id: head.key_id,
    signature: signature.toString("base64"),
  };
}

/**
 * Check a signed tree head (for instance parsed from JSON) against an Ed25519 public key: its form (exactly
 * the five fields, each in form), that `key_id` is this key's, and the signature. Never throws.
 */
export function verifyTreeHead(sth: unknown, publicKey: KeyObject): TreeHeadCheck {
  try {
    if (!isKeyObject(publicKey) || publicKey.asymmetricKeyType !== "ed25519" || publicKey.type === "secret") {
      return {
        ok: false,
        failure: "malformed",
        field: "publicKey",
        message: `publicKey: expected an Ed25519 public KeyObject, found ${describeKey(publicKey)}`,
      };
    }
    const problem = signedHeadProblems(sth)[0];
    if (problem !== undefined) {
      return {
        ok: false,
        failure: "malformed",
        field: problem.field,
        message: `${problem.field}: expected ${problem.expected}, found ${problem.found}`,
      };
    }
    const signed = sth as SignedTreeHead;
    const keyId = keyIdOf(publicKey);
    if (signed.key_id !== keyId) {
      return {
        ok: false,
        failure: "key-id-mismatch",
        field: "key_id",
        message: `the tree head was signed by key ${signed.key_id}, not by the key given (${keyId})`,
      };
    }
    const head: TreeHead = {
      tree_size: signed.tree_size,
      root_hash: signed.root_hash,
      timestamp: signed.timestamp,
      key_id: signed.key_id,
    };
    const good = verify(
      null,
      Buffer.from(treeHeadSigningInput(head), "utf8"),
      publicKey,
      Buffer.from(signed.signature, "base64"),
    );
    if (!good) {
      return {
        ok: false,
        failure: "bad-signature",
        field: "signature",
        message: `the signature does not verify for tree size ${head.tree_size}, root ${head.root_hash}, time ${head.timestamp}`,
      };
    }
    return { ok: true, head };
  } catch (error) {
    return { ok: false, failure: "malformed", message: `the tree head could not be read: ${String(error)}` };
  }
}

function signedHeadProblems(value: unknown): FieldProblem[] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return [{ field: "(root)", expected: "a signed tree head object", found: describeValue(value) }];
  }
  const extra = Object.keys(value).filter((key) => !(SIGNED_FIELDS as readonly string[]).includes(key));
  if (extra.length > 0) {
    return [
      {
        field: extra[0]!,
        expected: `only the fields ${SIGNED_FIELDS.join(", ")}`,
        found: `an extra field ${JSON.stringify(extra[0])}`,
        fix: "fields outside the signature cannot be trusted; remove them",
      },
    ];
  }
  const record = value as Record<string, unknown>;
  const problems = headProblems(record);
  if (typeof record.signature !== "string" || !SIGNATURE_BASE64.test(record.signature)) {
    problems.push({
      field: "signature",
      expected: "an Ed25519 signature: 64 bytes in padded base64 (88 characters)",
      found: describeValue(record.signature),
    });
  }
  return problems;
}

function headProblems(head: unknown): FieldProblem[] {
  if (typeof head !== "object" || head === null) {
    return [{ field: "(root)", expected: "a tree head object", found: describeValue(head) }];
  }
  const record = head as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  const size = record.tree_size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    problems.push({
      field: "tree_size",
      expected: "a non-negative safe integer",
      found: describeValue(size),
    });
  }
  if (typeof record.root_hash !== "string" || !HEX_HASH.test(record.root_hash)) {
    problems.push({
      field: "root_hash",
      expected: "a SHA-256 Merkle root as 64 lower-case hex digits",
      found: describeValue(record.root_hash),
    });
  }
  const time = record.timestamp;
  if (typeof time !== "string" || !ISO_UTC.test(time) || new Date(time).toISOString() !== time) {
    problems.push({
      field: "timestamp",
      expected:
        "an ISO-8601 UTC time with milliseconds, as Date.toISOString writes it (2025-01-01T00:00:00.000Z)",
      found: describeValue(time),
    });
  }
  if (typeof record.key_id !== "string" || !HEX_HASH.test(record.key_id)) {
    problems.push({
      field: "key_id",
      expected: "a key id: hex SHA-256 of the public key's SPKI DER (64 lower-case hex digits)",
      found: describeValue(record.key_id),
    });
  }
  return problems;
}

function headError(problem: FieldProblem): WardenError {
  return new WardenError(
    "WARDEN_ERR_LEDGER",
    `tree head ${problem.field}: expected ${problem.expected}, found ${problem.found}`,
    {
      details: [problem],
    },
  );
}

function isKeyObject(value: unknown): value is KeyObject {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as KeyObject).export === "function" &&
    "asymmetricKeyType" in value
  );
}

function describeKey(value: unknown): string {
  if (isKeyObject(value)) {
    return `a ${value.asymmetricKeyType ?? "symmetric"} ${value.type} key`;
  }
  return describeValue(value);
}

// ---------------------------------------------------------------------------------------------------------
// Key files

const PRIVATE_EXPECTED = "an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)";

/**
 * Load the Ed25519 signing key from `path` (PKCS#8 PEM). If the file does not exist, generate a key, write it
 * there with mode 0600 (creating the folder, mode 0700), and write its public key beside it as `<path>.pub`
 * (SPKI PEM, mode 0644). An existing key whose `.pub` is missing gets it written again.
 *
 * The key file appears complete or not at all: it is written to a temporary file and then linked into place,
 * which fails if another process created the key first (that key is then loaded).
 *
 * @throws WardenError WARDEN_ERR_SIGNING_KEY naming the file, what was expected and found, and the fix, when
 *   the file exists but is not an Ed25519 private key, or cannot be read or written.
 */
export function loadOrCreateSigningKey(path: string): SigningKey {
  if (typeof path !== "string" || path === "") {
    throw keyError(
      "(signing key path)",
      "a file path",
      describeValue(path),
      "configure where the signing key lives",
    );
  }
  const publicKeyPath = `${path}.pub`;
  let text = readKeyFile(path, true);
  let created = false;
  if (text === undefined) {
    created = createKeyFile(path);
    text = readKeyFile(path, false)!;
  }
  const privateKey = parsePrivateKey(path, text);
  const publicKey = createPublicKey(privateKey);
  if (created || readKeyFile(publicKeyPath, true) === undefined) {
    writeAtomically(publicKeyPath, publicKey.export({ type: "spki", format: "pem" }).toString(), 0o644, true);
  }
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), path, publicKeyPath, created };
}

/**
 * Load an Ed25519 public key from an SPKI PEM file (`-----BEGIN PUBLIC KEY-----`), such as the `.pub` file
 * that {@link loadOrCreateSigningKey} writes.
 * @throws WardenError WARDEN_ERR_SIGNING_KEY when the file is missing, unreadable, a private key, or not Ed25519.
 */
export function loadPublicKey(path: string): KeyObject {
  const expected = "an Ed25519 public key in SPKI PEM (-----BEGIN PUBLIC KEY-----)";
  const text = readKeyFile(path, false)!;
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    throw keyError(
      path,
      expected,
      "a private key",
      "give the public key (the .pub file); keep private keys away from verifiers",
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: "pem" });
  } catch {
    throw keyError(
      path,
      expected,
      describeKeyText(text),
      "point at the .pub file written beside the signing key",
    );
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw keyError(
      path,
      expected,
      `a ${key.asymmetricKeyType} public key`,
      "tree heads are signed with Ed25519 keys only",
    );
  }
  return key;
}

/** The file's text; undefined when it does not exist and `missingOk`. */
function readKeyFile(path: string, missingOk: boolean): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && missingOk) return undefined;
    throw keyError(
      path,
      "a readable key file",
      code === "ENOENT" ? "no such file" : `an error reading it (${code ?? String(error)})`,
      code === "EISDIR"
        ? "the path names a folder; give the key file's path"
        : "check the path and its permissions",
      error,
    );
  }
}

/** Generate a key into `path`; false when another process created the file first. */
function createKeyFile(path: string): boolean {
  const { privateKey } = generateKeyPairSync("ed25519");
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw keyError(
      path,
      "a folder where the key can be created",
      `an error creating ${dirname(path)} (${(error as NodeJS.ErrnoException).code})`,
      "check the path and its permissions",
      error,
    );
  }
  return writeAtomically(path, pem, 0o600, false);
}

/**
 * Write `text` to a temporary file with `mode`, fsync it, then move it to `path`: replacing what is there
 * (`replace`; a link at `path` is replaced, never written through), or only if nothing is (a hard link, which
 * fails with EEXIST). False when `path` existed. Errors are the file system's.
 */
export function writeFileAtomically(path: string, text: string, mode: number, replace: boolean): boolean {
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    const fd = openSync(temp, "wx", mode);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (replace) {
      renameSync(temp, path);
      return true;
    }
    try {
      linkSync(temp, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    }
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // Already gone (renamed), or never made.
    }
  }
}

/** {@link writeFileAtomically}, its failures reported as a signing key's. */
function writeAtomically(path: string, text: string, mode: number, replace: boolean): boolean {
  try {
    return writeFileAtomically(path, text, mode, replace);
  } catch (error) {
    throw keyError(
      path,
      "a writable location for the key file",
      `an error writing it (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      "check the folder's permissions and free space",
      error,
    );
  }
}

function parsePrivateKey(path: string, text: string): KeyObject {
  const fix = `move ${path} away to have a new key created there, or put an Ed25519 key there: openssl genpkey -algorithm ed25519 -out ${path}`;
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text)) {
    throw keyError(
      path,
      PRIVATE_EXPECTED,
      "an encrypted private key",
      `decrypt it: openssl pkey -in ${path} -out ${path}.plain, then use that file`,
    );
  }
  if (/-----BEGIN PUBLIC KEY-----/.test(text)) {
    throw keyError(
      path,
      PRIVATE_EXPECTED,
      "a public key",
      `give the private key's path (the public key is ${path}.pub beside it)`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: "pem" });
  } catch (error) {
    throw keyError(path, PRIVATE_EXPECTED, describeKeyText(text), fix, error);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw keyError(path, PRIVATE_EXPECTED, `a ${key.asymmetricKeyType} private key`, fix);
  }
  return key;
}

/** What a file that did not parse as a key looks like, without echoing key material. */
function describeKeyText(text: string): string {
  if (text.trim() === "") return "an empty file";
  const label = text.match(/-----BEGIN ([A-Z0-9 ]+)-----/);
  if (label) return `PEM data labelled "${label[1]}" that is not a usable key`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: binary data is recognised by its control bytes.
  if (/[\u0000-\u0008\u000e-\u001f]/.test(text))
    return `${Buffer.byteLength(text)} bytes of binary data, not PEM`;
  return `${Buffer.byteLength(text)} bytes of text without a PEM key block`;
}

function keyError(file: string, expected: string, found: string, fix: string, cause?: unknown): WardenError {
  return new WardenError(
    "WARDEN_ERR_SIGNING_KEY",
    `signing key ${file}: expected ${expected}, found ${found}; ${fix}`,
    cause === undefined
      ? { details: [{ field: file, expected, found, fix }] }
      : { details: [{ field: file, expected, found, fix }], cause },
  );
}
