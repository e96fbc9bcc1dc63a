/**
 * Monitoring over HTTP. Reference profiles: built by a model's explainer thread from reference rows (the
 * model's engine scores them there, off the serving thread), stored where `warden profile build` stores them
 * (`<data_dir>/profiles/<model>/<version>.json`), and read back. Live monitors: one per loaded model version,
 * fed by every decision it makes, compared with its profile when asked (`GET /v1/models/{m}/monitor`).
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Gauge, Registry } from "prom-client";
import { v7 as uuidv7 } from "uuid";
import { MAX_PROFILE_BYTES, type Manifest, readBoundedFile } from "../config/index.js";
import type { DecidedInstance } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import { createLiveFairness, type FairnessAlert, type LiveFairness } from "../fairness/index.js";
import {
  createLiveMonitor,
  createLivePerformance,
  createReportThread,
  LIVE_WINDOWS,
  type LiveMonitor,
  type LivePerformance,
  type LiveWindow,
  type MonitorReport,
  profilePath,
  type ReferenceProfile,
  referenceProfileFromJSON,
  saveProfile,
  type WindowSnapshot,
} from "../monitor/index.js";
import type { LoadedModel } from "../registry/index.js";
import type { RouteContext } from "./app.js";
import { scrapedGauges } from "./metrics.js";
import { errorResponses, pathParams } from "./routes-decisions.js";
import { actorOf } from "./routes-deployments.js";
import { registerFairnessMetrics, registerFairnessRoutes } from "./routes-fairness.js";

/** The live monitors of a server's loaded model versions, made on first use. */
export interface LiveMonitors {
  of(model: LoadedModel): LiveMonitor;
  /** The version's live performance, for binary models (undefined for others). */
  performanceOf(model: LoadedModel): LivePerformance | undefined;
  /**
   * A decision was made: its row and score go to the drift monitor and (binary models) the performance; its
   * subject, put into the fairness policy's groups at once and not kept, and decision to the fairness monitor.
   */
  decided(model: LoadedModel, row: ArrayLike<number>, score: number, decided?: DecidedInstance): void;
  /** An outcome landed for a decision of this version (binary models: whether it is the positive label). */
  outcome(model: LoadedModel, score: number, outcome: unknown, decisionId?: string): void;
  /** The version's live fairness monitor (binary models with groupable sensitive attributes; else undefined). */
  fairnessOf(model: LoadedModel): LiveFairness | undefined;
  /**
   * The lowest selection-rate ratio between the groups of any monitored attribute over the version's latest
   * decisions (the count window): 1 is parity, the four-fifths rule wants at least 0.8. null when the version
   * has no fairness monitor or too few decisions per group yet. For circuit-breaker rules.
   */
  worstDisparityRatio(model: LoadedModel): number | null;
  /** Emits "alert" (a {@link FairnessAlert}) once when a fairness criterion starts failing and once when it passes again. */
  readonly fairnessAlerts: EventEmitter<{ alert: [FairnessAlert] }>;
  /** A window's report, computed in the report thread (the serving thread only copies the window out). */
  report(model: LoadedModel, window?: LiveWindow): Promise<MonitorReport>;
  /** A profile was built for this version: monitor against it from now on. */
  profileBuilt(model: LoadedModel, profile: ReferenceProfile): void;
  /** Stop the report thread. */
  close(): Promise<void>;
}

/**
 * Live monitors reading profiles from `dataDir`. A stored profile that cannot be read is reported through
 * `onProblem` and the monitor runs without one (rates, no drift), rather than refusing decisions.
 */
export function createLiveMonitors(dataDir: string, onProblem: (message: string) => void): LiveMonitors {
  const monitors = new WeakMap<LoadedModel, LiveMonitor>();
  const performances = new WeakMap<LoadedModel, LivePerformance>();
  const fairness = new WeakMap<LoadedModel, LiveFairness | null>();
  const fairnessAlerts = new EventEmitter<{ alert: [FairnessAlert] }>();
  const reports = createReportThread();
  const storedProfile = (model: LoadedModel): ReferenceProfile | null => {
    const m = model.manifest;
    const path = profilePath(dataDir, m.name, m.version);
    let text: string;
    try {
      text = readBoundedFile(path, MAX_PROFILE_BYTES).toString("utf8");
    } catch (error) {
      // None stored is the usual case; anything else (a folder, a file past the limit) is worth a word.
      if (existsSync(path)) onProblem(`${path} cannot be read: ${(error as Error).message}`);
      return null;
    }
    try {
      const profile = referenceProfileFromJSON(JSON.parse(text));
      if (profile.provenance.manifestSha256 !== m.manifestSha256) {
        onProblem(`${path} profiles another manifest of ${m.name} ${m.version}; build it again`);
        return null;
      }
      return profile;
    } catch (error) {
      onProblem(`${path} cannot be used: ${(error as Error).message}`);
      return null;
    }
  };
  const of = (model: LoadedModel): LiveMonitor => {
    let monitor = monitors.get(model);
    if (monitor === undefined) {
      monitor = createLiveMonitor(model.manifest.modelFeatures, {
        profile: storedProfile(model),
        task: model.manifest.task,
      });
      monitors.set(model, monitor);
    }
    return monitor;
  };
  const performanceOf = (model: LoadedModel): LivePerformance | undefined => {
    if (model.manifest.task !== "binary") return undefined;
    let performance = performances.get(model);
    if (performance === undefined) {
      performance = createLivePerformance({ threshold: model.manifest.output.threshold });
      performances.set(model, performance);
    }
    return performance;
  };
  const fairnessOf = (model: LoadedModel): LiveFairness | undefined => {
    let monitor = fairness.get(model);
    if (monitor === undefined) {
      const m = model.manifest;
      monitor =
        m.task === "binary" && m.fairness.attributes.length > 0
          ? createLiveFairness({
              model: m.name,
              version: m.version,
              policy: m.fairness,
              favourableLabel: m.output.favorable_label!,
              onAlert: (alert) => {
                try {
                  fairnessAlerts.emit("alert", alert);
                } catch (error) {
                  onProblem(`a fairness alert listener failed: ${(error as Error).message}`);
                }
              },
            })
          : null;
      fairness.set(model, monitor);
    }
    return monitor ?? undefined;
  };
  return {
    of,
    performanceOf,
    fairnessOf,
    fairnessAlerts,
    worstDisparityRatio: (model) => fairnessOf(model)?.worstRatio() ?? null,
    decided(model, row, score, decided) {
      of(model).observe(row, score);
      performanceOf(model)?.observeDecision(score);
      if (decided !== undefined)
        fairnessOf(model)?.observeDecision(decided.decisionId, decided.subject, decided.decision);
    },
    outcome(model, score, outcome, decisionId) {
      performanceOf(model)?.observeOutcome(score, outcome === model.manifest.output.positive_label);
      if (decisionId !== undefined) fairnessOf(model)?.observeOutcome(decisionId, outcome);
    },
    report: (model, window = "count") => reports.report(of(model), model.manifest.modelFeatures, window),
    profileBuilt(model, profile) {
      monitors.get(model)?.setProfile(profile);
    },
    close: () => reports.close(),
  };
}

export function registerMonitoringRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{
    Params: { model: string; version: string };
    Body: { reference?: string; seed?: number } | undefined;
  }>(
    "/v1/admin/models/:model/versions/:version/profile",
    {
      schema: {
        summary: "Build a model version's reference profile",
        description:
          "Profiles the loaded model version on reference rows (a CSV on the server; default the manifest's policy.explanations.reference; a relative path is resolved against the manifest's folder): per feature sketches, moments, missing and out-of-range rates and samples, or category counts; the score distribution; an Isolation Forest anomaly score and its threshold; provenance. Runs in the model's explainer thread and replaces any stored profile.",
        tags: ["monitoring"],
        params: pathParams("model", "version"),
        body: {
          type: "object",
          properties: {
            reference: { type: "string", minLength: 1, maxLength: 4096 },
            seed: { type: "integer", minimum: 0, maximum: 4294967295 },
          },
          additionalProperties: false,
        },
        response: errorResponses,
      },
    },
    async (request, reply) => {
      const model = ctx.registry.get(request.params.model, request.params.version);
      const m = model.manifest;
      const given = request.body?.reference;
      const reference =
        given === undefined ? undefined : isAbsolute(given) ? given : resolve(dirname(m.manifestPath), given);
      const profile = (await model.explainer.run({
        kind: "profile",
        reference,
        seed: request.body?.seed,
      })) as ReferenceProfile;
      const target = profilePath(ctx.config.data_dir, m.name, m.version);
      saveProfile(target, profile);
      ctx.monitors.profileBuilt(model, profile);
      // An admin action: recorded in the ledger with who did it (the identity, else x-warden-actor).
      await ctx.ledger.write({
        id: uuidv7(),
        kind: "access",
        time: new Date().toISOString(),
        model: m.name,
        version: m.version,
        artifact_sha256: m.artifact.sha256,
        body: {
          action: "profile_built",
          actor: actorOf(request),
          outcome: "done",
          profile: {
            reference_sha256: profile.provenance.referenceSha256,
            rows: profile.provenance.rows,
            seed: profile.provenance.seed,
          },
          request_id: request.id,
        },
      });
      return reply.status(201).send({
        model: m.name,
        version: m.version,
        stored: target,
        provenance: profile.provenance,
        anomaly_threshold: profile.anomaly.threshold,
      });
    },
  );

  app.get<{ Params: { model: string; version: string } }>(
    "/v1/models/:model/versions/:version/profile",
    {
      schema: {
        summary: "A model version's reference profile, as stored",
        tags: ["monitoring"],
        params: pathParams("model", "version"),
        response: { 404: errorResponses[404] },
      },
    },
    async (request) => {
      const { model, version } = request.params;
      const path = profilePath(ctx.config.data_dir, model, version);
      let text: string;
      try {
        text = readBoundedFile(path, MAX_PROFILE_BYTES).toString("utf8");
      } catch {
        throw new WardenError(
          "WARDEN_ERR_PROFILE_NOT_FOUND",
          `model ${model} version ${version} has no reference profile in this server's data folder`,
          {
            details: [
              {
                field: "version",
                expected: "a model version that has been profiled",
                found: `${model} ${version}`,
                fix: `POST /v1/admin/models/${model}/versions/${version}/profile, or warden profile build`,
              },
            ],
          },
        );
      }
      // Checked field by field: a damaged file is an error, not a half-read profile.
      return referenceProfileFromJSON(JSON.parse(text));
    },
  );

  const monitor = async (request: {
    params: { model: string; version?: string };
    query: { window?: LiveWindow };
  }) => {
    const model = ctx.registry.get(request.params.model, request.params.version);
    return {
      model: model.manifest.name,
      version: model.manifest.version,
      ...(await ctx.monitors.report(model, request.query.window ?? "count")),
      performance: ctx.monitors.performanceOf(model)?.report() ?? null,
    };
  };
  const monitorSchema = (withVersion: boolean) => ({
    summary: withVersion ? "A model version's live monitor" : "The live monitor of a model's default version",
    description:
      "The last decisions against the version's reference profile — `?window=count` (the default): the latest 500; `?window=time`: those of the last hour, at most 5,000 (`window_capped` says when a busier hour was cut to its latest 5,000) — : per feature the missing and out-of-range rates and a drift test (two-sample KS for numbers against the profile's sample, chi-squared for categories with sparse bins pooled), the score's drift, the share of anomalous rows (the profile's Isolation Forest), and the dataset verdict with how many features drift by chance and the Bonferroni correction. For binary models, `performance`: the label-free estimate (CBPE) over the latest decisions, and the realised figures over the latest recorded outcomes beside the estimate for those decisions, by count (the latest 1,000) and by time (the last 24 hours). Without a profile (POST /v1/admin/models/{m}/versions/{v}/profile or warden profile build), only the rates.",
    tags: ["monitoring"],
    params: withVersion ? pathParams("model", "version") : pathParams("model"),
    querystring: {
      type: "object",
      properties: {
        window: {
          type: "string",
          enum: [...LIVE_WINDOWS],
          description: "count: the latest decisions (default); time: the decisions of the last hour",
        },
      },
      additionalProperties: false,
    },
    response: { 404: errorResponses[404] },
  });
  app.get<{ Params: { model: string }; Querystring: { window?: LiveWindow } }>(
    "/v1/models/:model/monitor",
    { schema: monitorSchema(false) },
    monitor,
  );
  app.get<{ Params: { model: string; version: string }; Querystring: { window?: LiveWindow } }>(
    "/v1/models/:model/versions/:version/monitor",
    { schema: monitorSchema(true) },
    monitor,
  );
  app.get<{ Params: { model: string; version: string }; Querystring: { window?: LiveWindow } }>(
    "/v1/models/:model/versions/:version/monitor/window",
    {
      schema: {
        summary: "A model version's live window as data, for merging replicas (warden monitor merge)",
        description:
          "The decisions of the live monitor's window (`?window=count`, the default, or `time`): the encoded rows (model features in manifest order; categories as their index, booleans 0/1, missing as null) and the policy scores, latest first, with the manifest's sha256 so that only windows of the same version are merged. Windows of several replicas, put together, give one report: `warden monitor merge`.",
        tags: ["monitoring"],
        params: pathParams("model", "version"),
        querystring: monitorSchema(true).querystring,
        response: { 404: errorResponses[404] },
      },
    },
    async (request) => {
      const model = ctx.registry.get(request.params.model, request.params.version);
      const m = model.manifest;
      return windowExport(m, ctx.monitors.of(model).snapshot(request.query.window ?? "count"));
    },
  );
  registerFairnessRoutes(app, ctx);
}

/** A window as `GET .../monitor/window` returns it (JSON: NaN as null). */
export function windowExport(m: Manifest, snapshot: WindowSnapshot) {
  const width = m.modelFeatures.length;
  const rows: (number | null)[][] = [];
  for (let i = 0; i < snapshot.n; i++) {
    const row: (number | null)[] = [];
    for (let j = 0; j < width; j++) {
      const v = snapshot.rows[i * width + j]!;
      row.push(Number.isNaN(v) ? null : v);
    }
    rows.push(row);
  }
  return {
    model: m.name,
    version: m.version,
    manifest_sha256: m.manifestSha256,
    features: m.modelFeatures.map((f) => f.name),
    observed: snapshot.observed,
    alpha: snapshot.alpha,
    window: snapshot.window,
    rows,
    scores: Array.from(snapshot.scores),
  };
}

/**
 * Monitor gauges on `registry`, computed when Prometheus scrapes (a report per loaded version): drift p-value
 * and statistic per feature, missing rate per feature, anomaly rate, the dataset verdict (1 drifted), and the
 * live performance figures of binary models.
 */
export function registerMonitorMetrics(
  registry: Registry,
  models: () => readonly LoadedModel[],
  monitors: LiveMonitors,
): Gauge[] {
  // One fill per scrape sets every gauge (the reports are computed in the report thread).
  const gauge = scrapedGauges(fill);
  const labels = ["model", "version", "feature"] as const;
  const pValue = gauge(
    "warden_monitor_drift_p_value",
    "p-value of the feature's drift test (KS or chi-squared) over the live window against the reference profile",
    labels,
  );
  const statistic = gauge(
    "warden_monitor_drift_statistic",
    "statistic of the feature's drift test (KS D or chi-squared) over the live window",
    labels,
  );
  const missing = gauge(
    "warden_monitor_missing_rate",
    "share of the live window's decisions without a value for the feature",
    labels,
  );
  const anomaly = gauge(
    "warden_monitor_anomaly_rate",
    "share of the live window's rows the reference profile's Isolation Forest finds anomalous",
    ["model", "version"] as const,
  );
  const dataset = gauge(
    "warden_monitor_dataset_drift",
    "1 when the live window's dataset verdict is drift (share of drifted features or Bonferroni), else 0",
    ["model", "version"] as const,
  );
  const performance = gauge(
    "warden_monitor_performance",
    "binary models: accuracy, precision, recall, roc_auc (and brier, ece when realised) of the live performance windows; basis realised (recorded outcomes), estimated (CBPE over the decisions) or estimated_on_labelled (CBPE over the decisions whose outcome is recorded)",
    ["model", "version", "window", "basis", "figure"] as const,
  );
  async function fill(): Promise<void> {
    const loaded = models();
    const reports = await Promise.all(loaded.map((model) => monitors.report(model)));
    for (const g of [pValue, statistic, missing, anomaly, dataset, performance]) g.reset();
    loaded.forEach((model, i) => {
      const { name: m, version: v } = model.manifest;
      const report = reports[i]!;
      for (const f of report.features) {
        missing.set({ model: m, version: v, feature: f.name }, f.missing_rate);
        if (f.drift === undefined) continue;
        pValue.set({ model: m, version: v, feature: f.name }, f.drift.p_value);
        statistic.set({ model: m, version: v, feature: f.name }, f.drift.statistic);
      }
      if (report.anomaly_rate !== null) anomaly.set({ model: m, version: v }, report.anomaly_rate);
      if (report.dataset !== null) dataset.set({ model: m, version: v }, report.dataset.drifted ? 1 : 0);
      const live = monitors.performanceOf(model)?.report();
      if (live === undefined) return;
      for (const [window, figures] of [
        ["count", live.by_count],
        ["time", live.by_time],
      ] as const) {
        for (const basis of ["realised", "estimated", "estimated_on_labelled"] as const) {
          for (const [figure, value] of Object.entries(figures[basis] ?? {})) {
            if (typeof value === "number" && figure !== "roc_auc_error_bound")
              performance.set({ model: m, version: v, window, basis, figure }, value);
          }
        }
      }
    });
  }
  const gauges = [pValue, statistic, missing, anomaly, dataset, performance];
  for (const gauge of gauges) registry.registerMetric(gauge);
  return [...gauges, ...registerFairnessMetrics(registry, models, monitors)];
}
