import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { WardenError } from "../errors/index.js";
import { canonicalJson } from "../ledger/index.js";
import { tempDir } from "../testing/index.js";
import {
  commitSubject,
  decryptSubject,
  encryptSubject,
  keyIdOf,
  loadOrCreatePrivacyKey,
  newSalt,
  pseudonymOf,
  subjectCommitment,
  verifySubjectClaim,
} from "./index.js";

const dir = tempDir("privacy-keys");
after(() => dir.remove());

test("a missing key is created: 32 random bytes as hex, mode 0600 in a 0700 folder; loading it again gives the same key", () => {
  const path = join(dir.path, "keys", "enc.key");
  const key = loadOrCreatePrivacyKey("encryption", path);
  assert.equal(key.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir.path, "keys")).mode & 0o777, 0o700);
  const text = readFileSync(path, "utf8");
  assert.match(text, /^[0-9a-f]{64}\n$/);
  assert.deepEqual(key.bytes(), Buffer.from(text.trim(), "hex"));
  assert.equal(key.warning, undefined);
  const again = loadOrCreatePrivacyKey("encryption", path);
  assert.equal(again.created, false);
  assert.equal(again.id, key.id);
  assert.match(key.id, /^[0-9a-f]{16}$/);
  // The id names the key without showing it, and differs per purpose.
  assert.notEqual(keyIdOf("pseudonym", key.bytes()), key.id);
  // Serialising or inspecting a key never shows its bytes.
  const hex = text.trim();
  assert.ok(!JSON.stringify(key).includes(hex));
  assert.ok(!JSON.stringify({ key }).includes(key.bytes().toString("base64")));
});

test("base64 keys are accepted; a file readable by others gets a warning naming chmod", () => {
  const path = join(dir.path, "b64.key");
  const bytes = Buffer.alloc(32, 7);
  writeFileSync(path, `${bytes.toString("base64")}\n`, { mode: 0o644 });
  chmodSync(path, 0o644);
  const key = loadOrCreatePrivacyKey("pseudonym", path);
  assert.deepEqual(key.bytes(), bytes);
  assert.match(key.warning ?? "", /mode 0644.*chmod 600/);
});

test("a file that is not a key is refused with the file, what was expected and the fix, never its content", () => {
  const secretish = "hunter2-this-is-not-a-key-but-still-private";
  for (const [name, content, found] of [
    ["text.key", secretish, /bytes that are neither 64 hex digits nor base64/],
    ["short.key", "abcd".repeat(8), /32 hex digits/],
    ["empty.key", "", /an empty file/],
  ] as const) {
    const path = join(dir.path, name);
    writeFileSync(path, content);
    assert.throws(
      () => loadOrCreatePrivacyKey("encryption", path),
      (error: unknown) => {
        assert.ok(error instanceof WardenError);
        assert.equal(error.code, "WARDEN_ERR_PRIVACY_KEY");
        assert.ok(error.message.includes(path));
        assert.ok(error.message.includes("privacy.encryption_key_file"));
        assert.match(error.message, found);
        assert.match(error.message, /openssl rand -hex 32/);
        const all = JSON.stringify(error.toJSON()) + error.message + String(error.stack);
        if (content !== "") assert.ok(!all.includes(content), "the file's content is never echoed");
        return true;
      },
    );
  }
  assert.throws(
    () => loadOrCreatePrivacyKey("pseudonym", dir.path),
    (e: unknown) =>
      e instanceof WardenError && e.code === "WARDEN_ERR_PRIVACY_KEY" && /folder/.test(e.message),
  );
});

test("commitments: sha256 of the canonical {attribute, salt, value}; a claimed value is checked against them", () => {
  const salt = newSalt();
  assert.match(salt, /^[0-9a-f]{32}$/);
  assert.notEqual(newSalt(), salt, "a fresh salt per decision");
  const subject = { Age: 30, Marital: "separated", Widowed: null } as const;
  const committed = commitSubject(salt, subject);
  // An auditor recomputes it from the published recipe.
  const expected = createHash("sha256")
    .update(canonicalJson({ attribute: "Age", salt, value: 30 }))
    .digest("hex");
  assert.equal(committed.Age!.commitment, expected);
  assert.equal(subjectCommitment(salt, "Age", 30), expected);
  assert.deepEqual(verifySubjectClaim(committed, salt, { Age: 30, Marital: "separated", Widowed: null }), {
    ok: true,
    matched: ["Age", "Marital", "Widowed"],
    mismatched: [],
    uncommitted: [],
  });
  const wrong = verifySubjectClaim(committed, salt, { Age: 31 });
  assert.equal(wrong.ok, false);
  assert.deepEqual(wrong.mismatched, ["Age"]);
  // Type matters: 30 and "30" are different values.
  assert.equal(verifySubjectClaim(committed, salt, { Age: "30" }).ok, false);
  assert.equal(verifySubjectClaim(committed, newSalt(), { Age: 30 }).ok, false, "another salt fails");
  assert.deepEqual(verifySubjectClaim(committed, salt, { Height: 180 }).uncommitted, ["Height"]);
  assert.equal(verifySubjectClaim(committed, salt, {}).ok, false, "nothing claimed proves nothing");
  // The same value under another attribute name commits differently.
  assert.notEqual(subjectCommitment(salt, "A", 1), subjectCommitment(salt, "B", 1));
});

test("pseudonyms: equal values of a model's attribute get equal pseudonyms; other keys, models or attributes do not", () => {
  const key = Buffer.alloc(32, 1);
  const a = pseudonymOf(key, "m", "Marital", "married");
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.equal(pseudonymOf(key, "m", "Marital", "married"), a);
  assert.notEqual(pseudonymOf(key, "m", "Marital", "single"), a);
  assert.notEqual(pseudonymOf(key, "other", "Marital", "married"), a);
  assert.notEqual(pseudonymOf(Buffer.alloc(32, 2), "m", "Marital", "married"), a);
  assert.ok(!a.includes(Buffer.from("married").toString("hex")));
});

test("encryption: AES-256-GCM round-trips; another decision id, a damaged box or another key is refused", () => {
  const key = Buffer.alloc(32, 9);
  const id = keyIdOf("encryption", key);
  const subject = { Age: 41, Marital: "widow" };
  const box = encryptSubject(key, id, "d-1", subject);
  assert.equal(box.alg, "A256GCM");
  assert.equal(Buffer.from(box.iv, "base64").length, 12);
  assert.ok(!JSON.stringify(box).includes("widow"));
  assert.notEqual(encryptSubject(key, id, "d-1", subject).iv, box.iv, "a fresh IV each time");
  assert.deepEqual(decryptSubject(key, id, "d-1", box), subject);
  assert.throws(() => decryptSubject(key, id, "d-2", box), /does not authenticate/);
  const flipped = Buffer.from(box.ct, "base64");
  flipped[0]! ^= 1;
  assert.throws(
    () => decryptSubject(key, id, "d-1", { ...box, ct: flipped.toString("base64") }),
    (e: unknown) => e instanceof WardenError && e.code === "WARDEN_ERR_VAULT",
  );
  const other = Buffer.alloc(32, 8);
  assert.throws(
    () => decryptSubject(other, keyIdOf("encryption", other), "d-1", box),
    (e: unknown) =>
      e instanceof WardenError &&
      e.code === "WARDEN_ERR_PRIVACY_KEY" &&
      e.message.includes(id) &&
      !e.message.includes(other.toString("hex")),
  );
});

test("retain_until: adding days by the date part equals Date arithmetic, across months, leap years and centuries", async () => {
  const { addDays } = await import("./vault.js");
  for (const time of [
    "2024-02-28T23:59:59.999Z",
    "2023-12-31T00:00:00.000Z",
    "2099-12-31T12:34:56.789Z",
    "2100-02-28T01:02:03.004Z",
  ]) {
    for (const days of [0, 1, 29, 90, 183, 365, 36500]) {
      assert.equal(
        addDays(time, days),
        new Date(Date.parse(time) + days * 86_400_000).toISOString(),
        `${time} + ${days}`,
      );
    }
  }
});
