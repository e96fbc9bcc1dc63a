import { createHash } from "node:crypto";
import canonicalizeCjs from "canonicalize";
import { describeValue, WardenError } from "../errors/index.js";

// canonicalize ships CommonJS (`module.exports = fn`) with an ESM-style `export default` declaration, so under
// NodeNext TypeScript types the default import as the module record while Node hands us the function itself.
const canonicalize = canonicalizeCjs as unknown as (input: unknown) => string | undefined;

/** The `prev_hash` of the first record: 64 zero hex digits. */
export const GENESIS_HASH = "0".repeat(64);

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * Canonical JSON text of a value (RFC 8785, JSON Canonicalization Scheme): object keys sorted by UTF-16 code
 * units, no whitespace, numbers and strings serialised as ECMAScript's JSON.stringify does.
 *
 * The value must be plain JSON data. Anything JSON cannot represent is rejected instead of being silently
 * turned into different bytes (which is what JSON.stringify and canonicalize do): NaN, ±Infinity, bigint,
 * functions, symbols, `undefined` at the top or inside an array (including holes), class instances such as
 * Date or Map (convert them first, e.g. `toISOString()`), and circular references. An object property whose
 * value is `undefined` is omitted, as JSON.stringify does: it means "absent", and the omission round-trips.
 *
 * @throws WardenError WARDEN_ERR_LEDGER, with the offending path in `details`.
 */
export function canonicalJson(value: unknown): string {
  assertJson(value, [], new Set());
  // assertJson guarantees a JSON value, for which canonicalize always returns a string.
  return canonicalize(value)!;
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
  return createHash("sha256").update(prevHash, "utf8").update(canonical, "utf8").digest("hex");
}

// `path` is the keys and indexes leading to `value`, pushed and popped as the walk goes, so that the text of a
// path is only built for an error.
function assertJson(value: unknown, path: (string | number)[], ancestors: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) reject(path, value);
      return;
    case "object":
      break;
    default:
      reject(path, value);
  }
  if (value === null) return;
  const proto = Object.getPrototypeOf(value);
  const isArray = Array.isArray(value);
  if (!isArray && proto !== Object.prototype && proto !== null) reject(path, value);
  if (ancestors.has(value)) reject(path, value, "a circular reference");
  ancestors.add(value);
  if (isArray) {
    // An index loop, not for-of over entries, so holes in sparse arrays show up as undefined.
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      assertJson(value[i], path, ancestors);
      path.pop();
    }
  } else {
    for (const [key, child] of Object.entries(value)) {
      if (child === undefined) continue;
      path.push(key);
      assertJson(child, path, ancestors);
      path.pop();
    }
  }
  ancestors.delete(value);
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
