import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import pino from "pino";
import { main } from "../cli/index.js";
import { type LedgerRecord, verifyLedger } from "../ledger/index.js";
import { startServer } from "../server/index.js";
import {
  collect,
  DEMO_XGB,
  demoCopy,
  holdoutInstances,
  loadManifest,
  parseConfigForTest,
  startTestServer,
  tempDir,
} from "../testing/index.js";
import { openSubjectVault, purgeSubjects } from "./index.js";
import { vaultPath } from "./vault.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
const models = tempDir("privacy-models");
const features = holdoutInstances(loadManifest(DEMO_XGB))[0]!.features;
const logLines: string[] = [];
let server: Server;
let dataDir: string;

// credit-demo 1.0.0: high risk, the defaults (183 days, encrypted); 2.0.0 pseudonymised; 3.0.0 clear.
// credit-minimal 1.0.0: minimal risk, pseudonymised, retention 0 days (purgeable at once).
const PSEUDO = demoCopy(models.path, {
  version: "2.0.0",
  policy: { subject_storage: "pseudonymised", retention_days: 365 },
});
const CLEAR = demoCopy(models.path, { version: "3.0.0", policy: { subject_storage: "clear" } });
const MINIMAL = demoCopy(models.path, {
  name: "credit-minimal",
  version: "1.0.0",
  riskTier: "minimal",
  policy: { subject_storage: "pseudonymised", retention_days: 0 },
});

before(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  server = await startTestServer({
    models: [CLEAR, PSEUDO, DEMO_XGB, MINIMAL],
    logger: pino({ level: "trace" }, sink),
    canRevealSubject: (request) => request.headers["x-test-auditor"] === "yes",
  });
  dataDir = server.dataDir;
});
after(async () => {
  await server.stop();
  models.remove();
});

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const decide = async (model: string, version: string, subject: Record<string, unknown>) => {
  const response = await server.app.inject({
    method: "POST",
    url: `/v1/models/${model}/versions/${version}/decisions`,
    payload: { features, subject },
  });
  assert.equal(response.statusCode, 200, response.body);
  return response.json().decision_id as string;
};
const read = async (id: string, headers: Record<string, string> = {}, query = "") =>
  server.app.inject({ method: "GET", url: `/v1/decisions/${id}${query}`, headers });
const record = async (id: string): Promise<LedgerRecord> => {
  await server.writer.drain();
  return (await server.ledger.get(id))!;
};

const made: Record<string, string> = {};

test("encrypted (the high-risk default): the ledger holds commitments, the vault the ciphertext; an authorised caller reads it back", async () => {
  const id = await decide("credit-demo", "1.0.0", { Age: 30, Marital: "separated" });
  made.encrypted = id;
  const shown = (await read(id)).json();
  assert.deepEqual(shown.privacy, { retention_days: 183, subject_storage: "encrypted" });
  assert.deepEqual(Object.keys(shown.subject), ["Age", "Marital"]);
  for (const c of Object.values(shown.subject))
    assert.match((c as { commitment: string }).commitment, /^[0-9a-f]{64}$/);
  assert.equal(shown.subject_vault.storage, "encrypted");
  assert.equal(shown.subject_vault.status, "stored");
  assert.match(shown.subject_vault.key_id, /^[0-9a-f]{16}$/);
  assert.equal(
    shown.subject_vault.retain_until,
    new Date(Date.parse(shown.time) + 183 * 86_400_000).toISOString(),
  );
  assert.equal(shown.subject_revealed, undefined, "never decrypted by default");
  // Decryption needs an authorised caller: the hook says no to everyone else.
  const refused = await read(id, {}, "?reveal=subject");
  assert.equal(refused.statusCode, 401);
  assert.equal(refused.json().code, "WARDEN_ERR_UNAUTHORIZED");
  const revealed = await read(id, { "x-test-auditor": "yes" }, "?reveal=subject");
  assert.equal(revealed.statusCode, 200, revealed.body);
  assert.deepEqual(revealed.json().subject_revealed, { Age: 30, Marital: "separated" });
  // The key holder proves a value against the commitment; a wrong value fails.
  const stored = await record(id);
  assert.equal(server.privacy.check(stored, { Age: 30, Marital: "separated" }).ok, true);
  const wrong = server.privacy.check(stored, { Age: 31 });
  assert.equal(wrong.ok, false);
  assert.deepEqual(wrong.mismatched, ["Age"]);
});

test("pseudonymised: equal values get equal pseudonyms (groups still compare), and they cannot be revealed", async () => {
  const a = await decide("credit-demo", "2.0.0", { Age: 30, Marital: "separated" });
  const b = await decide("credit-demo", "2.0.0", { Age: 44, Marital: "separated" });
  made.pseudonymised = a;
  const [ra, rb] = [(await read(a)).json(), (await read(b)).json()];
  assert.deepEqual(ra.privacy, { retention_days: 365, subject_storage: "pseudonymised" });
  assert.equal(ra.subject_vault.status, "stored");
  assert.equal(ra.subject_vault.pseudonyms.Marital, rb.subject_vault.pseudonyms.Marital);
  assert.notEqual(ra.subject_vault.pseudonyms.Age, rb.subject_vault.pseudonyms.Age);
  assert.notEqual(
    ra.subject.Marital.commitment,
    rb.subject.Marital.commitment,
    "commitments are salted per decision",
  );
  const stored = await record(a);
  const check = server.privacy.check(stored, { Age: 30, Marital: "separated" });
  assert.equal(check.ok, true);
  assert.equal(check.pseudonyms, true);
  assert.equal(server.privacy.check(stored, { Marital: "single" }).ok, false);
  const reveal = await read(a, { "x-test-auditor": "yes" }, "?reveal=subject");
  assert.equal(reveal.statusCode, 409);
  assert.equal(reveal.json().code, "WARDEN_ERR_SUBJECT_UNAVAILABLE");
  assert.match(reveal.json().error, /pseudonymised, which cannot be reversed/);
});

test("clear: the subject is recorded as sent, with no vault row", async () => {
  const id = await decide("credit-demo", "3.0.0", { Age: 52, Marital: "widow" });
  const shown = (await read(id)).json();
  assert.deepEqual(shown.subject, { Age: 52, Marital: "widow" });
  assert.equal(shown.privacy, undefined);
  assert.equal(shown.subject_vault, undefined);
  assert.equal(server.privacy.vault.get(id), undefined);
});

test("a refused subject value is not recorded where subjects are protected; the client still hears it", async () => {
  const response = await server.app.inject({
    method: "POST",
    url: "/v1/models/credit-demo/versions/1.0.0/decisions",
    payload: { features, subject: { Age: 30, Marital: "martian" } },
  });
  assert.equal(response.statusCode, 400);
  assert.match(response.body, /martian/);
  await server.writer.drain();
  const rejection = (await collect(server.ledger.scan())).find((r) => r.kind === "rejection")!;
  const details = (rejection.body.error as { details: { field: string; found: string }[] }).details;
  assert.deepEqual(
    details.map((d) => [d.field, d.found]),
    [["subject.Marital", "(not recorded: subject_storage encrypted)"]],
  );
});

test("no key, and no protected clear value, appears in the logs, the answers, the ledger or the vault; key files are 0600", async () => {
  // More traffic through every path: the minimal model, a batch, an error.
  await decide("credit-minimal", "1.0.0", { Age: 63, Marital: "separated" });
  await decide("credit-minimal", "1.0.0", { Age: 64 });
  await read("no-such-decision");
  await server.writer.drain();
  const keyFiles = [
    join(dataDir, "keys", "subject-encryption.key"),
    join(dataDir, "keys", "subject-pseudonym.key"),
  ];
  const secrets: string[] = [];
  for (const file of keyFiles) {
    assert.equal(statSync(file).mode & 0o777, 0o600, file);
    const hex = readFileSync(file, "utf8").trim();
    secrets.push(hex, Buffer.from(hex, "hex").toString("base64"), hex.toUpperCase());
  }
  assert.equal(statSync(join(dataDir, "keys")).mode & 0o777, 0o700);
  const haystacks: [string, string][] = [
    ["logs", logLines.join("")],
    ["ledger", readFileSync(join(dataDir, "ledger.sqlite"), "latin1")],
    ["ledger WAL", readWal(join(dataDir, "ledger.sqlite-wal"))],
    [
      "vault",
      readFileSync(join(dataDir, "vault.sqlite"), "latin1") + readWal(join(dataDir, "vault.sqlite-wal")),
    ],
    [
      "journal",
      readdirSync(join(dataDir, "ledger-journal"))
        .map((f) => readFileSync(join(dataDir, "ledger-journal", f), "latin1"))
        .join(""),
    ],
    ["answer", (await read(made.encrypted!)).body + (await read(made.pseudonymised!)).body],
  ];
  for (const [where, text] of haystacks) {
    for (const secret of secrets) assert.ok(!text.includes(secret), `a key appears in the ${where}`);
  }
  // "separated" was only ever sent to protected versions ("separated" alone is in the category list that a
  // rejection's `expected` quotes); "martian" only in a refused protected subject.
  // The search works: the clear version's subject is there, as sent.
  assert.ok((haystacks[1]![1] + haystacks[2]![1]).includes('"Marital":"widow"'));
  for (const [where, text] of haystacks.filter(([w]) => w !== "logs" && w !== "answer")) {
    assert.ok(!text.includes('"Marital":"separated"'), `a protected value appears in the ${where}`);
    assert.ok(!text.includes('"separated" (string)'), `a protected value appears in the ${where}`);
    assert.ok(!text.includes("martian"), `a refused protected value appears in the ${where}`);
  }
  assert.ok(
    logLines.some((l) => l.includes("created the encryption key")),
    "key creation is logged, by id",
  );
});

test("purge: refused while serving and before retention ends; after it, vault payloads go, ledger records stay and verify", async () => {
  const serving = await run("ledger", "purge", "--data-dir", dataDir);
  assert.equal(serving.code, 1);
  assert.match(serving.stderr, /a server is running on/);
  await server.writer.drain();
  const beforePurge = await collect(server.ledger.scan());
  await server.close();

  // Asking for everything made until now reaches into credit-demo's 183 and 365 days: refused, nothing removed.
  const now = new Date().toISOString();
  const early = await run("ledger", "purge", "--data-dir", dataDir, "--before", now);
  assert.equal(early.code, 1, early.stdout + early.stderr);
  assert.match(
    early.stderr,
    /refused: model credit-demo keeps subject data for 365 days \(policy\.retention_days\)/,
  );
  assert.match(early.stderr, /the earliest date this purge is allowed is \d{4}-\d\d-\d\dT/);
  assert.match(early.stderr, /latest --before allowed today is/);
  assert.doesNotMatch(early.stderr, /credit-minimal/, "a model whose retention has ended is not in the way");
  const future = await run("ledger", "purge", "--data-dir", dataDir, "--before", "2999-01-01");
  assert.equal(future.code, 1);
  assert.match(future.stderr, /lies in the future/);
  const badTime = await run("ledger", "purge", "--data-dir", dataDir, "--before", "yesterday");
  assert.equal(badTime.code, 2);
  // A mistyped folder holds no ledger: an error, not "nothing to purge".
  const typo = await run("ledger", "purge", "--data-dir", `${dataDir}-typo`);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /cannot read the ledger at .*-typo\/ledger\.sqlite/);

  // Without --before: only what has reached the end of its retention (credit-minimal's 0 days).
  const dry = await run("ledger", "purge", "--data-dir", dataDir, "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(
    dry.stdout,
    /^credit-minimal: would remove 2 subjects of decisions from .* \[1\.0\.0: 2 \(0 days\)\]\n/,
  );
  const vault = openSubjectVault(dataDir, { mustExist: true });
  const held = () =>
    (vault.db.prepare("SELECT COUNT(*) AS n FROM subjects WHERE payload IS NOT NULL").get() as { n: number })
      .n;
  assert.equal(held(), 5, "a dry run changes nothing");
  vault.close();
  const purged = await run("ledger", "purge", "--data-dir", dataDir);
  assert.equal(purged.code, 0, purged.stderr);
  assert.match(purged.stdout, /^credit-minimal: removed 2 subjects .*; ledger record [0-9a-f-]{36}\n/);
  assert.equal((await run("ledger", "verify", "--data-dir", dataDir)).code, 0);

  // Half a year on, credit-demo's encrypted decisions (183 days) may go; the pseudonymised ones (365) not yet.
  const later = new Date(Date.now() + 200 * 86_400_000);
  const report = await purgeSubjects(dataDir, { now: later });
  assert.deepEqual(
    report.models.map((m) => [m.model, m.count, m.versions]),
    [["credit-demo", 1, { "1.0.0": { count: 1, retention_days: 183 } }]],
  );
  const afterYear = await purgeSubjects(dataDir, { now: new Date(Date.now() + 400 * 86_400_000) });
  assert.equal(afterYear.total, 2);
  assert.equal((await purgeSubjects(dataDir, { now: new Date(Date.now() + 400 * 86_400_000) })).total, 0);

  // The chain verifies, and every record written before the purges is byte for byte as it was.
  const verified = verifyLedger(dataDir);
  assert.equal(verified.ok, true, JSON.stringify(verified));
  const { openLedgerReader } = await import("../ledger/index.js");
  const reader = openLedgerReader(dataDir);
  try {
    const all = [...reader.scan()];
    assert.deepEqual(all.slice(0, beforePurge.length), beforePurge);
    const retention = all.filter((r) => r.kind === "retention");
    assert.deepEqual(
      retention.map((r) => [r.model, r.version, r.body.count, r.body.action]),
      [
        ["credit-minimal", "*", 2, "purge"],
        ["credit-demo", "*", 1, "purge"],
        ["credit-demo", "*", 2, "purge"],
      ],
    );
    assert.match(String(retention[0]!.body.decision_ids_sha256), /^[0-9a-f]{64}$/);
    // Vault rows are tombstones naming their purge; no salt, no payload.
    const tombs = openSubjectVault(dataDir, { mustExist: true });
    try {
      const row = tombs.get(made.encrypted!)!;
      assert.equal(row.salt, null);
      assert.equal(row.payload, null);
      assert.equal(row.purge_record, retention[1]!.id);
      assert.equal(
        (
          tombs.db
            .prepare("SELECT COUNT(*) AS n FROM subjects WHERE payload IS NOT NULL OR salt IS NOT NULL")
            .get() as { n: number }
        ).n,
        0,
      );
    } finally {
      tombs.close();
    }
  } finally {
    reader.close();
  }
  assert.equal(verifyLedger(dataDir).ok, true);
});

function readWal(path: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return "";
  }
}

test("a vault row travels with its entry: a vault that cannot be written stops the writer, and the next start stores both", async () => {
  const server = await startTestServer();
  const dir = server.dataDir;
  let restarted: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    // Another connection holds the vault's write lock (a stuck disk, say): the ledger thread cannot store the row.
    const lock = new Database(vaultPath(dir));
    lock.pragma("busy_timeout = 100");
    lock.exec("BEGIN IMMEDIATE");
    // Answered once the row and the entry are in the write-ahead journal, together.
    const response = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      payload: { features, subject: { Age: 30 } },
    });
    assert.equal(response.statusCode, 200, response.body);
    const id = response.json().decision_id as string;
    for (let i = 0; i < 200 && server.writer.healthy(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.writer.healthy(), false, "the writer stops when a vault row cannot be stored");
    assert.equal((await server.app.inject({ method: "GET", url: "/v2/health/ready" })).statusCode, 503);
    assert.equal(await server.ledger.get(id), undefined, "no entry without its vault row");
    lock.exec("ROLLBACK");
    lock.close();
    await server.close();
    // The next start replays the journal: the row, then the entry.
    restarted = await startServer(parseConfigForTest({ data_dir: dir, models: [DEMO_XGB] }));
    const record = await restarted.ledger.get(id);
    assert.equal(record?.kind, "decision");
    assert.equal(restarted.privacy.vault.get(id)?.decision_id, id);
  } finally {
    await restarted?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
