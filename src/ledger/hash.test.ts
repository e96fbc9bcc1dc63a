import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import canonicalizeCjs from "canonicalize";
import fc from "fast-check";
import { WardenError } from "../errors/index.js";
import { CanonicalText, canonicalJson, chainHash, GENESIS_HASH } from "./hash.js";
import { openSqliteLedger } from "./sqlite-store.js";
import { tempDir } from "./testkit.js";
import type { LedgerEntry } from "./types.js";

const ARTIFACT = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const FIXED_ENTRY: LedgerEntry = {
  version: "1.0.0",
  id: "0190c9a2-7b3e-7def-8abc-000000000001",
  kind: "decision",
  time: "2025-01-01T00:00:00.000Z",
  model: "credit",
  artifact_sha256: ARTIFACT,
  body: { score: 0.87, decision: "approve", inputs: { b: 2, a: "x" } },
};

// Written out by hand: keys sorted at every level, no whitespace.
const FIXED_CANONICAL =
  '{"artifact_sha256":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",' +
  '"body":{"decision":"approve","inputs":{"a":"x","b":2},"score":0.87},' +
  '"id":"0190c9a2-7b3e-7def-8abc-000000000001","kind":"decision","model":"credit",' +
  '"time":"2025-01-01T00:00:00.000Z","version":"1.0.0"}';

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

test("GENESIS_HASH is 64 zero hex digits", () => {
  assert.equal(GENESIS_HASH, "0000000000000000000000000000000000000000000000000000000000000000");
});

test("the documented formula: hash = sha256(prev_hash hex text ‖ canonical entry JSON)", (t) => {
  assert.equal(canonicalJson(FIXED_ENTRY), FIXED_CANONICAL);
  const first = sha256(GENESIS_HASH + FIXED_CANONICAL);
  assert.equal(chainHash(GENESIS_HASH, FIXED_CANONICAL), first);
  assert.equal(chainHash(first, FIXED_CANONICAL), sha256(first + FIXED_CANONICAL));

  // The store applies the same formula and stores exactly the hashed text.
  const store = openSqliteLedger(tempDir(t));
  const [record] = store.append([FIXED_ENTRY]);
  store.close();
  assert.equal(record?.prev_hash, GENESIS_HASH);
  assert.equal(record?.hash, first);
});

test("chainHash refuses a prev hash that is not 64 lower-case hex digits", () => {
  assert.throws(() => chainHash("ABC", "{}"), RangeError);
  assert.throws(() => chainHash(GENESIS_HASH.toUpperCase().replace(/0/g, "A"), "{}"), RangeError);
});

test("canonicalJson follows RFC 8785: key order by UTF-16 code units, ECMAScript numbers", () => {
  // The key-sorting example of RFC 8785 §3.2.3.
  const keys = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
  };
  assert.equal(
    canonicalJson(keys),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
      '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
  assert.equal(
    canonicalJson({ n: [1e21, 1e-7, -0, 0.1, 100, 5e-324] }),
    '{"n":[1e+21,1e-7,0,0.1,100,5e-324]}',
  );
  assert.equal(
    canonicalJson({ s: 'quote " backslash \\ newline \n tab \t é' }),
    '{"s":"quote \\" backslash \\\\ newline \\n tab \\t é"}',
  );
});

test("canonicalJson omits object properties whose value is undefined", () => {
  assert.equal(canonicalJson({ a: 1, b: undefined }), '{"a":1}');
});

test("canonicalJson rejects what JSON cannot represent, naming the path", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const cases: [unknown, string][] = [
    [{ body: { score: Number.NaN } }, "body.score"],
    [{ body: { score: Number.POSITIVE_INFINITY } }, "body.score"],
    [{ list: [1, undefined, 3] }, "list[1]"],
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    [{ list: [1, , 3] }, "list[1]"],
    [{ f: () => 1 }, "f"],
    [{ big: 10n }, "big"],
    [{ s: Symbol("x") }, "s"],
    [{ when: new Date(0) }, "when"],
    [{ m: new Map() }, "m"],
    [cyclic, "self"],
    [undefined, "(root)"],
  ];
  for (const [value, field] of cases) {
    assert.throws(
      () => canonicalJson(value),
      (error: unknown) =>
        error instanceof WardenError &&
        error.code === "WARDEN_ERR_LEDGER" &&
        error.details[0]?.field === field,
      field,
    );
  }
});

test("canonicalJson accepts shared (non-cyclic) references and null-prototype objects", () => {
  const shared = { x: 1 };
  const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 2 });
  assert.equal(
    canonicalJson({ p: shared, q: shared, r: bare }),
    '{"p":{"x":1},"q":{"x":1},"r":{"a":2,"b":1}}',
  );
});

test("canonicalJson equals the canonicalize package (an independent RFC 8785 implementation) on generated JSON", () => {
  const reference = canonicalizeCjs as unknown as (input: unknown) => string | undefined;
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      assert.equal(canonicalJson(value), reference(value));
    }),
    { numRuns: 2000, seed: 8785 },
  );
  const awkward = {
    "10": 1,
    "2": 2,
    b: [1e21, 1e-7, -0, 5e-324, 0.1],
    a: "\u2028\ud800😀",
    "\u00e9": null,
    "": {},
  };
  assert.equal(canonicalJson(awkward), reference(awkward));
});

test("canonicalJson copies a CanonicalText as is: the same text as canonicalising the value in place", () => {
  const reference = canonicalizeCjs as unknown as (input: unknown) => string | undefined;
  fc.assert(
    fc.property(
      fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 6 }),
      fc.jsonValue(),
      fc.string(),
      (outer, part, key) => {
        const inPlace = { ...outer, [key]: part };
        const withText = { ...outer, [key]: new CanonicalText(canonicalJson(part)) };
        assert.equal(canonicalJson(withText), reference(inPlace));
        // Inside arrays and at the top too.
        assert.equal(canonicalJson([1, new CanonicalText(canonicalJson(part))]), reference([1, part]));
        assert.equal(canonicalJson(new CanonicalText(canonicalJson(part))), reference(part));
      },
    ),
    { numRuns: 500, seed: 2026 },
  );
  // A decision entry as the pipeline builds it: keys in order around a pre-written explanation.
  const explanation = { base: -1, contributions: { a: 0.5, b: -0.25 }, method: "treeshap" };
  const entry = { ...FIXED_ENTRY, body: { decision: "approve", explanation, inputs: { a: "x", b: 2 } } };
  const prewritten = {
    ...FIXED_ENTRY,
    body: {
      decision: "approve",
      explanation: new CanonicalText(canonicalJson(explanation)),
      inputs: { a: "x", b: 2 },
    },
  };
  assert.equal(canonicalJson(prewritten), canonicalJson(entry));
  assert.equal(canonicalJson(prewritten), reference(entry));
  // What cannot be written is still refused, with a CanonicalText beside it.
  assert.throws(
    () => canonicalJson({ a: new CanonicalText("1"), b: Number.NaN }),
    (error: unknown) => error instanceof WardenError && /b is NaN/.test(error.message),
  );
});
