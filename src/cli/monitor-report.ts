import { resolve } from "node:path";
import type { Command } from "commander";
import { loadManifest, MAX_PROFILE_BYTES, type Manifest, readBoundedFile } from "../config/index.js";
import { encodeValue, type FeatureValue } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import { type RecordFilter, type SnapshotReader, snapshot } from "../feedback/index.js";
import {
  computeReport,
  LIVE_WINDOWS,
  type LiveWindow,
  type MonitorReport,
  mergeWindowSnapshots,
  type PerformanceFigures,
  profilePath,
  type RangeDecision,
  type RangeReport,
  type ReferenceProfile,
  rangeReport,
  referenceProfileFromJSON,
  type WindowSnapshot,
} from "../monitor/index.js";
import { type CliIo, choiceOption, UsageError } from "./index.js";
import { checkTimeRange, timeOption, withOutput } from "./ledger-export.js";
import { addStoreOptions, openRecordSource, type StoreOptions } from "./ledger-proofs.js";
import { reasonOf } from "./stream-output.js";

const REPORT_FORMATS = ["text", "json"] as const;
type ReportFormat = (typeof REPORT_FORMATS)[number];

interface ReportOptions extends StoreOptions {
  from?: number;
  to?: number;
  profile?: string;
  format: ReportFormat;
  out?: string;
}

/** The report as `warden monitor report` writes it (JSON). */
export interface LedgerMonitorReport extends RangeReport {
  readonly model: string;
  readonly version: string;
  /** The range, ISO-8601; null where open. `from` is inclusive, `to` not. */
  readonly from: string | null;
  readonly to: string | null;
  /** Decisions of other versions of the model in the range (not in this report). */
  readonly other_versions: number;
}

/** `warden monitor report`: the live monitor's report over a range of the ledger. */
export function monitorCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const monitor = program
    .command("monitor")
    .description(
      "Monitoring beyond one server's window: the live monitors' figures over a ledger range, or over several replicas",
    );
  mergeCommand(monitor, io, run);
  addStoreOptions(
    monitor
      .command("report")
      .description(
        "Report on a model version's decisions recorded in the ledger between --from and --to, as GET " +
          "/v1/models/{m}/monitor does over its window: drift per feature and of the score against the " +
          "version's reference profile (KS for numbers, chi-squared for categories), missing and " +
          "out-of-range rates, the anomaly rate and the dataset verdict; and, for binary models, " +
          "performance: realised over the decisions whose outcome is recorded (the latest outcome counts, " +
          "whenever it was recorded), the label-free estimate (CBPE) over every decision, and the estimate " +
          "over the labelled decisions beside the realised figures.",
      )
      .argument("<manifest>", "the model version's manifest (YAML)")
      .option("--from <time>", "decisions at or after this time (ISO-8601)", timeOption("--from"))
      .option("--to <time>", "decisions before this time (ISO-8601)", timeOption("--to"))
      .option("--data-dir <dir>", "the server's data folder", "warden-data")
      .option(
        "--profile <file>",
        "the reference profile (default: <data-dir>/profiles/<model>/<version>.json, as warden profile build writes it)",
      )
      .option("--format <format>", "text or json", choiceOption("--format", REPORT_FORMATS), "text")
      .option("--out <file>", "write here (default: standard output)"),
  ).action((manifestPath: string, options: ReportOptions) =>
    run(async () => {
      checkTimeRange(options.from, options.to, ["--from", "--to"]);
      const manifest = loadManifest(manifestPath);
      const profile = readProfile(manifest, options, io);
      const store = await openRecordSource(options);
      let report: LedgerMonitorReport;
      try {
        report = await ledgerMonitorReport(store.source, manifest, profile, {
          since: options.from,
          until: options.to,
        });
      } finally {
        await store.close();
      }
      return withOutput(options.out, io, async (output) => {
        await output.write(
          options.format === "json" ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report),
        );
        return options.out === undefined ? "" : `wrote ${resolve(options.out)}\n`;
      });
    }),
  );
}

interface MergeOptions {
  apiKey?: string;
  dataDir: string;
  profile?: string;
  window: LiveWindow;
  format: ReportFormat;
  out?: string;
}

/** `warden monitor merge`: one report over the live windows of several replicas of a model version. */
function mergeCommand(monitor: Command, io: CliIo, run: (action: () => Promise<number>) => void): void {
  monitor
    .command("merge")
    .description(
      "One live report over several replicas of a model version: fetches each replica's window (GET " +
        "/v1/models/{m}/versions/{v}/monitor/window), checks that all serve this manifest, puts their decisions " +
        "together and compares them with the reference profile — the same tests as GET .../monitor, with the " +
        "power of every replica's traffic at once.",
    )
    .argument("<manifest>", "the model version's manifest (YAML)")
    .argument("<replica...>", "each replica's base URL, e.g. http://10.0.0.5:8080")
    .option("--window <window>", "count or time", choiceOption("--window", LIVE_WINDOWS), "count")
    .option(
      "--api-key <key>",
      "an auditor's or admin's API key (default: the WARDEN_API_KEY environment variable)",
    )
    .option("--data-dir <dir>", "where the reference profile is (<data-dir>/profiles/...)", "warden-data")
    .option("--profile <file>", "the reference profile (default: the data folder's)")
    .option("--format <format>", "text or json", choiceOption("--format", REPORT_FORMATS), "text")
    .option("--out <file>", "write here (default: standard output)")
    .action((manifestPath: string, replicas: string[], options: MergeOptions) =>
      run(async () => {
        const urls = replicas.map((r) => replicaUrl(r));
        const manifest = loadManifest(manifestPath);
        const profile = readProfile(manifest, options, io);
        const windows: WindowSnapshot[] = [];
        const key = options.apiKey ?? process.env.WARDEN_API_KEY;
        for (const url of urls)
          windows.push(await fetchWindow(url, manifest, options.window, key || undefined));
        const width = manifest.modelFeatures.length;
        const report = {
          model: manifest.name,
          version: manifest.version,
          replicas: urls.length,
          ...computeReport(manifest.modelFeatures, mergeWindowSnapshots(windows, width), profile),
        };
        return withOutput(options.out, io, async (output) => {
          await output.write(
            options.format === "json" ? `${JSON.stringify(report, null, 2)}\n` : renderMerged(report),
          );
          return options.out === undefined ? "" : `wrote ${resolve(options.out)}\n`;
        });
      }),
    );
}

/** A replica's base URL, checked; the window's path is added to it. */
function replicaUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `a replica must be an http:// or https:// URL, e.g. http://10.0.0.5:8080; got ${JSON.stringify(text)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`a replica must be an http:// or https:// URL; got ${JSON.stringify(text)}`);
  }
  return url.toString().replace(/\/+$/, "");
}

/** One replica's window of this manifest's version, checked field by field. */
async function fetchWindow(
  base: string,
  manifest: Manifest,
  window: LiveWindow,
  apiKey: string | undefined,
): Promise<WindowSnapshot> {
  const path = `/v1/models/${encodeURIComponent(manifest.name)}/versions/${encodeURIComponent(manifest.version)}/monitor/window?window=${window}`;
  const fail = (found: string, fix?: string): never => {
    throw new WardenError("WARDEN_ERR_INPUT_FILE", `${base}: ${found}`, {
      details: [
        {
          field: base,
          expected: `a Warden replica serving ${manifest.name} ${manifest.version} (this manifest)`,
          found,
          ...(fix !== undefined ? { fix } : {}),
        },
      ],
    });
  };
  let body: unknown;
  try {
    const response = await fetch(`${base}${path}`, {
      signal: AbortSignal.timeout(30_000),
      ...(apiKey !== undefined ? { headers: { authorization: `Bearer ${apiKey}` } } : {}),
    });
    if (!response.ok)
      fail(
        `GET ${path} answered ${response.status}`,
        "check the URL and that the replica serves this version",
      );
    body = await response.json();
  } catch (error) {
    if (error instanceof WardenError) throw error;
    fail(`GET ${path} failed: ${reasonOf(error)}`);
  }
  const w = body as {
    manifest_sha256?: unknown;
    features?: unknown;
    observed?: unknown;
    alpha?: unknown;
    window?: {
      window_kind?: unknown;
      window_size?: unknown;
      window_span_s?: unknown;
      window_capped?: unknown;
    };
    rows?: unknown;
    scores?: unknown;
  };
  if (w.manifest_sha256 !== manifest.manifestSha256)
    fail(
      `it serves another manifest of ${manifest.name} ${manifest.version} (sha256 ${String(w.manifest_sha256).slice(0, 12)}…)`,
      "merge only replicas that serve the same manifest",
    );
  const names = manifest.modelFeatures.map((f) => f.name);
  if (!Array.isArray(w.features) || w.features.join("\u0000") !== names.join("\u0000"))
    fail("its window lists other features");
  const rows = Array.isArray(w.rows) ? (w.rows as unknown[]) : fail("its window has no rows");
  const scores = Array.isArray(w.scores) ? (w.scores as unknown[]) : fail("its window has no scores");
  if (rows.length !== scores.length) fail(`its window has ${rows.length} rows and ${scores.length} scores`);
  const width = names.length;
  const flat = new Float64Array(rows.length * width);
  rows.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== width) fail(`row ${i} of its window is not ${width} values`);
    (row as unknown[]).forEach((v, j) => {
      if (v !== null && typeof v !== "number") fail(`row ${i} of its window holds ${JSON.stringify(v)}`);
      flat[i * width + j] = v === null ? Number.NaN : (v as number);
    });
  });
  const scoreArray = Float64Array.from(scores, (v, i) =>
    typeof v === "number" ? v : fail(`score ${i} of its window is ${JSON.stringify(v)}`),
  );
  const kind = w.window?.window_kind;
  if (kind !== window) fail(`it sent a ${String(kind)} window, not ${window}`);
  return {
    rows: flat,
    scores: scoreArray,
    n: rows.length,
    observed: typeof w.observed === "number" ? w.observed : fail("its window has no observed count"),
    alpha: typeof w.alpha === "number" ? w.alpha : fail("its window has no alpha"),
    task: manifest.task,
    window: {
      window_kind: window,
      window_size: typeof w.window?.window_size === "number" ? w.window.window_size : rows.length,
      ...(window === "time"
        ? {
            window_span_s: typeof w.window?.window_span_s === "number" ? w.window.window_span_s : 0,
            window_capped: w.window?.window_capped === true,
          }
        : {}),
    },
  };
}

/** The merged report for a terminal: the range report's table, headed by the replicas. */
function renderMerged(r: MonitorReport & { model: string; version: string; replicas: number }): string {
  return renderReport({ ...r, from: null, to: null, other_versions: 0, performance: null }).replace(
    /^.*\n/,
    `${r.model} ${r.version}: ${r.window} decisions from ${r.replicas} replicas' ${r.window_kind} windows\n`,
  );
}

/** The profile named by --profile, else the data folder's; null (with a note) when there is none. */
function readProfile(
  manifest: Manifest,
  options: { profile?: string | undefined; dataDir: string },
  io: CliIo,
): ReferenceProfile | null {
  const path =
    options.profile !== undefined
      ? resolve(options.profile)
      : profilePath(options.dataDir, manifest.name, manifest.version);
  let text: string;
  try {
    text = readBoundedFile(path, MAX_PROFILE_BYTES, { pipes: options.profile !== undefined }).toString(
      "utf8",
    );
  } catch (error) {
    if (options.profile !== undefined) {
      throw new WardenError("WARDEN_ERR_INPUT_FILE", `cannot read ${path}: ${reasonOf(error)}`, {
        details: [{ field: "--profile", expected: "a readable profile (JSON)", found: reasonOf(error) }],
      });
    }
    io.stderr(
      `note: no reference profile at ${path}: drift and anomalies are left out (warden profile build makes one)\n`,
    );
    return null;
  }
  let profile: ReferenceProfile;
  try {
    profile = referenceProfileFromJSON(JSON.parse(text));
  } catch (error) {
    throw new WardenError("WARDEN_ERR_INPUT_FILE", `${path} is not a reference profile: ${reasonOf(error)}`, {
      details: [
        {
          field: options.profile !== undefined ? "--profile" : path,
          expected: "a profile written by warden profile build",
          found: reasonOf(error),
          fix: "build it again with warden profile build",
        },
      ],
    });
  }
  if (profile.provenance.manifestSha256 !== manifest.manifestSha256) {
    io.stderr(`note: ${path} was built for another manifest of ${manifest.name} ${manifest.version}\n`);
  }
  return profile;
}

/**
 * The report over the decisions of `manifest`'s model version in [since, until): one pass over the ledger's
 * records committed when it starts (outcomes are looked for after the range too: they come later).
 */
export async function ledgerMonitorReport(
  source: SnapshotReader,
  manifest: Manifest,
  profile: ReferenceProfile | null,
  range: Pick<RecordFilter, "since" | "until">,
): Promise<LedgerMonitorReport> {
  const features = manifest.modelFeatures;
  const binary = manifest.task === "binary";
  const positive = manifest.output.positive_label;
  const decisions: { id: string; row: Float64Array; score: number; positive?: boolean }[] = [];
  const byId = new Map<string, number>();
  const outcomes = new Map<string, unknown>();
  let otherVersions = 0;
  const records = await snapshot(source);
  for await (const record of records()) {
    if (record.model !== manifest.name) continue;
    if (record.kind === "outcome") {
      const id = record.body.decision_id;
      // A later outcome corrects an earlier one.
      if (typeof id === "string") outcomes.set(id, record.body.outcome);
      continue;
    }
    if (record.kind !== "decision") continue;
    const time = Date.parse(record.time);
    if (range.since !== undefined && !(time >= range.since)) continue;
    if (range.until !== undefined && !(time < range.until)) continue;
    if (record.version !== manifest.version) {
      otherVersions++;
      continue;
    }
    const inputs = record.body.inputs as Readonly<Record<string, FeatureValue>> | undefined;
    const outputs = record.body.outputs as { score?: unknown } | undefined;
    if (inputs === undefined || typeof outputs?.score !== "number") continue;
    const row = new Float64Array(features.length);
    features.forEach((f, j) => {
      const value = inputs[f.name];
      row[j] = value === undefined ? Number.NaN : encodeValue(f, value);
    });
    byId.set(record.id, decisions.length);
    decisions.push({ id: record.id, row, score: outputs.score });
  }
  const ranged: RangeDecision[] = decisions.map((d) => {
    const outcome = outcomes.get(d.id);
    return binary && outcome !== undefined ? { ...d, positive: outcome === positive } : d;
  });
  const report = rangeReport(features, ranged, {
    profile,
    task: manifest.task,
    ...(binary ? { threshold: manifest.output.threshold } : {}),
  });
  return {
    model: manifest.name,
    version: manifest.version,
    from: range.since === undefined ? null : new Date(range.since).toISOString(),
    to: range.until === undefined ? null : new Date(range.until).toISOString(),
    other_versions: otherVersions,
    ...report,
  };
}

const num = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined ? "–" : v.toFixed(digits);

/** The report for a terminal. */
export function renderReport(r: LedgerMonitorReport): string {
  const lines: string[] = [];
  lines.push(
    `${r.model} ${r.version}: ${r.window} decisions from ${r.from ?? "the start"} to ${r.to ?? "now"}`,
  );
  if (r.other_versions > 0) lines.push(`  (${r.other_versions} decisions of other versions left out)`);
  lines.push(
    r.profile === null
      ? "  no reference profile: drift and anomalies left out"
      : `  profile: ${r.profile.rows} reference rows, built ${r.profile.created_at}, sha256 ${r.profile.reference_sha256.slice(0, 12)}…`,
  );
  lines.push("");
  lines.push("  feature                missing  out-of-range  test  statistic  p-value   drifted");
  for (const f of r.features) {
    lines.push(
      `  ${f.name.padEnd(22)} ${num(f.missing_rate).padStart(7)}  ${num(f.out_of_range_rate).padStart(12)}` +
        (f.drift === undefined
          ? ""
          : `  ${f.drift.test.padEnd(4)}  ${num(f.drift.statistic, 4).padStart(9)}  ${f.drift.p_value.toExponential(2).padStart(8)}  ${f.drift.drifted ? "yes" : "no"}`),
    );
  }
  lines.push("");
  lines.push(
    `  score: mean ${num(r.score.mean)}` +
      (r.score.drift === undefined
        ? ""
        : `, KS ${num(r.score.drift.statistic, 4)} (p ${r.score.drift.p_value.toExponential(2)}), ${r.score.drift.drifted ? "drifted" : "stable"}`),
  );
  if (r.anomaly_rate !== null) lines.push(`  anomaly rate: ${num(r.anomaly_rate)}`);
  if (r.dataset !== null) {
    lines.push(
      `  dataset: ${r.dataset.drifted ? "DRIFT" : "no drift"}: ${r.dataset.driftedCount} of ` +
        `${r.dataset.testedCount} tested features drifted (about ${num(r.dataset.expectedByChance, 1)} by chance at ` +
        `α = ${r.alpha}); Bonferroni-significant: ${r.dataset.bonferroniSignificant.join(", ") || "none"}`,
    );
  }
  const p = r.performance;
  if (p !== null) {
    lines.push("");
    lines.push(
      `  performance (threshold ${p.threshold}): ${p.labelled} of ${p.decisions} decisions labelled`,
    );
    const row = (name: string, f: PerformanceFigures | null) =>
      f === null
        ? `  ${name.padEnd(24)} –`
        : `  ${name.padEnd(24)} ${num(f.accuracy).padStart(8)} ${num(f.precision).padStart(9)} ${num(f.recall).padStart(6)} ${num(f.roc_auc).padStart(7)}` +
          (f.brier !== undefined ? ` ${num(f.brier).padStart(6)} ${num(f.ece).padStart(6)}` : "");
    lines.push(`  ${"".padEnd(24)} accuracy precision recall roc_auc  brier    ece`);
    lines.push(row("realised (labelled)", p.realised));
    lines.push(row("estimated (labelled)", p.estimated_on_labelled));
    lines.push(row("estimated (all, CBPE)", p.estimated));
  }
  return `${lines.join("\n")}\n`;
}
