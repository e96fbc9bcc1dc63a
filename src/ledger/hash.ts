import * as crypto from "node:crypto";
import { describeValue, WardenError } from "../errors/index.js";

/** The `prev_hash` of the first record: 64 zero hex digits. */
export const GENESIS_HASH = "0".repeat(64);

const HEX_SHA256 = /^[0-9a-f]{64}$/;

// One-shot hashing (Node ≥ 20.12) skips making a Hash object per record; older 20.x falls back to createHash.
const oneShotHex: ((text: string) => string) | undefined =
  typeof crypto.hash === "function" ? (text) => crypto.hash("sha256", text, "hex") : undefined;

/**
 * Canonical JSON text of a value (RFC 8785, JSON Canonicalization Scheme): object keys sorted by UTF-16 code
 * units, no whitespace, numbers and strings serialised as ECMAScript's JSON.stringify does.
 *
 * The value must be plain JSON data. Anything JSON cannot represent is rejected instead of being silently
 * turned into different bytes (which is what JSON.stringify does): NaN, ±Infinity, bigint, functions,
 * symbols, `undefined` at the top or inside an array (including holes), class instances such as Date or Map
 * (convert them first, e.g. `toISOString()`), and circular references. An object property whose value is
 * `undefined` is omitted, as JSON.stringify does: it means "absent", and the omission round-trips.
 *
 * One pass validates and writes (this runs for every decision); the tests hold it to the `canonicalize`
 * package, an independent RFC 8785 implementation, on generated JSON.
 *
 * @throws WardenError WARDEN_ERR_LEDGER, with the offending path in `details`.
 */
export function canonicalJson(value: unknown): string {
  // Values built with their keys in order (every ledger entry Warden writes) are exactly JSON.stringify's text,
  // which native code writes several times faster than the walk below.
  if (sortedPlain(value, 0)) return JSON.stringify(value);
  try {
    return fast(value, 0);
  } catch (error) {
    if (error !== NOT_PLAIN) throw error;
    // Something is not plain JSON: walk again, slowly, to say exactly where and what.
    return write(value, [], new Set());
  }
}

/**
 * A value already written as canonical JSON, which {@link canonicalJson} copies as is wherever it meets it. It
 * lets a part of an entry be canonicalised where it was made (a decision's explanation, on the model's worker
 * thread) and travel as one string instead of an object graph. The text must be {@link canonicalJson}'s output:
 * it is not checked here (that would undo the saving), and the ledger's verification rejects a record whose
 * stored text is not canonical.
 */
export class CanonicalText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
    Object.freeze(this);
  }
}

/** Thrown by the fast path at the first thing it cannot write; the careful walk then reports it. */
const NOT_PLAIN = Symbol("not plain JSON");
/** Deeper than this is treated as a possible cycle and left to the careful walk (which tracks ancestors). */
const MAX_FAST_DEPTH = 64;

/** Characters JSON.stringify escapes in a string (and lone surrogates, which it writes as \u escapes). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what must be escaped.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON: short plain strings (nearly all of them) are quoted directly, the rest by JSON.stringify. */
function quote(text: string): string {
  return text.length < 64 && !NEEDS_ESCAPE.test(text) ? `"${text}"` : JSON.stringify(text);
}

/** Quoted keys followed by `:`; keys come from code and manifests, so the cache stays small (and is capped). */
const quotedKeys = new Map<string, string>();
const MAX_QUOTED_KEYS = 10_000;

function quoteKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = `${JSON.stringify(key)}:`;
    if (quotedKeys.size < MAX_QUOTED_KEYS) quotedKeys.set(key, quoted);
  }
  return quoted;
}

/**
 * Whether JSON.stringify writes `value` canonically: plain data only (finite numbers, no `undefined` in arrays,
 * no class instances), every object's keys already in UTF-16 code unit order. Then JSON.stringify's text is the
 * RFC 8785 text: its numbers and string escapes are the ones RFC 8785 prescribes, and it omits properties whose
 * value is `undefined`, as {@link canonicalJson} does.
 */
function sortedPlain(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth > MAX_FAST_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item === undefined || !sortedPlain(item, depth + 1)) return false;
    }
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i > 0 && !(keys[i - 1]! < key)) return false;
    const child = record[key];
    if (child !== undefined && !sortedPlain(child, depth + 1)) return false;
  }
  return true;
}

// The fast path: no path bookkeeping and no ancestor set, since nearly every value is fine.
function fast(value: unknown, depth: number): string {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw NOT_PLAIN;
      // For finite numbers, ECMAScript's Number-to-String is exactly JSON.stringify's (and RFC 8785's) form.
      return `${value}`;
    case "object":
      break;
    default:
      throw NOT_PLAIN;
  }
  if (value === null) return "null";
  if (value instanceof CanonicalText) return value.text;
  if (depth > MAX_FAST_DEPTH) throw NOT_PLAIN;
  if (Array.isArray(value)) {
    let text = "[";
    for (let i = 0; i < value.length; i++) text += (i === 0 ? "" : ",") + inner(value[i], depth + 1);
    return `${text}]`;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  // Writers that build objects in key order (the decision pipeline does) skip the sort.
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort();
      break;
    }
  }
  let text = "{";
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const child = record[key];
    if (child === undefined) continue;
    text += (first ? "" : ",") + quoteKey(key) + inner(child, depth + 1);
    first = false;
  }
  return `${text}}`;
}

/**
 * A value inside what {@link fast} writes: natively when it is sorted plain data (the parts of an entry around a
 * {@link CanonicalText}), else by the walk.
 */
function inner(value: unknown, depth: number): string {
  return typeof value === "object" && value !== null && sortedPlain(value, depth)
    ? JSON.stringify(value)
    : fast(value, depth);
}

/**
 * The chain hash of one record: lower-case hex sha256 over the UTF-8 bytes of `prevHash` (the previous record's
 * hash as 64 lower-case hex characters, or {@link GENESIS_HASH} for the first record) immediately followed by
 * the UTF-8 bytes of `canonical` (the record's canonical entry JSON, as stored in the `entry` column). There is
 * no separator and no trailing newline. An auditor can recompute a record's hash with:
 *
 * ```sh
 * printf '%s' "$(sqlite3 ledger.sqlite 'SELECT prev_hash || entry FROM records WHERE seq = 1')" | sha256sum
 * ```
 *
 * (`$(...)` strips the newline sqlite3 prints; canonical JSON never contains a raw newline.)
 *
 * @throws RangeError when `prevHash` is not 64 lower-case hex digits.
 */
export function chainHash(prevHash: string, canonical: string): string {
  if (!HEX_SHA256.test(prevHash)) {
    throw new RangeError(`prevHash must be 64 lower-case hex digits, got ${prevHash}`);
  }
  return oneShotHex === undefined
    ? crypto.createHash("sha256").update(prevHash, "utf8").update(canonical, "utf8").digest("hex")
    : oneShotHex(prevHash + canonical);
}

// `path` is the keys and indexes leading to `value`, pushed and popped as the walk goes, so that the text of a
// path is only built for an error.
function write(value: unknown, path: (string | number)[], ancestors: Set<object>): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      // ECMAScript's Number-to-String is what RFC 8785 prescribes (and it writes -0 as 0).
      if (!Number.isFinite(value)) reject(path, value);
      return JSON.stringify(value);
    case "object":
      break;
    default:
      reject(path, value);
  }
  if (value === null) return "null";
  if (value instanceof CanonicalText) return value.text;
  const isArray = Array.isArray(value);
  if (!isArray) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) reject(path, value);
  }
  if (ancestors.has(value)) reject(path, value, "a circular reference");
  ancestors.add(value);
  let text: string;
  if (isArray) {
    text = "[";
    // An index loop, not for-of over entries, so holes in sparse arrays show up as undefined.
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      text += (i === 0 ? "" : ",") + write(value[i], path, ancestors);
      path.pop();
    }
    text += "]";
  } else {
    const record = value as Record<string, unknown>;
    // The default sort compares UTF-16 code units, the order RFC 8785 requires.
    const keys = Object.keys(record).sort();
    text = "{";
    let first = true;
    for (const key of keys) {
      const child = record[key];
      if (child === undefined) continue;
      path.push(key);
      text += `${first ? "" : ","}${JSON.stringify(key)}:${write(child, path, ancestors)}`;
      path.pop();
      first = false;
    }
    text += "}";
  }
  ancestors.delete(value);
  return text;
}

function reject(path: readonly (string | number)[], value: unknown, found?: string): never {
  const field = path.length === 0 ? "(root)" : formatPath(path);
  const shown = found ?? describeFound(value);
  throw new WardenError("WARDEN_ERR_LEDGER", `${field} is ${shown}, which JSON cannot represent`, {
    details: [
      {
        field,
        expected: "plain JSON data: a finite number, string, boolean, null, array or plain object",
        found: shown,
      },
    ],
  });
}

/** `body.inputs[2].Age`, in the style of FieldProblem fields. */
function formatPath(path: readonly (string | number)[]): string {
  let text = "";
  for (const step of path) {
    if (typeof step === "number") text += `[${step}]`;
    else text += text === "" ? step : `.${step}`;
  }
  return text;
}

function describeFound(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    return `an instance of ${value.constructor?.name ?? "a class"}`;
  }
  if (typeof value === "bigint") return `${value}n (bigint)`;
  if (value === undefined) return "undefined"; // describeValue says "missing", which misleads inside an array
  return describeValue(value);
}
