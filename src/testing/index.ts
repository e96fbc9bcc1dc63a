/**
 * Helpers shared by tests and benchmarks: temporary folders, the bundled demo models and their reference
 * numbers. The product itself never imports this folder.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import type { FastifyRequest } from "fastify";
import pino, { type Logger } from "pino";
import { loadManifest, type Manifest, parseServerConfig } from "../config/index.js";
import { coerceCsvCell } from "../decision/index.js";
import { type ReviewOptions, type RunningServer, startServer } from "../server/index.js";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEMO_XGB = join(REPO_ROOT, "models/credit-demo/manifest.yaml");
export const DEMO_ONNX = join(REPO_ROOT, "models/credit-demo-onnx/manifest.yaml");
export const HOLDOUT_CSV = join(REPO_ROOT, "models/credit-demo/holdout.csv");

/** A temporary folder removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `warden-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** The holdout rows as decision request bodies ({features, subject}) for a manifest. */
export function holdoutInstances(
  manifest: Manifest,
): { features: Record<string, unknown>; subject: Record<string, unknown>; status: string }[] {
  const rows = parse(readFileSync(HOLDOUT_CSV), { columns: true }) as Record<string, string>[];
  return rows.map((row) => {
    const features: Record<string, unknown> = {};
    const subject: Record<string, unknown> = {};
    for (const f of manifest.features)
      (f.sensitive ? subject : features)[f.name] = coerceCsvCell(f, row[f.name]);
    return { features, subject, status: row.Status ?? "" };
  });
}

/** XGBoost's own predictions for the holdout (made by scripts/demo/train_credit_demo.py). */
export function xgboostHoldoutReference(): number[] {
  const file = join(REPO_ROOT, "fixtures/xgboost/credit-demo-holdout-reference.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { predictions: number[] }).predictions;
}

/** A server configuration for tests: a free port, silent logs. */
export function parseConfigForTest(config: Record<string, unknown>) {
  return parseServerConfig({ port: 0, log_level: "silent", auth: { required: false }, ...config }, "test");
}

/** Start a real server on a free loopback port with a temporary ledger; `stop` closes and cleans up. */
export async function startTestServer(
  options: {
    models?: string[];
    config?: Record<string, unknown>;
    logger?: Logger;
    canRevealSubject?: (request: FastifyRequest) => boolean;
    rateLimitKey?: (request: FastifyRequest) => string;
    review?: ReviewOptions;
    now?: () => number;
  } = {},
): Promise<RunningServer & { dataDir: string; stop: () => Promise<void> }> {
  const dir = tempDir("server");
  const config = parseServerConfig(
    {
      port: 0,
      data_dir: dir.path,
      log_level: "silent",
      models: options.models ?? [DEMO_XGB],
      // Tests of other parts send no credentials; the access tests turn identities on.
      auth: { required: false },
      ...options.config,
    },
    "test",
  );
  const server = await startServer(config, {
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.canRevealSubject ? { canRevealSubject: options.canRevealSubject } : {}),
    ...(options.rateLimitKey ? { rateLimitKey: options.rateLimitKey } : {}),
    ...(options.review ? { review: options.review } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return Object.assign(server, {
    dataDir: dir.path,
    stop: async () => {
      await server.close();
      dir.remove();
    },
  });
}

/**
 * A copy of the XGBoost demo model as another version, in `dir/<version>/`: same artifact and reference
 * rows, `version:` changed (and so another manifest sha256). Returns the manifest path.
 */
export function demoVersion(dir: string, version: string): string {
  const folder = join(dir, version);
  mkdirSync(folder, { recursive: true });
  copyFileSync(join(REPO_ROOT, "models/credit-demo/model.json"), join(folder, "model.json"));
  copyFileSync(HOLDOUT_CSV, join(folder, "holdout.csv"));
  const manifest = readFileSync(DEMO_XGB, "utf8").replace(/^version: .*$/m, `version: "${version}"`);
  const path = join(folder, "manifest.yaml");
  writeFileSync(path, manifest);
  return path;
}

/**
 * A copy of the XGBoost demo model in `dir/<name>-<version>/` with another name, version, risk tier and
 * `policy` (written as a JSON flow mapping). Returns the manifest path.
 */
export function demoCopy(
  dir: string,
  options: { name?: string; version: string; riskTier?: string; policy?: Record<string, unknown> },
): string {
  const name = options.name ?? "credit-demo";
  const folder = join(dir, `${name}-${options.version}`);
  mkdirSync(folder, { recursive: true });
  copyFileSync(join(REPO_ROOT, "models/credit-demo/model.json"), join(folder, "model.json"));
  const manifest = readFileSync(DEMO_XGB, "utf8")
    .replace(/^name: .*$/m, `name: ${name}`)
    .replace(/^version: .*$/m, `version: "${options.version}"`)
    .replace(/^risk_tier: .*$/m, `risk_tier: ${options.riskTier ?? "high"}`)
    .replace(/^policy: .*$/m, `policy: ${JSON.stringify(options.policy ?? {})}`);
  const path = join(folder, "manifest.yaml");
  writeFileSync(path, manifest);
  return path;
}

export { loadManifest };

/** Every item of an async iterable, in order (Node 20 has no Array.fromAsync). */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
export { startWebhookReceiver, type WebhookReceiver } from "./webhook.js";

/** A pino logger at `level` whose lines are kept, parsed, in `lines` (for tests of what is logged). */
export function captureLogs(level: pino.LevelWithSilent = "debug"): {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
