import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import pino from "pino";
import { seededRandom } from "../explain/random.js";
import { allows, createJwtVerifier, ROLES, ROUTE_PERMISSIONS, type Role } from "../security/index.js";
import { DEMO_XGB, holdoutInstances, loadManifest, startTestServer, tempDir } from "../testing/index.js";
import { createDenialRecorder } from "./access.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
const manifest = loadManifest(DEMO_XGB);
const BODY = (() => {
  const c = holdoutInstances(manifest)[0]!;
  return JSON.stringify({ features: c.features, subject: c.subject });
})();
/** A key's secret part (after `wdn_` and the 12-digit id and `_`; base64url, so it may itself hold `_`). */
const SECRET_AT = "wdn_0123456789ab_".length;
const SECRET = "an HS256 secret of at least thirty-two bytes, for tests only";

const scratch = tempDir("access");
const secretFile = join(scratch.path, "hs256.secret");
writeFileSync(secretFile, SECRET);
const logLines: string[] = [];
let server: Server;
const keys: Partial<Record<Role, string>> = {};

before(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  server = await startTestServer({
    config: {
      auth: { required: true, jwt: { hs256_secret_file: secretFile, issuer: "https://idp.example" } },
    },
    logger: pino({ level: "debug" }, sink),
  });
  for (const role of ROLES)
    keys[role] = server.keys.create({ name: `${role}-test`, role, createdBy: "test" }).key;
});
after(async () => {
  await server.stop();
  scratch.remove();
});

/** Requests to a server's app, with a bearer credential and a JSON body when given. */
const requester =
  (target: () => Server) => (method: string, url: string, credential?: string, body?: string) =>
    target().app.inject({
      method: method as "GET",
      url,
      headers: {
        ...(credential !== undefined ? { authorization: `Bearer ${credential}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { payload: body } : {}),
    });
const request = requester(() => server);

const token = (
  claims: Record<string, unknown>,
  options: { expiresIn?: string; secret?: string; issuer?: string } = {},
) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("svc-scoring")
    .setIssuer(options.issuer ?? "https://idp.example")
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "5m")
    .sign(new TextEncoder().encode(options.secret ?? SECRET));

describe("roles × routes", () => {
  test("every route the server registers has an access rule, and every rule a route", () => {
    const routes = [...server.app.wardenRoutes].sort();
    assert.deepEqual(routes, Object.keys(ROUTE_PERMISSIONS).sort());
  });

  test("the whole matrix: 401 without an identity, 403 for a role without the permission, neither with it", async () => {
    // A server of its own: the matrix unloads the model at the end.
    const own = await startTestServer({ config: { auth: { required: true } } });
    const ownKeys: Partial<Record<Role, string>> = {};
    for (const role of ROLES) ownKeys[role] = own.keys.create({ name: role, role, createdBy: "test" }).key;
    const request = requester(() => own);
    const path = (route: string) =>
      route
        .replace("{model}", "credit-demo")
        .replace("{version}", "1.0.0")
        .replace("{id}", "01936f00-0000-7000-8000-000000000000");
    // Routes that change the deployment go last, so the model stays loaded for the others.
    const routes = Object.entries(ROUTE_PERMISSIONS).sort(
      ([a], [b]) => Number(/unload/.test(a)) - Number(/unload/.test(b)),
    );
    let checked = 0;
    for (const [route, permission] of routes) {
      const [method, template] = route.split(" ") as [string, string];
      const body = method === "POST" || method === "PUT" ? "{}" : undefined;
      const anonymous = await request(method, path(template), undefined, body);
      if (permission === "public") assert.ok(![401, 403].includes(anonymous.statusCode), `${route}: public`);
      else {
        assert.equal(anonymous.statusCode, 401, `${route} without identity: ${anonymous.body}`);
        assert.equal(anonymous.headers["www-authenticate"], 'Bearer realm="warden"');
        assert.equal(anonymous.json().code, "WARDEN_ERR_UNAUTHORIZED");
      }
      for (const role of ROLES) {
        const answer = await request(method, path(template), ownKeys[role], body);
        if (allows(role, permission)) {
          assert.ok(
            ![401, 403].includes(answer.statusCode),
            `${route} as ${role}: ${answer.statusCode} ${answer.body}`,
          );
        } else {
          assert.equal(answer.statusCode, 403, `${route} as ${role}: ${answer.body}`);
          assert.equal(answer.json().code, "WARDEN_ERR_FORBIDDEN");
        }
        checked++;
      }
    }
    assert.equal(checked, Object.keys(ROUTE_PERMISSIONS).length * ROLES.length);
    await own.stop();
  });

  test("a client key limited to some models is refused the others", async () => {
    const limited = server.keys.create({
      name: "app",
      role: "client",
      models: ["other-model"],
      createdBy: "test",
    });
    const refused = await request("POST", "/v1/models/credit-demo/decisions", limited.key, BODY);
    assert.equal(refused.statusCode, 403);
    assert.match(refused.json().error, /may not use model credit-demo/);
    const open = server.keys.create({
      name: "app2",
      role: "client",
      models: ["credit-demo"],
      createdBy: "test",
    });
    assert.equal((await request("POST", "/v1/models/credit-demo/decisions", open.key, BODY)).statusCode, 200);
    // The model list shows a limited client only its models.
    const listed = (await request("GET", "/v1/models", limited.key)).json() as { models: { name: string }[] };
    assert.deepEqual(listed.models, []);
    const own = (await request("GET", "/v1/models", open.key)).json() as { models: { name: string }[] };
    assert.deepEqual(
      own.models.map((m) => m.name),
      ["credit-demo"],
    );
    // Only client keys name models: another role's limit would hold on some routes only (and an admin could mint
    // itself an unlimited key).
    // A key of another role stored with models before that was refused: its list is not a limit.
    const legacy = server.keys.create({
      name: "legacy",
      role: "auditor",
      models: ["other-model"],
      createdBy: "test",
    });
    assert.equal((await request("GET", "/v1/models/credit-demo", legacy.key)).statusCode, 200);
    const legacyList = (await request("GET", "/v1/models", legacy.key)).json() as {
      models: { name: string }[];
    };
    assert.deepEqual(
      legacyList.models.map((m) => m.name),
      ["credit-demo"],
    );
    for (const role of ["admin", "auditor", "reviewer"]) {
      const refused = await request(
        "POST",
        "/v1/admin/keys",
        keys.admin,
        JSON.stringify({ name: "x", role, models: ["credit-demo"] }),
      );
      assert.equal(refused.statusCode, 400, refused.body);
      assert.equal(refused.json().details[0].field, "models");
    }
    const client = await request(
      "POST",
      "/v1/admin/keys",
      keys.admin,
      JSON.stringify({ name: "x", role: "client", models: ["credit-demo"] }),
    );
    assert.equal(client.statusCode, 201, client.body);
  });

  test("a client key limited to some models neither sees nor acts on the others' decisions by id (404, as if absent)", async () => {
    const mine = server.keys.create({
      name: "mine",
      role: "client",
      models: ["credit-demo"],
      createdBy: "test",
    });
    const other = server.keys.create({
      name: "other",
      role: "client",
      models: ["other-model"],
      createdBy: "test",
    });
    const decided = await request("POST", "/v1/models/credit-demo/decisions", mine.key, BODY);
    assert.equal(decided.statusCode, 200, decided.body);
    const id = decided.json().decision_id as string;
    const outcome = JSON.stringify({ outcome: "good", source: "test" });
    const appeal = JSON.stringify({ reason: "please look again" });
    for (const [method, url, body] of [
      ["GET", `/v1/decisions/${id}`, undefined],
      ["GET", `/v1/decisions/${id}/history`, undefined],
      ["GET", `/v1/decisions/${id}/explanation`, undefined],
      ["POST", `/v1/decisions/${id}/outcomes`, outcome],
      ["POST", `/v1/decisions/${id}/appeals`, appeal],
    ] as const) {
      const refused = await request(method, url, other.key, body);
      assert.equal(refused.statusCode, 404, `${method} ${url}: ${refused.body}`);
      assert.equal(refused.json().code, "WARDEN_ERR_DECISION_NOT_FOUND");
    }
    // The key for the decision's model, and an unlimited one, may.
    assert.equal((await request("GET", `/v1/decisions/${id}`, mine.key)).statusCode, 200);
    assert.equal((await request("POST", `/v1/decisions/${id}/outcomes`, mine.key, outcome)).statusCode, 201);
    assert.equal((await request("GET", `/v1/decisions/${id}/history`, keys.client)).statusCode, 200);
  });
});

test("revealing a protected subject: auditors and admins may; another role gets 403 naming its role, not 401", async () => {
  const decided = await request("POST", "/v1/models/credit-demo/decisions", keys.client, BODY);
  assert.equal(decided.statusCode, 200, decided.body);
  const url = `/v1/decisions/${decided.json().decision_id}?reveal=subject`;
  for (const role of ["client", "reviewer"] as const) {
    const refused = await request("GET", url, keys[role]);
    assert.equal(refused.statusCode, 403, refused.body);
    assert.equal(refused.json().code, "WARDEN_ERR_FORBIDDEN");
    assert.match(refused.json().error, new RegExp(`role ${role}\\b`));
    assert.equal(refused.json().details[0].field, "reveal");
  }
  for (const role of ["auditor", "admin"] as const) {
    const shown = await request("GET", url, keys[role]);
    assert.equal(shown.statusCode, 200, shown.body);
    assert.deepEqual(Object.keys(shown.json().subject_revealed).sort(), ["Age", "Marital"]);
  }
});

test("with authentication on, the reviewer is the key: no x-warden-actor header needed, and the key's name is recorded", async () => {
  const decided = await request("POST", "/v1/models/credit-demo/decisions", keys.client, BODY);
  assert.equal(decided.statusCode, 200, decided.body);
  const appeal = await request(
    "POST",
    `/v1/decisions/${decided.json().decision_id}/appeals`,
    keys.client,
    JSON.stringify({ reason: "please look again" }),
  );
  assert.equal(appeal.statusCode, 202, appeal.body);
  const url = `/v1/review/items/${appeal.json().review_item_id}`;
  const claimed = await request("POST", `${url}/claim`, keys.reviewer);
  assert.equal(claimed.statusCode, 200, claimed.body);
  assert.equal(claimed.json().claimed_by, "reviewer-test");
  const resolved = await request(
    "POST",
    `${url}/resolve`,
    keys.reviewer,
    JSON.stringify({ decision: "good", reason_code: "income_verified" }),
  );
  assert.equal(resolved.statusCode, 200, resolved.body);
});

describe("API keys", () => {
  test("made by an admin, shown once, rotated, revoked; the admin actions and the denials are in the ledger", async () => {
    const made = await request(
      "POST",
      "/v1/admin/keys",
      keys.admin,
      JSON.stringify({ name: "scoring-app", role: "client" }),
    );
    assert.equal(made.statusCode, 201, made.body);
    const issued = made.json() as { id: string; key: string; role: string };
    assert.match(issued.key, /^wdn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const listed = (await request("GET", "/v1/admin/keys", keys.admin)).json() as {
      keys: Record<string, unknown>[];
    };
    const entry = listed.keys.find((k) => k.id === issued.id)!;
    assert.equal(entry.role, "client");
    assert.ok(!JSON.stringify(listed).includes(issued.key.slice(SECRET_AT)), "no secret in the list");
    assert.equal(
      (await request("POST", "/v1/models/credit-demo/decisions", issued.key, BODY)).statusCode,
      200,
    );

    const rotated = await request("POST", `/v1/admin/keys/${issued.id}/rotate`, keys.admin, "{}");
    assert.equal(rotated.statusCode, 201, rotated.body);
    const next = rotated.json() as { id: string; key: string; rotated_from: string };
    assert.equal(next.rotated_from, issued.id);
    const old = await request("POST", "/v1/models/credit-demo/decisions", issued.key, BODY);
    assert.equal(old.statusCode, 401);
    assert.match(old.json().error, /a revoked API key/);
    assert.equal((await request("POST", "/v1/models/credit-demo/decisions", next.key, BODY)).statusCode, 200);

    assert.equal((await request("DELETE", `/v1/admin/keys/${next.id}`, keys.admin)).statusCode, 200);
    assert.equal((await request("POST", "/v1/models/credit-demo/decisions", next.key, BODY)).statusCode, 401);
    assert.equal((await request("DELETE", "/v1/admin/keys/000000000000", keys.admin)).statusCode, 404);
    const expired = server.keys.create({
      name: "old",
      role: "client",
      expiresAt: "2020-01-01T00:00:00.000Z",
      createdBy: "test",
    });
    const late = await request("POST", "/v1/models/credit-demo/decisions", expired.key, BODY);
    assert.equal(late.statusCode, 401);
    assert.match(late.json().error, /an expired API key/);
    const badExpiry = await request(
      "POST",
      "/v1/admin/keys",
      keys.admin,
      JSON.stringify({ name: "x", role: "client", expires_at: "yesterday" }),
    );
    assert.equal(badExpiry.statusCode, 400);
    assert.equal(badExpiry.json().details[0].field, "expires_at");
    // Date.parse reads "March 7, 2030" too; a key's expiry is ISO-8601 with a zone.
    const loose = await request(
      "POST",
      "/v1/admin/keys",
      keys.admin,
      JSON.stringify({ name: "x", role: "client", expires_at: "March 7, 2030" }),
    );
    assert.equal(loose.statusCode, 400);
    assert.equal(loose.json().details[0].field, "expires_at");
    const noSuchDay = await request(
      "POST",
      "/v1/admin/keys",
      keys.admin,
      JSON.stringify({ name: "x", role: "client", expires_at: "2099-02-30T00:00:00Z" }),
    );
    assert.equal(noSuchDay.statusCode, 400, "30 February is no day");
    const badGrace = await request(
      "POST",
      `/v1/admin/keys/${issued.id}/rotate`,
      keys.admin,
      '{"grace_s": -5}',
    );
    assert.equal(badGrace.statusCode, 400);
    assert.deepEqual(badGrace.json().details[0], {
      field: "grace_s",
      expected: "a number >= 0",
      found: "-5 (number)",
    });

    await server.writer.drain();
    const access = [...(await collectAccess())];
    const actions = access.filter((r) => r.body.action !== undefined).map((r) => r.body.action);
    assert.deepEqual(actions.slice(-3), ["key_created", "key_rotated", "key_revoked"]);
    // An offset without a colon is ISO-8601 too.
    const offset = await request(
      "POST",
      "/v1/admin/keys",
      keys.admin,
      JSON.stringify({ name: "x", role: "client", expires_at: "2099-03-01T10:00:00+0100" }),
    );
    assert.equal(offset.statusCode, 201, offset.body);
    assert.equal(offset.json().expires_at, "2099-03-01T09:00:00.000Z");
    const denial = access.find((r) => r.body.outcome === "denied" && r.body.status === 403)!;
    assert.equal((denial.body.identity as { role: string }).role.length > 0, true);
    // Read back through GET /v1/decisions/{id} exactly as recorded: its numeric status is not turned into text.
    const shown = await request(
      "GET",
      `/v1/decisions/${(denial as unknown as { id: string }).id}`,
      keys.admin,
    );
    assert.equal(shown.statusCode, 200, shown.body);
    assert.equal(shown.json().kind, "access");
    for (const [key, value] of Object.entries(denial.body)) assert.deepEqual(shown.json()[key], value, key);
    // No credential anywhere in the ledger.
    assert.ok(!JSON.stringify(access).includes("wdn_"), "no key in the ledger");
  });
});

async function collectAccess() {
  const out: { body: Record<string, unknown> }[] = [];
  for await (const r of server.ledger.scan()) if (r.kind === "access") out.push(r);
  return out;
}

describe("JWT bearer tokens", () => {
  test("HS256 with issuer: the role and models come from the claims; expired, forged, alg none and foreign issuers are 401", async () => {
    const client = await token({ role: "client", models: ["credit-demo"] });
    assert.equal((await request("POST", "/v1/models/credit-demo/decisions", client, BODY)).statusCode, 200);
    assert.equal((await request("GET", "/v1/admin/models", client)).statusCode, 403);
    const limitedClient = await token({ role: "client", models: ["other-model"] });
    assert.equal(
      (await request("POST", "/v1/models/credit-demo/decisions", limitedClient, BODY)).statusCode,
      403,
    );
    // A models claim limits clients only: an auditor's is not a limit (docs/security.md).
    const auditor = await token({ role: "auditor", models: ["other-model"] });
    assert.equal((await request("GET", "/v1/models/credit-demo", auditor)).statusCode, 200);
    const cases: [string, string, RegExp][] = [
      ["expired", await token({ role: "client" }, { expiresIn: "-10m" }), /an expired token/],
      [
        "forged",
        await token({ role: "admin" }, { secret: `${SECRET} but another` }),
        /not signed by the configured keys/,
      ],
      [
        "foreign issuer",
        await token({ role: "admin" }, { issuer: "https://evil.example" }),
        /claims do not match/,
      ],
      ["no role", await token({ role: "superuser" }), /without a Warden role/],
    ];
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const payload = Buffer.from(
      JSON.stringify({
        role: "admin",
        sub: "x",
        iss: "https://idp.example",
        exp: Math.floor(Date.now() / 1000) + 300,
      }),
    ).toString("base64url");
    cases.push(["alg none", `${header}.${payload}.`, /not signed by the configured keys|a malformed token/]);
    for (const [what, jwt, reason] of cases) {
      const answer = await request("GET", "/v1/admin/models", jwt);
      assert.equal(answer.statusCode, 401, what);
      assert.match(answer.json().error, reason, what);
    }
  });

  test("ES256 through a JWKS URL (a local HTTP server), fetched and cached", async () => {
    const { createServer } = await import("node:http");
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwks = JSON.stringify({
      keys: [{ ...(await exportJWK(publicKey)), kid: "url-key", alg: "ES256" }],
    });
    let fetched = 0;
    const idp = createServer((_request, response) => {
      fetched++;
      response.writeHead(200, { "content-type": "application/json" }).end(jwks);
    });
    await new Promise<void>((resolve) => idp.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = idp.address() as { port: number };
      const verifier = createJwtVerifier({
        jwks_url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
        audience: "warden",
        clock_skew_s: 60,
        role_claim: "role",
        models_claim: "models",
      });
      const sign = (audience: string) =>
        new SignJWT({ role: "reviewer" })
          .setProtectedHeader({ alg: "ES256", kid: "url-key" })
          .setSubject("alice")
          .setAudience(audience)
          .setExpirationTime("5m")
          .sign(privateKey);
      const ok = await verifier.verify(await sign("warden"));
      assert.ok("identity" in ok && ok.identity.role === "reviewer", JSON.stringify(ok));
      const again = await verifier.verify(await sign("warden"));
      assert.ok("identity" in again);
      assert.equal(fetched, 1, "the key set is fetched once and cached");
      const other = await verifier.verify(await sign("another-service"));
      assert.ok("refused" in other && other.refused === "bad_claims");
    } finally {
      idp.close();
    }
  });

  test("RS256 and ES256 through a JWKS file", async () => {
    for (const alg of ["RS256", "ES256"] as const) {
      const { publicKey, privateKey } = await generateKeyPair(alg);
      const jwk = { ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg };
      const file = join(scratch.path, `jwks-${alg}.json`);
      writeFileSync(file, JSON.stringify({ keys: [jwk] }));
      const verifier = createJwtVerifier({
        jwks_file: file,
        clock_skew_s: 60,
        role_claim: "roles",
        models_claim: "models",
      });
      const signed = await new SignJWT({ roles: ["auditor"] })
        .setProtectedHeader({ alg, kid: `k-${alg}` })
        .setSubject("risk-office")
        .setExpirationTime("5m")
        .sign(privateKey);
      const ok = await verifier.verify(signed);
      assert.ok("identity" in ok, JSON.stringify(ok));
      assert.equal(ok.identity.role, "auditor");
      assert.equal(ok.identity.name, "risk-office");
      // An HS256 token made with the public key as a secret (algorithm confusion) is refused.
      const confused = await new SignJWT({ roles: ["admin"] })
        .setProtectedHeader({ alg: "HS256", kid: `k-${alg}` })
        .setExpirationTime("5m")
        .sign(new TextEncoder().encode(JSON.stringify(jwk)));
      assert.ok("refused" in (await verifier.verify(confused)));
    }
  });
});

test("fuzzed Authorization headers: always 401 or 403, never a 5xx, and the server keeps answering", async () => {
  const random = seededRandom(11);
  const pick = (s: string) => s[random.int(s.length)]!;
  const alphabet =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~+/=:;,!@#$%^&*()[]{}\"' ";
  const junk = (n: number) => Array.from({ length: n }, () => pick(alphabet)).join("");
  const shapes = [
    () => junk(random.int(200)),
    () => `Bearer ${junk(1 + random.int(300))}`,
    () => `Bearer wdn_${junk(random.int(80))}`,
    () => `Bearer wdn_${"0123456789ab"}_${junk(43)}`,
    () => `Bearer ${junk(20)}.${junk(60)}.${junk(40)}`,
    () => `Basic ${Buffer.from(`${junk(8)}:${junk(8)}`).toString("base64")}`,
    () => `bearer  ${junk(30)}`,
  ];
  for (let i = 0; i < 400; i++) {
    const value = shapes[random.int(shapes.length)]!();
    const answer = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      headers: { authorization: value, "content-type": "application/json" },
      payload: BODY,
    });
    assert.ok(
      [401, 403].includes(answer.statusCode),
      `${JSON.stringify(value)} → ${answer.statusCode} ${answer.body}`,
    );
  }
  assert.equal(
    (await request("POST", "/v1/models/credit-demo/decisions", keys.client, BODY)).statusCode,
    200,
  );
});

test("no secret reaches the logs", async () => {
  await request(
    "POST",
    "/v1/models/credit-demo/decisions",
    "wdn_0123456789ab_not-a-real-secret-but-looks-like-one-0000",
    BODY,
  );
  const log = logLines.join("");
  for (const key of Object.values(keys))
    assert.ok(!log.includes(key!.slice(SECRET_AT)), "an API key secret in the log");
  assert.ok(!log.includes(SECRET), "the JWT secret in the log");
  assert.ok(!/authorization/i.test(log) || !/Bearer /.test(log), "an Authorization header in the log");
});

test("a flood of bad credentials cannot flood the ledger: denials past an address's bucket are counted, then summed", async () => {
  const clock = { now: Date.parse("2026-01-01T00:00:00Z") };
  const flooded = await startTestServer({ config: { auth: { required: true } }, now: () => clock.now });
  try {
    const attempt = () =>
      flooded.app.inject({
        method: "POST",
        url: "/v1/models/credit-demo/decisions",
        headers: { authorization: "Bearer wdn_0123456789ab_nope", "content-type": "application/json" },
        payload: BODY,
      });
    for (let i = 0; i < 120; i++) assert.equal((await attempt()).statusCode, 401);
    await flooded.writer.drain();
    const recorded = async () => {
      const out: Record<string, unknown>[] = [];
      for await (const r of flooded.ledger.scan()) if (r.kind === "access") out.push(r.body);
      return out;
    };
    // The bucket holds 50 records; the other 70 denials were answered and counted.
    assert.equal((await recorded()).length, 50);
    const metrics = await (
      await flooded.app.inject({
        method: "GET",
        url: "/metrics",
        headers: {
          authorization: `Bearer ${flooded.keys.create({ name: "ops", role: "admin", createdBy: "test" }).key}`,
        },
      })
    ).body;
    assert.match(metrics, /^warden_access_denials_unrecorded_total 70$/m);
    // A second later the bucket has refilled by 10: the next recorded denial says how many were left out.
    clock.now += 1000;
    assert.equal((await attempt()).statusCode, 401);
    await flooded.writer.drain();
    const last = (await recorded()).at(-1)!;
    assert.equal(last.unrecorded_before, 70);
  } finally {
    await flooded.stop();
  }
});

test("denial records per address: a burst, then counted; past the most addresses kept, the least recently denied starts afresh", () => {
  let now = 1_000_000;
  let unrecorded = 0;
  const recordable = createDenialRecorder(
    { perSecond: 1, burst: 2 },
    () => now,
    () => unrecorded++,
    3,
  );
  for (const address of ["a", "b", "c"]) {
    assert.deepEqual(recordable(address), { record: true, suppressed: 0 });
    assert.deepEqual(recordable(address), { record: true, suppressed: 0 });
    assert.deepEqual(recordable(address), { record: false, suppressed: 0 });
  }
  assert.equal(unrecorded, 3);
  // A fourth address: a's bucket (the least recently denied) goes, so a starts with its whole burst, nothing suppressed.
  assert.deepEqual(recordable("d"), { record: true, suppressed: 0 });
  assert.deepEqual(recordable("a"), { record: true, suppressed: 0 });
  // a's return pushed b out; c is still kept, empty, and says what it left out once it may record again.
  assert.deepEqual(recordable("c"), { record: false, suppressed: 0 });
  now += 1_000;
  assert.deepEqual(recordable("c"), { record: true, suppressed: 2 });
  assert.deepEqual(recordable("b"), { record: true, suppressed: 0 });
  // A flood of addresses, many times the most kept: each new one has its burst; the latest ones are kept.
  for (let i = 0; i < 50_000; i++) assert.equal(recordable(`flood-${i}`).record, true);
  assert.deepEqual(recordable("flood-49999"), { record: true, suppressed: 0 });
  assert.deepEqual(recordable("flood-49999"), { record: false, suppressed: 0 });
  assert.deepEqual(recordable("flood-0"), { record: true, suppressed: 0 });
});
