/**
 * Monitoring over HTTP. Reference profiles: built by a model's explainer thread from reference rows (the
 * model's engine scores them there, off the serving thread), stored where `warden profile build` stores them
 * (`<data_dir>/profiles/<model>/<version>.json`), and read back. Live monitors: one per loaded model version,
 * fed by every decision it makes, compared with its profile when asked (`GET /v1/models/{m}/monitor`).
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { Gauge, type Registry } from "prom-client";
import { WardenError } from "../errors/index.js";
import {
  createLiveMonitor,
  LIVE_WINDOWS,
  type LiveMonitor,
  type LiveWindow,
  profilePath,
  type ReferenceProfile,
  referenceProfileFromJSON,
  saveProfile,
} from "../monitor/index.js";
import type { LoadedModel } from "../registry/index.js";
import type { RouteContext } from "./app.js";
import { errorResponses, pathParams } from "./routes-decisions.js";

/** The live monitors of a server's loaded model versions, made on first use. */
export interface LiveMonitors {
  of(model: LoadedModel): LiveMonitor;
  /** A profile was built for this version: monitor against it from now on. */
  profileBuilt(model: LoadedModel, profile: ReferenceProfile): void;
}

/**
 * Live monitors reading profiles from `dataDir`. A stored profile that cannot be read is reported through
 * `onProblem` and the monitor runs without one (rates, no drift), rather than refusing decisions.
 */
export function createLiveMonitors(dataDir: string, onProblem: (message: string) => void): LiveMonitors {
  const monitors = new WeakMap<LoadedModel, LiveMonitor>();
  const storedProfile = (model: LoadedModel): ReferenceProfile | null => {
    const m = model.manifest;
    const path = profilePath(dataDir, m.name, m.version);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
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
  return {
    of(model) {
      let monitor = monitors.get(model);
      if (monitor === undefined) {
        monitor = createLiveMonitor(model.manifest.modelFeatures, { profile: storedProfile(model) });
        monitors.set(model, monitor);
      }
      return monitor;
    },
    profileBuilt(model, profile) {
      monitors.get(model)?.setProfile(profile);
    },
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
        text = readFileSync(path, "utf8");
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
      ...ctx.monitors.of(model).report(request.query.window ?? "count"),
    };
  };
  const monitorSchema = (withVersion: boolean) => ({
    summary: withVersion ? "A model version's live monitor" : "The live monitor of a model's default version",
    description:
      "The last decisions against the version's reference profile — `?window=count` (the default): the latest 500; `?window=time`: those of the last hour, at most 5,000 (`window_capped` says when a busier hour was cut to its latest 5,000) — : per feature the missing and out-of-range rates and a drift test (two-sample KS for numbers against the profile's sample, chi-squared for categories with sparse bins pooled), the score's drift, the share of anomalous rows (the profile's Isolation Forest), and the dataset verdict with how many features drift by chance and the Bonferroni correction. Without a profile (POST /v1/admin/models/{m}/versions/{v}/profile or warden profile build), only the rates.",
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
}

/**
 * Monitor gauges on `registry`, computed when Prometheus scrapes (a report per loaded version): drift p-value
 * and statistic per feature, missing rate per feature, anomaly rate, and the dataset verdict (1 drifted).
 */
export function registerMonitorMetrics(
  registry: Registry,
  models: () => readonly LoadedModel[],
  monitors: LiveMonitors,
): Gauge[] {
  const labels = ["model", "version", "feature"] as const;
  const statistic = new Gauge({
    name: "warden_monitor_drift_statistic",
    // Registered below, on this server's registry only (never the global one).
    registers: [],
    help: "statistic of the feature's drift test (KS D or chi-squared) over the live window",
    labelNames: labels,
  });
  const missing = new Gauge({
    name: "warden_monitor_missing_rate",
    // Registered below, on this server's registry only (never the global one).
    registers: [],
    help: "share of the live window's decisions without a value for the feature",
    labelNames: labels,
  });
  const anomaly = new Gauge({
    name: "warden_monitor_anomaly_rate",
    // Registered below, on this server's registry only (never the global one).
    registers: [],
    help: "share of the live window's rows the reference profile's Isolation Forest finds anomalous",
    labelNames: ["model", "version"] as const,
  });
  const dataset = new Gauge({
    name: "warden_monitor_dataset_drift",
    // Registered below, on this server's registry only (never the global one).
    registers: [],
    help: "1 when the live window's dataset verdict is drift (share of drifted features or Bonferroni), else 0",
    labelNames: ["model", "version"] as const,
  });
  // The registry serialises metrics in the order they were registered: the first one's collect() fills all
  // of them from one report per version, before any is written.
  const pValue = new Gauge({
    name: "warden_monitor_drift_p_value",
    // Registered below, on this server's registry only (never the global one).
    registers: [],
    help: "p-value of the feature's drift test (KS or chi-squared) over the live window against the reference profile",
    labelNames: labels,
    collect() {
      for (const gauge of [this, statistic, missing, anomaly, dataset]) gauge.reset();
      for (const model of models()) {
        const { name: m, version: v } = model.manifest;
        const report = monitors.of(model).report();
        for (const f of report.features) {
          missing.set({ model: m, version: v, feature: f.name }, f.missing_rate);
          if (f.drift === undefined) continue;
          this.set({ model: m, version: v, feature: f.name }, f.drift.p_value);
          statistic.set({ model: m, version: v, feature: f.name }, f.drift.statistic);
        }
        if (report.anomaly_rate !== null) anomaly.set({ model: m, version: v }, report.anomaly_rate);
        if (report.dataset !== null) dataset.set({ model: m, version: v }, report.dataset.drifted ? 1 : 0);
      }
    },
  });
  for (const gauge of [pValue, statistic, missing, anomaly, dataset]) registry.registerMetric(gauge);
  return [pValue, statistic, missing, anomaly, dataset];
}
