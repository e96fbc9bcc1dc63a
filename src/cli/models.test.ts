import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { demoVersion, startTestServer, tempDir } from "../testing/index.js";
import { main } from "./index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
const dir = tempDir("cli-models");

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
  dir.remove();
});

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

test("warden models talks to a running server: list, register, policy, promote, rollback", async () => {
  const url = ["--url", server.url];
  const list = await run("models", "list", ...url);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /credit-demo: production 1\.0\.0, candidate -, policy single/);

  const v2 = demoVersion(dir.path, "2.0.0");
  const registered = await run(
    "models",
    "register",
    "credit-demo",
    v2,
    "--alias",
    "candidate",
    "--actor",
    "dana",
    ...url,
  );
  assert.equal(registered.code, 0, registered.stderr);
  assert.match(registered.stdout, /candidate 2\.0\.0/);
  assert.match(registered.stdout, /2\.0\.0\s+loaded\s+candidate/);

  const policy = await run("models", "policy", "credit-demo", "canary", "--percent", "10", ...url);
  assert.equal(policy.code, 0, policy.stderr);
  assert.match(policy.stdout, /policy canary 10% to candidate/);

  const promoted = await run(
    "models",
    "promote",
    "credit-demo",
    "--reason",
    "looks good",
    "--actor",
    "dana",
    ...url,
  );
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.match(promoted.stdout, /production 2\.0\.0, candidate -/);

  const rolled = await run("models", "rollback", "credit-demo", "--json", ...url);
  assert.equal(rolled.code, 0, rolled.stderr);
  const view = JSON.parse(rolled.stdout);
  assert.equal(view.production, "1.0.0");
  const promote = view.history.find((h: { action: string }) => h.action === "promote");
  assert.equal(promote.actor, "dana");
  assert.equal(promote.reason, "looks good");
});

test("warden models: refusals exit 1 with the server's reason, misuse exits 2", async () => {
  const url = ["--url", server.url];
  const refused = await run("models", "promote", "credit-demo", ...url);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /no candidate to promote \(HTTP 409\)/);
  assert.match(refused.stderr, /candidate: expected/);
  const unknown = await run("models", "rollback", "no-such-model", ...url);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no model named "no-such-model"/);
  const badPolicy = await run("models", "policy", "credit-demo", "blue-green", ...url);
  assert.equal(badPolicy.code, 2);
  assert.match(badPolicy.stderr, /policy must be one of single, canary, shadow/);
  const noPercent = await run("models", "policy", "credit-demo", "canary", ...url);
  assert.equal(noPercent.code, 2);
  const badUrl = await run("models", "list", "--url", "not a url");
  assert.equal(badUrl.code, 2);
  const missing = await run("models", "register", "credit-demo");
  assert.equal(missing.code, 2);
  const down = await run("models", "list", "--url", "http://127.0.0.1:9");
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach Warden at http:\/\/127\.0\.0\.1:9/);
  const help = await run("models", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /register/);
});

test("warden models against a server that requires identities: --api-key or WARDEN_API_KEY, and 401 without", async () => {
  const guarded = await startTestServer({ config: { auth: { required: true } } });
  try {
    const admin = guarded.keys.create({ name: "ops", role: "admin", createdBy: "test" }).key;
    const client = guarded.keys.create({ name: "app", role: "client", createdBy: "test" }).key;
    const without = await run("models", "list", "--url", guarded.url);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /WARDEN_ERR_UNAUTHORIZED|authentication failed: no credential/);
    const listed = await run("models", "list", "--url", guarded.url, "--api-key", admin, "--json");
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /credit-demo/);
    process.env.WARDEN_API_KEY = client;
    try {
      const forbidden = await run("models", "list", "--url", guarded.url);
      assert.equal(forbidden.code, 1);
      assert.match(forbidden.stderr, /role client may not use GET \/v1\/admin\/models/);
    } finally {
      delete process.env.WARDEN_API_KEY;
    }
  } finally {
    await guarded.stop();
  }
});
