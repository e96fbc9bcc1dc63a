import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, type KeyObject, verify } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { WardenError } from "../errors/index.js";
import { canonicalJson } from "./hash.js";
import { leafHash, rootOf, toHex } from "./merkle.js";
import {
  keyIdOf,
  loadOrCreateSigningKey,
  loadPublicKey,
  makeTreeHead,
  type SignedTreeHead,
  signTreeHead,
  type TreeHead,
  type TreeHeadCheck,
  treeHeadSigningInput,
  verifyTreeHead,
} from "./signing.js";
import { tempDir } from "./testkit.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const KEY_ID = keyIdOf(publicKey);
const ROOT = rootOf(["a", "b", "c"].map((data) => leafHash(data)));
const HEAD = makeTreeHead(3, ROOT, KEY_ID, new Date(Date.UTC(2025, 0, 1, 12, 30)));

function failure(check: TreeHeadCheck): string | undefined {
  return check.ok ? undefined : check.failure;
}

test("key id is the hex SHA-256 of the public key's SPKI DER, from either half", () => {
  const der = publicKey.export({ type: "spki", format: "der" });
  assert.equal(KEY_ID, createHash("sha256").update(der).digest("hex"));
  assert.equal(keyIdOf(privateKey), KEY_ID);
});

test("a tree head is signed over its RFC 8785 canonical JSON, and the round trip verifies", () => {
  assert.deepEqual(HEAD, {
    tree_size: 3,
    root_hash: toHex(ROOT),
    timestamp: "2025-01-01T12:30:00.000Z",
    key_id: KEY_ID,
  });
  const sth = signTreeHead(HEAD, privateKey);
  const input = treeHeadSigningInput(HEAD);
  assert.equal(input, canonicalJson(HEAD));
  assert.equal(
    input,
    `{"key_id":"${KEY_ID}","root_hash":"${toHex(ROOT)}","timestamp":"2025-01-01T12:30:00.000Z","tree_size":3}`,
  );
  // An auditor needs only the documented input and node:crypto (or any Ed25519 library).
  assert.ok(verify(null, Buffer.from(input, "utf8"), publicKey, Buffer.from(sth.signature, "base64")));
  assert.equal(Buffer.from(sth.signature, "base64").length, 64);

  const check = verifyTreeHead(sth, publicKey);
  assert.deepEqual(check, { ok: true, head: HEAD });
  // It survives JSON, which is how it travels.
  assert.equal(verifyTreeHead(JSON.parse(JSON.stringify(sth)), publicKey).ok, true);
});

test("a changed size, root, timestamp or signature fails, and so does another key", () => {
  const sth = signTreeHead(HEAD, privateKey);
  const signature = Buffer.from(sth.signature, "base64");
  signature[10] = signature[10]! ^ 1;
  const changed: [string, SignedTreeHead, string][] = [
    ["size", { ...sth, tree_size: 4 }, "bad-signature"],
    ["size 0", { ...sth, tree_size: 0 }, "bad-signature"],
    ["root", { ...sth, root_hash: `${sth.root_hash.slice(0, -1)}0` }, "bad-signature"],
    ["timestamp", { ...sth, timestamp: "2025-01-01T12:30:00.001Z" }, "bad-signature"],
    ["signature", { ...sth, signature: signature.toString("base64") }, "bad-signature"],
  ];
  for (const [what, forged, expected] of changed) {
    assert.equal(failure(verifyTreeHead(forged, publicKey)), expected, what);
  }

  // Another key: its id differs, so that is reported first...
  const other = generateKeyPairSync("ed25519");
  assert.equal(failure(verifyTreeHead(sth, other.publicKey)), "key-id-mismatch");
  // ...and a head that claims the other key's id does not verify with it.
  assert.equal(
    failure(verifyTreeHead({ ...sth, key_id: keyIdOf(other.publicKey) }, other.publicKey)),
    "bad-signature",
  );
  // A head the other key signed, relabelled with our key id, fails on our key.
  const theirs = signTreeHead({ ...HEAD, key_id: keyIdOf(other.publicKey) }, other.privateKey);
  assert.equal(failure(verifyTreeHead({ ...theirs, key_id: KEY_ID }, publicKey)), "bad-signature");
});

test("malformed signed tree heads are refused cleanly, naming the field", () => {
  const sth = signTreeHead(HEAD, privateKey);
  const cases: [unknown, string][] = [
    [null, "(root)"],
    ["sth", "(root)"],
    [[sth], "(root)"],
    [{ ...sth, signature: "not base64!" }, "signature"],
    [{ ...sth, signature: sth.signature.slice(0, 40) }, "signature"], // short
    [{ ...sth, signature: Buffer.alloc(63).toString("base64") }, "signature"],
    [{ ...sth, signature: Buffer.alloc(65).toString("base64") }, "signature"],
    [{ ...sth, signature: sth.signature.replace(/=+$/, "") }, "signature"], // unpadded
    [{ ...sth, signature: `${sth.signature.slice(0, 85)}B==` }, "signature"], // non-canonical last character
    [{ ...sth, signature: 42 }, "signature"],
    [{ ...sth, signature: undefined }, "signature"],
    [{ ...sth, tree_size: -1 }, "tree_size"],
    [{ ...sth, tree_size: 1.5 }, "tree_size"],
    [{ ...sth, tree_size: "3" }, "tree_size"],
    [{ ...sth, tree_size: 2 ** 53 }, "tree_size"],
    [{ ...sth, root_hash: sth.root_hash.toUpperCase() }, "root_hash"],
    [{ ...sth, root_hash: sth.root_hash.slice(2) }, "root_hash"],
    [{ ...sth, timestamp: "2025-01-01T12:30:00Z" }, "timestamp"],
    [{ ...sth, timestamp: "2025-01-01T12:30:00.000+01:00" }, "timestamp"],
    [{ ...sth, timestamp: "2025-02-30T12:30:00.000Z" }, "timestamp"],
    [{ ...sth, timestamp: 1735734600000 }, "timestamp"],
    [{ ...sth, key_id: "abc" }, "key_id"],
    [{ ...sth, alg: "none" }, "alg"],
  ];
  for (const [value, field] of cases) {
    const check = verifyTreeHead(value, publicKey);
    assert.equal(failure(check), "malformed", JSON.stringify(value));
    assert.equal(check.ok ? undefined : check.field, field, JSON.stringify(value));
    assert.ok(!check.ok && check.message.includes(field));
  }
  const missing: Record<string, unknown> = { ...sth };
  delete missing.root_hash;
  assert.equal(failure(verifyTreeHead(missing, publicKey)), "malformed");

  // Something that is not an Ed25519 public key to check with.
  const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
  for (const key of [undefined, "pem text", rsa.publicKey, {}]) {
    const check = verifyTreeHead(sth, key as KeyObject);
    assert.equal(failure(check), "malformed");
    assert.equal(check.ok ? undefined : check.field, "publicKey");
  }
  // A getter that throws does not escape.
  const hostile = Object.defineProperty({ ...sth }, "tree_size", {
    enumerable: true,
    get() {
      throw new Error("boom");
    },
  });
  assert.equal(failure(verifyTreeHead(hostile, publicKey)), "malformed");
});

test("signTreeHead refuses a head out of form, a key id of another key, and a key that is not Ed25519", () => {
  const refuses = (work: () => unknown, code: string, field: string) =>
    assert.throws(work, (error: unknown) => {
      assert.ok(error instanceof WardenError);
      assert.equal(error.code, code);
      assert.equal(error.details[0]?.field, field);
      return true;
    });
  refuses(
    () => signTreeHead({ ...HEAD, key_id: "ab".repeat(32) }, privateKey),
    "WARDEN_ERR_LEDGER",
    "key_id",
  );
  refuses(() => signTreeHead({ ...HEAD, tree_size: -1 }, privateKey), "WARDEN_ERR_LEDGER", "tree_size");
  refuses(() => signTreeHead(HEAD, publicKey), "WARDEN_ERR_SIGNING_KEY", "privateKey");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
  refuses(() => signTreeHead(HEAD, rsa.privateKey), "WARDEN_ERR_SIGNING_KEY", "privateKey");
  refuses(() => makeTreeHead(3, "XYZ", KEY_ID), "WARDEN_ERR_LEDGER", "root_hash");
  refuses(() => makeTreeHead(3, ROOT, KEY_ID, new Date(Number.NaN)), "WARDEN_ERR_LEDGER", "timestamp");
  const head: TreeHead = makeTreeHead(0, rootOf([]), KEY_ID);
  assert.equal(verifyTreeHead(signTreeHead(head, privateKey), publicKey).ok, true);
});

test("loadOrCreateSigningKey creates a 0600 key and its .pub, then loads the same key", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "keys", "nested", "tree-head.key");
  const created = loadOrCreateSigningKey(path);
  assert.equal(created.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, "keys", "nested")).mode & 0o077, 0);
  assert.match(readFileSync(path, "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(created.publicKeyPath, `${path}.pub`);
  assert.match(readFileSync(`${path}.pub`, "utf8"), /^-----BEGIN PUBLIC KEY-----\n/);

  const loaded = loadOrCreateSigningKey(path);
  assert.equal(loaded.created, false);
  assert.equal(loaded.keyId, created.keyId);
  const publicFromFile = loadPublicKey(`${path}.pub`);
  assert.equal(keyIdOf(publicFromFile), created.keyId);

  // What one signs, the .pub file verifies.
  const sth = signTreeHead(makeTreeHead(3, ROOT, loaded.keyId), loaded.privateKey);
  assert.equal(verifyTreeHead(sth, publicFromFile).ok, true);

  // A lost .pub is written again from the private key.
  writeFileSync(`${path}.pub`, "");
  assert.throws(() => loadPublicKey(`${path}.pub`), /an empty file/);
  const again = `${path}.again`;
  writeFileSync(again, readFileSync(path));
  assert.equal(existsSync(`${again}.pub`), false);
  loadOrCreateSigningKey(again);
  assert.equal(keyIdOf(loadPublicKey(`${again}.pub`)), created.keyId);
});

test("a key file that is not an Ed25519 private key gets a clear WARDEN_ERR_SIGNING_KEY", (t) => {
  const dir = tempDir(t);
  const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
  const files: [string, string | Buffer, RegExp][] = [
    ["garbage.key", "this is not a key\n", /bytes of text without a PEM key block/],
    ["empty.key", "", /an empty file/],
    ["binary.key", Buffer.from([0, 1, 2, 3, 255, 254]), /binary data/],
    ["rsa.key", rsa.privateKey.export({ type: "pkcs8", format: "pem" }), /a rsa private key/],
    ["public.key", publicKey.export({ type: "spki", format: "pem" }), /a public key/],
    [
      "encrypted.key",
      privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "x" }),
      /an encrypted private key/,
    ],
    [
      "broken.key",
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      /labelled "PRIVATE KEY"/,
    ],
  ];
  for (const [name, content, found] of files) {
    const path = join(dir, name);
    writeFileSync(path, content);
    assert.throws(
      () => loadOrCreateSigningKey(path),
      (error: unknown) => {
        assert.ok(error instanceof WardenError, name);
        assert.equal(error.code, "WARDEN_ERR_SIGNING_KEY");
        assert.equal(error.status, 500);
        const [problem] = error.details;
        assert.equal(problem?.field, path);
        assert.match(problem?.expected ?? "", /Ed25519 private key in PKCS#8 PEM/);
        assert.match(problem?.found ?? "", found, name);
        assert.ok(problem?.fix, name);
        assert.ok(error.message.includes(path), name);
        return true;
      },
    );
    // The bad file is left as it was, and no .pub is written for it.
    assert.deepEqual(readFileSync(path), Buffer.from(content));
    assert.equal(existsSync(`${path}.pub`), false);
  }
  // No key material from the file is echoed in the message.
  const secret = join(dir, "secret.key");
  writeFileSync(secret, "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n");
  assert.throws(
    () => loadOrCreateSigningKey(secret),
    (error: WardenError) => !error.message.includes("c2VjcmV0"),
  );

  // A folder where the file should be, and a missing public key file.
  mkdirSync(join(dir, "folder.key"));
  assert.throws(() => loadOrCreateSigningKey(join(dir, "folder.key")), /folder/);
  assert.throws(() => loadPublicKey(join(dir, "absent.pub")), /no such file/);
  assert.throws(() => loadPublicKey(join(dir, "rsa.key")), /a private key/);
  const rsaPub = join(dir, "rsa.pub");
  writeFileSync(rsaPub, rsa.publicKey.export({ type: "spki", format: "pem" }));
  assert.throws(() => loadPublicKey(rsaPub), /a rsa public key/);
});
