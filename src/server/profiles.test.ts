import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { profilePath, referenceProfileFromJSON } from "../monitor/index.js";
import { HOLDOUT_CSV, startTestServer } from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const url = (path: string) => `${server.url}${path}`;

test("a model version has no profile until one is built; then GET returns what was stored", async () => {
  const missing = await fetch(url("/v1/models/credit-demo/versions/1.0.0/profile"));
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { code: string }).code, "WARDEN_ERR_PROFILE_NOT_FOUND");

  const built = await fetch(url("/v1/admin/models/credit-demo/versions/1.0.0/profile"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ seed: 7 }),
  });
  assert.equal(built.status, 201);
  const answer = (await built.json()) as {
    stored: string;
    provenance: { referenceSha256: string; rows: number; seed: number; referenceFile: string };
    anomaly_threshold: number;
  };
  // The manifest's reference rows, by an independent count and hash of the file.
  const bytes = readFileSync(HOLDOUT_CSV);
  const lines = bytes.toString("utf8").trim().split("\n").length - 1;
  assert.equal(answer.provenance.referenceSha256, createHash("sha256").update(bytes).digest("hex"));
  assert.equal(answer.provenance.rows, lines);
  assert.equal(answer.provenance.seed, 7);
  assert.equal(answer.provenance.referenceFile, "holdout.csv");
  assert.ok(answer.anomaly_threshold > 0 && answer.anomaly_threshold <= 1);
  // Stored where `warden profile build` stores it, whole.
  assert.equal(answer.stored, profilePath(server.dataDir, "credit-demo", "1.0.0"));
  assert.ok(existsSync(answer.stored));

  const read = await fetch(url("/v1/models/credit-demo/versions/1.0.0/profile"));
  assert.equal(read.status, 200);
  const profile = referenceProfileFromJSON(await read.json());
  assert.deepEqual(profile, referenceProfileFromJSON(JSON.parse(readFileSync(answer.stored, "utf8"))));
  assert.equal(profile.features.length, 11);
  const records = profile.features.find((f) => f.name === "Records")!;
  assert.equal(records.kind, "discrete");
});

test("a reference file that is not there, an unknown version and a bad body are refused clearly", async () => {
  const post = (path: string, body: unknown) =>
    fetch(url(path), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const gone = await post("/v1/admin/models/credit-demo/versions/1.0.0/profile", {
    reference: "no-such.csv",
  });
  assert.equal(gone.status, 400);
  const error = (await gone.json()) as { code: string; details: { field: string }[] };
  assert.equal(error.code, "WARDEN_ERR_INPUT_FILE");
  assert.equal(error.details[0]!.field, "reference");
  const unknown = await post("/v1/admin/models/credit-demo/versions/9.9.9/profile", {});
  assert.equal(unknown.status, 404);
  const bad = await post("/v1/admin/models/credit-demo/versions/1.0.0/profile", { seed: -1, colour: "red" });
  assert.equal(bad.status, 400);
});
