import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { referenceProfileFromJSON } from "../monitor/index.js";
import { DEMO_XGB, HOLDOUT_CSV, REPO_ROOT, tempDir } from "../testing/index.js";
import { main } from "./index.js";

const dir = tempDir("profile");
after(() => dir.remove());

async function spawnWarden(
  ...argv: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/warden.js"), ...argv], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, stdout, stderr };
}

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

test("warden profile build writes the demo's profile under <data-dir>/profiles/<model>/<version>.json", async () => {
  const dataDir = join(dir.path, "data");
  const result = await spawnWarden(
    "profile",
    "build",
    DEMO_XGB,
    HOLDOUT_CSV,
    "--data-dir",
    dataDir,
    "--seed",
    "3",
  );
  assert.equal(result.code, 0, result.stderr);
  const target = join(dataDir, "profiles", "credit-demo", "1.0.0.json");
  assert.match(result.stdout, /credit-demo 1\.0\.0: 891 reference rows, 11 features/);
  assert.ok(result.stdout.includes(`wrote ${target}`), result.stdout);
  const profile = referenceProfileFromJSON(JSON.parse(readFileSync(target, "utf8")));
  assert.equal(profile.provenance.rows, 891);
  assert.equal(profile.provenance.seed, 3);
  assert.equal(profile.provenance.referenceFile, "holdout.csv");
  assert.equal(
    profile.provenance.referenceSha256,
    createHash("sha256").update(readFileSync(HOLDOUT_CSV)).digest("hex"),
  );
  assert.equal(
    profile.provenance.manifestSha256,
    createHash("sha256").update(readFileSync(DEMO_XGB)).digest("hex"),
  );
  assert.equal(profile.anomaly.trees.length, 100);
});

test("--out writes elsewhere; the same seed writes the same profile but for its date", async () => {
  const out = join(dir.path, "nested", "p.json");
  const first = await run("profile", "build", DEMO_XGB, HOLDOUT_CSV, "--out", out, "--seed", "3");
  assert.equal(first.code, 0, first.stderr);
  const again = join(dir.path, "again.json");
  assert.equal((await run("profile", "build", DEMO_XGB, HOLDOUT_CSV, "--out", again, "--seed", "3")).code, 0);
  const undated = (path: string) => {
    const j = JSON.parse(readFileSync(path, "utf8"));
    j.provenance.createdAt = "";
    return j;
  };
  assert.deepEqual(undated(out), undated(again));
  assert.equal(existsSync(join(REPO_ROOT, "warden-data", "profiles", "credit-demo", "1.0.0.json")), false);
});

test("bad reference rows exit 1 naming the file, line and feature; misuse exits 2; --help exits 0", async () => {
  const bad = join(dir.path, "bad.csv");
  writeFileSync(
    bad,
    "Seniority,Home,Time,Records,Job,Expenses,Income,Assets,Debt,Amount,Price\n" +
      "9,rent,60,no,freelance,73,129,0,0,800,846\n" +
      "9,castle,60,no,freelance,73,129,0,0,800,-5\n",
  );
  const invalid = await spawnWarden("profile", "build", DEMO_XGB, bad, "--out", join(dir.path, "x.json"));
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /bad\.csv: cannot profile credit-demo 1\.0\.0 on these rows/);
  assert.match(invalid.stderr, /bad\.csv:3: features\.Home: expected one of/);
  assert.match(invalid.stderr, /bad\.csv:3: features\.Price: expected a finite number between 0 and 200000/);
  assert.equal(existsSync(join(dir.path, "x.json")), false);

  const absent = await run(
    "profile",
    "build",
    DEMO_XGB,
    join(dir.path, "absent.csv"),
    "--out",
    join(dir.path, "y.json"),
  );
  assert.equal(absent.code, 1);
  assert.match(absent.stderr, /cannot read .*absent\.csv: ENOENT/);
  const noColumn = join(dir.path, "short.csv");
  writeFileSync(noColumn, "Seniority,Home\n1,rent\n");
  const short = await run("profile", "build", DEMO_XGB, noColumn, "--out", join(dir.path, "z.json"));
  assert.equal(short.code, 1);
  assert.match(short.stderr, /short\.csv: header: expected .* found no column Time/);
  const manifest = await run("profile", "build", join(dir.path, "none.yaml"), HOLDOUT_CSV);
  assert.equal(manifest.code, 1);
  assert.match(manifest.stderr, /none\.yaml: cannot read the manifest/);

  assert.equal((await run("profile", "build", DEMO_XGB)).code, 2);
  const seed = await run("profile", "build", DEMO_XGB, HOLDOUT_CSV, "--seed", "x");
  assert.equal(seed.code, 2);
  assert.match(seed.stderr, /--seed must be an integer from 0 to 4294967295/);
  for (const argv of [
    ["profile", "--help"],
    ["profile", "build", "--help"],
  ]) {
    const help = await run(...argv);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: warden profile/);
  }
});
