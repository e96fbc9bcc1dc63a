import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createJwtVerifier, type JwtSettings } from "./jwt.js";

const base: JwtSettings = { role_claim: "warden_role", models_claim: "warden_models", clock_skew_s: 30 };

test("JWT key files: a short secret, a folder or a device is refused at start with the file named", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "warden-jwt-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const short = join(dir, "short.secret");
  writeFileSync(short, "too short");
  assert.throws(
    () => createJwtVerifier({ ...base, hs256_secret_file: short }),
    /short\.secret: an HS256 secret needs at least 32 bytes/,
  );
  assert.throws(
    () => createJwtVerifier({ ...base, hs256_secret_file: dir }),
    /is a directory, not a regular file/,
  );
  if (process.platform === "linux") {
    // Reading a device whole would never end.
    assert.throws(
      () => createJwtVerifier({ ...base, jwks_file: "/dev/zero" }),
      /\/dev\/zero is a character device, not a regular file/,
    );
  }
});
