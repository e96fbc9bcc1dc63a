import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { DEMO_REQUEST } from "../cli/paths.js";
import type { LedgerRecord } from "../ledger/index.js";
import { hashKey } from "../registry/index.js";
import {
  collect,
  DEMO_XGB,
  demoVersion,
  parseConfigForTest,
  startTestServer,
  tempDir,
} from "../testing/index.js";
import { startServer } from "./serve.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
const dir = tempDir("deploy");
const V2 = demoVersion(dir.path, "2.0.0");
const V3 = demoVersion(dir.path, "3.0.0");
const MODEL = "/v1/admin/models/credit-demo";

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
  dir.remove();
});

const call = (method: "GET" | "POST" | "PUT", url: string, payload?: unknown, actor = "alice") =>
  server.app.inject({
    method,
    url,
    ...(payload !== undefined ? { payload: payload as object } : {}),
    headers: { "x-warden-actor": actor },
  });
const decide = (extra: Record<string, unknown>, url = "/v1/models/credit-demo/decisions") =>
  server.app.inject({ method: "POST", url, payload: { ...DEMO_REQUEST, ...extra } });

async function records(kind: string): Promise<LedgerRecord[]> {
  await server.app.wardenShadowsSettled();
  await server.writer.drain();
  return (await collect(server.ledger.scan())).filter((r) => r.kind === kind);
}

describe("deployments", () => {
  test("the configured model starts as production, recorded with who and why", async () => {
    const response = await call("GET", MODEL);
    assert.equal(response.statusCode, 200, response.body);
    const view = response.json();
    assert.equal(view.production, "1.0.0");
    assert.equal(view.candidate, null);
    assert.equal(view.policy, "single");
    assert.equal(view.versions.length, 1);
    assert.match(view.versions[0].artifact_sha256, /^[0-9a-f]{64}$/);
    assert.equal(view.history[0].action, "register");
    assert.equal(view.history[0].to_version, "1.0.0");
    const deployments = await records("deployment");
    assert.equal(deployments[0]!.id, view.history[0].ledger_id);
    assert.equal(deployments[0]!.body.production, "1.0.0");
  });

  test("register a candidate, split a canary sticky per subject, record the arm of every decision", async () => {
    const registered = await call("POST", `${MODEL}/versions`, {
      manifest: V2,
      alias: "candidate",
      reason: "retrained",
    });
    assert.equal(registered.statusCode, 201, registered.body);
    assert.equal(registered.json().candidate, "2.0.0");
    const policy = await call("PUT", `${MODEL}/policy`, { policy: "canary", canary_percent: 50 });
    assert.equal(policy.statusCode, 200, policy.body);
    assert.equal(policy.json().canary_percent, 50);

    const seen = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (let s = 0; s < 40; s++) {
        const response = await decide({ subject_id: `subject-${s}` });
        assert.equal(response.statusCode, 200, response.body);
        const version = response.json().version as string;
        const earlier = seen.get(`subject-${s}`);
        if (earlier !== undefined) assert.equal(version, earlier, `subject-${s} changed arm`);
        seen.set(`subject-${s}`, version);
      }
    }
    const versions = new Set(seen.values());
    assert.deepEqual([...versions].sort(), ["1.0.0", "2.0.0"], "40 subjects at 50 % reach both versions");

    const decisions = (await records("decision")).filter((r) => r.body.subject_id === "subject-7");
    assert.equal(decisions.length, 3);
    const tag = decisions[0]!.body.deployment as Record<string, unknown>;
    assert.deepEqual(Object.keys(tag), ["alias", "arm", "key_source", "policy", "subject_key_hash"]);
    assert.equal(tag.policy, "canary");
    assert.equal(tag.key_source, "subject_id");
    assert.equal(tag.subject_key_hash, hashKey("subject-7"));
    assert.equal(tag.arm, decisions[0]!.version === "2.0.0" ? "canary" : "production");
    assert.equal(tag.alias, decisions[0]!.version === "2.0.0" ? "candidate" : "production");

    // The client id is the fallback key; without either, a random arm, recorded as such.
    const byId = await decide({ id: "application-1" });
    const random = await decide({});
    const pinned = await decide(
      { subject_id: "subject-7" },
      "/v1/models/credit-demo/versions/2.0.0/decisions",
    );
    const all = await records("decision");
    const tagOf = (id: string) => all.find((r) => r.id === id)!.body.deployment as Record<string, unknown>;
    assert.equal(tagOf(byId.json().decision_id).key_source, "id");
    assert.equal(tagOf(byId.json().decision_id).subject_key_hash, hashKey("application-1"));
    assert.equal(tagOf(random.json().decision_id).key_source, "random");
    assert.equal(tagOf(random.json().decision_id).subject_key_hash, null);
    assert.equal(tagOf(pinned.json().decision_id).arm, "pinned");
    assert.equal(tagOf(pinned.json().decision_id).alias, "candidate");
  });

  test("a batch is split per instance between the arms, each recorded with its version", async () => {
    const instances = Array.from({ length: 30 }, (_, i) => ({
      features: DEMO_REQUEST.features,
      subject: DEMO_REQUEST.subject,
      subject_id: `subject-${i}`,
    }));
    const response = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      payload: { instances },
    });
    assert.equal(response.statusCode, 200, response.body);
    const versions = (response.json().decisions as { version: string }[]).map((d) => d.version);
    assert.equal(new Set(versions).size, 2);
  });

  test("shadow: the candidate scores every request, recorded against the served decision, never returned", async () => {
    const policy = await call("PUT", `${MODEL}/policy`, { policy: "shadow", reason: "compare" });
    assert.equal(policy.statusCode, 200, policy.body);
    const served = [];
    for (let i = 0; i < 5; i++) {
      const response = await decide({ subject_id: `shadow-${i}` });
      assert.equal(response.statusCode, 200);
      assert.equal(response.json().version, "1.0.0");
      served.push(response.json().decision_id as string);
    }
    const shadows = await records("shadow");
    for (const id of served) {
      const shadow = shadows.find((r) => r.body.decision_id === id);
      assert.ok(shadow, `a shadow record for ${id}`);
      assert.equal(shadow.version, "2.0.0");
      assert.equal(shadow.body.served_version, "1.0.0");
      assert.equal(typeof (shadow.body.outputs as { score: number }).score, "number");
    }
    // The candidate gives one row of a batch a NaN: that row's shadow record holds the error, the other its outputs.
    const candidate = server.registry.get("credit-demo", "2.0.0");
    const executor = candidate.executor as { run: typeof candidate.executor.run };
    const run = executor.run;
    executor.run = async (input, rows, tasks) => {
      const output = await run.call(candidate.executor, input, rows, tasks);
      const values = Float64Array.from(output.values);
      values.fill(Number.NaN, 0, output.width);
      return { ...output, values };
    };
    try {
      const batch = await server.app.inject({
        method: "POST",
        url: "/v1/models/credit-demo/decisions",
        payload: {
          instances: [0, 1].map(() => ({ features: DEMO_REQUEST.features, subject: DEMO_REQUEST.subject })),
        },
      });
      assert.equal(batch.statusCode, 200, batch.body);
      const ids = (batch.json().decisions as { decision_id: string }[]).map((d) => d.decision_id);
      await server.app.wardenShadowsSettled();
      const recorded = (await records("shadow")).filter((r) => ids.includes(r.body.decision_id as string));
      assert.equal(recorded.length, 2, "a shadow record for each row");
      const [first, second] = ids.map((id) => recorded.find((r) => r.body.decision_id === id)!);
      assert.equal((first!.body.error as { code: string }).code, "WARDEN_ERR_INFERENCE_FAILED");
      assert.equal(typeof (second!.body.outputs as { score: number }).score, "number");
    } finally {
      executor.run = run;
    }
  });

  test("promote and roll back, with history from, to, who and why, each in the ledger", async () => {
    const promoted = await call("POST", `${MODEL}/promote`, { reason: "canary healthy" }, "bob");
    assert.equal(promoted.statusCode, 200, promoted.body);
    assert.equal(promoted.json().production, "2.0.0");
    assert.equal(promoted.json().candidate, null);
    assert.equal(promoted.json().policy, "single");
    assert.equal((await decide({})).json().version, "2.0.0");

    const rolled = await call("POST", `${MODEL}/rollback`, undefined, "carol");
    assert.equal(rolled.statusCode, 200, rolled.body);
    assert.equal(rolled.json().production, "1.0.0");
    assert.equal((await decide({})).json().version, "1.0.0");

    const history = (await call("GET", `${MODEL}/history`)).json().history as Record<string, unknown>[];
    const production = history.filter((h) => h.alias === "production").slice(-2);
    assert.deepEqual(
      production.map((h) => [h.action, h.from_version, h.to_version, h.actor, h.reason]),
      [
        ["promote", "1.0.0", "2.0.0", "bob", "canary healthy"],
        ["rollback", "2.0.0", "1.0.0", "carol", null],
      ],
    );
    const ledger = await records("deployment");
    const rollback = ledger.find((r) => r.id === production[1]!.ledger_id)!;
    assert.equal(rollback.body.action, "rollback");
    assert.equal(rollback.body.actor, "carol");
    assert.equal(rollback.body.from, "2.0.0");
    assert.equal(rollback.body.to, "1.0.0");
  });

  test("changes the state does not allow are 409 or 400 naming the field and the fix", async () => {
    const promote = await call("POST", `${MODEL}/promote`, {});
    assert.equal(promote.statusCode, 409);
    assert.equal(promote.json().code, "WARDEN_ERR_CONFLICT");
    assert.equal(promote.json().details[0].field, "candidate");
    assert.ok(promote.json().details[0].fix);
    const canary = await call("PUT", `${MODEL}/policy`, { policy: "canary" });
    assert.equal(canary.statusCode, 409, "no candidate yet");
    await call("PUT", `${MODEL}/aliases`, { candidate: "2.0.0" });
    const noPercent = await call("PUT", `${MODEL}/policy`, { policy: "canary" });
    assert.equal(noPercent.statusCode, 400);
    assert.equal(noPercent.json().details[0].field, "canary_percent");
    const tooMuch = await call("PUT", `${MODEL}/policy`, { policy: "canary", canary_percent: 101 });
    assert.equal(tooMuch.statusCode, 400);
    const unknownPolicy = await call("PUT", `${MODEL}/policy`, { policy: "blue-green" });
    assert.equal(unknownPolicy.statusCode, 400);
    const same = await call("PUT", `${MODEL}/aliases`, { production: "2.0.0" });
    assert.equal(same.statusCode, 400, same.body);
    assert.equal(same.json().details[0].field, "production");
    const unknownVersion = await call("PUT", `${MODEL}/aliases`, { candidate: "9.9.9" });
    assert.equal(unknownVersion.statusCode, 404);
    assert.equal(unknownVersion.json().details[0].field, "candidate");
    const unloadProduction = await call("POST", `${MODEL}/versions/1.0.0/unload`);
    assert.equal(unloadProduction.statusCode, 409);
    const missing = await call("POST", `${MODEL}/versions`, { manifest: `${dir.path}/none.yaml` });
    assert.equal(missing.statusCode, 422);
    assert.equal(missing.json().code, "WARDEN_ERR_MODEL_LOAD_FAILED");
    // A device never ends: refused before reading (the server would otherwise read it until memory ran out).
    const device = await call("POST", `${MODEL}/versions`, { manifest: "/dev/zero" });
    assert.equal(device.statusCode, 422);
    assert.match(device.json().error, /character device, not a regular file/);
    assert.equal((await server.app.inject({ method: "GET", url: "/v2/health/live" })).statusCode, 200);
    const otherName = await call("POST", "/v1/admin/models/other/versions", { manifest: V3 });
    assert.equal(otherName.statusCode, 400);
    assert.equal(otherName.json().details[0].field, "manifest");
    const extra = await call("POST", `${MODEL}/versions`, { manifest: V3, colour: "red" });
    assert.equal(extra.statusCode, 400);
    assert.equal(extra.json().details[0].field, "colour");
    const badActor = await call("POST", `${MODEL}/promote`, {}, " ");
    assert.equal(badActor.statusCode, 400);
    assert.equal(badActor.json().details[0].field, "x-warden-actor");
    const noModel = await call("GET", "/v1/admin/models/nothing");
    assert.equal(noModel.statusCode, 404);
    const badSubject = await decide({ subject_id: "" });
    assert.equal(badSubject.statusCode, 400);
    await call("PUT", `${MODEL}/aliases`, { candidate: null });
  });

  test("OIP repository: index, unload (drains, then 404) and load again", async () => {
    const index = await server.app.inject({ method: "POST", url: "/v2/repository/index" });
    assert.equal(index.statusCode, 200, index.body);
    assert.deepEqual(
      (index.json() as { name: string; version: string; state: string }[]).map((e) => [e.version, e.state]),
      [
        ["1.0.0", "READY"],
        ["2.0.0", "READY"],
      ],
    );
    const unload = await server.app.inject({
      method: "POST",
      url: "/v2/repository/models/credit-demo/unload",
    });
    assert.equal(unload.statusCode, 200, unload.body);
    assert.deepEqual(unload.json(), { name: "credit-demo", unload: true });
    const ready = await server.app.inject({
      method: "POST",
      url: "/v2/repository/index",
      payload: { ready: true },
    });
    assert.deepEqual(ready.json(), []);
    const gone = await decide({});
    assert.equal(gone.statusCode, 404);
    const load = await server.app.inject({ method: "POST", url: "/v2/repository/models/credit-demo/load" });
    assert.equal(load.statusCode, 200, load.body);
    assert.deepEqual(load.json(), { name: "credit-demo", load: true });
    assert.equal((await decide({})).json().version, "1.0.0");
    const unknown = await server.app.inject({ method: "POST", url: "/v2/repository/models/nope/load" });
    assert.equal(unknown.statusCode, 404);
    const get = await server.app.inject({ method: "GET", url: "/v2/repository/index" });
    assert.equal(get.statusCode, 200);
  });
});

test("the deployment survives a restart, including versions that are not in the configuration", async () => {
  const data = tempDir("deploy-restart");
  const config = parseConfigForTest({ data_dir: data.path, models: [DEMO_XGB] });
  try {
    const first = await startServer(config);
    const registered = await first.app.inject({
      method: "POST",
      url: `${MODEL}/versions`,
      payload: { manifest: V3, alias: "production", reason: "release" },
    });
    assert.equal(registered.statusCode, 201, registered.body);
    await first.close();
    const second = await startServer(config);
    try {
      const view = (await second.app.inject({ url: MODEL })).json();
      assert.equal(view.production, "3.0.0");
      assert.equal(view.history.at(-1).actor, "anonymous");
      assert.equal(view.history.at(-1).reason, "release");
      const answer = await second.app.inject({
        method: "POST",
        url: "/v1/models/credit-demo/decisions",
        payload: DEMO_REQUEST,
      });
      assert.equal(answer.json().version, "3.0.0");
    } finally {
      await second.close();
    }
  } finally {
    data.remove();
  }
});
