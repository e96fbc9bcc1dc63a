/**
 * The live fairness monitor over HTTP (`GET /v1/models/{m}/fairness`) and as Prometheus gauges. The monitors
 * themselves live with the other live monitors (routes-monitoring.ts), fed by every decision and outcome.
 */
import type { FastifyInstance } from "fastify";
import type { Gauge, Registry } from "prom-client";
import { WardenError } from "../errors/index.js";
import type { LoadedModel } from "../registry/index.js";
import type { RouteContext } from "./app.js";
import { scrapedGauges } from "./metrics.js";
import { errorResponses, pathParams } from "./routes-decisions.js";
import type { LiveMonitors } from "./routes-monitoring.js";

export function registerFairnessRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const handler = async (request: { params: { model: string; version?: string } }) => {
    const model = ctx.registry.get(request.params.model, request.params.version);
    const m = model.manifest;
    const monitor = ctx.monitors.fairnessOf(model);
    if (monitor === undefined) {
      throw new WardenError(
        "WARDEN_ERR_FAIRNESS_UNAVAILABLE",
        `model ${m.name} ${m.version} has no live fairness monitor${m.task !== "binary" ? ` (a ${m.task} model)` : " (no sensitive attribute to group)"}`,
        {
          details: [
            {
              field: "version",
              expected: "a binary model version with sensitive attributes the fairness policy can group",
              found: `${m.name} ${m.version}: task ${m.task}, attributes ${m.fairness.attributes.map((a) => a.name).join(", ") || "none"}`,
              ...(m.fairness.unbucketed.length > 0
                ? { fix: `give ${m.fairness.unbucketed.join(", ")} buckets in policy.fairness.attributes` }
                : {}),
            },
          ],
        },
      );
    }
    return {
      model: m.name,
      version: m.version,
      attributes: m.fairness.attributes.map((a) => ({
        name: a.name,
        groups: [...a.levels, "(missing)"],
        ...(a.buckets !== undefined ? { buckets: a.buckets } : {}),
        ...(a.reference !== undefined ? { reference: a.reference } : {}),
      })),
      reference_rule: m.fairness.reference,
      ...monitor.report(),
    };
  };
  const schema = (withVersion: boolean) => ({
    summary: withVersion
      ? "A model version's live fairness monitor"
      : "The live fairness monitor of a model's default version",
    description:
      "Per sensitive attribute of policy.fairness (subjects put into its groups when the decision is made; values never kept): each group's selection rate (decisions of the favourable label) over the latest decisions (`by_count`, policy.fairness.live.window, default 1,000) and those of the last hours (`by_time`, default 24), and, from the outcomes recorded for recent decisions, TPR and FPR; between-groups ratios and differences over the groups with at least min_group_size decisions (outcomes), and a verdict per criterion against the policy's thresholds. `outcomes` says how many outcomes joined their decision and how many came for decisions no longer remembered. `firing`: the alerts of criteria failing now.",
    tags: ["monitoring"],
    params: withVersion ? pathParams("model", "version") : pathParams("model"),
    // No parameters: a misspelt one is an error, not ignored.
    querystring: { type: "object", properties: {}, additionalProperties: false },
    response: {
      404: errorResponses[404],
      409: {
        ...errorResponses[404],
        description:
          "Not a binary model, or no sensitive attribute to group (WARDEN_ERR_FAIRNESS_UNAVAILABLE)",
      },
    },
  });
  app.get<{ Params: { model: string } }>("/v1/models/:model/fairness", { schema: schema(false) }, handler);
  app.get<{ Params: { model: string; version: string } }>(
    "/v1/models/:model/versions/:version/fairness",
    { schema: schema(true) },
    handler,
  );
}

/**
 * Fairness gauges, set when Prometheus scrapes from the live fairness monitors of the loaded versions:
 * selection rate per group, between-groups ratio and difference per metric, a verdict per criterion, and the
 * worst selection-rate ratio per version (all over the count window; the rates also over the time window).
 */
export function registerFairnessMetrics(
  registry: Registry,
  models: () => readonly LoadedModel[],
  monitors: LiveMonitors,
): Gauge[] {
  // One fill per scrape sets every gauge (the reports are computed in the report thread).
  const gauge = scrapedGauges(fill);
  const selection = gauge(
    "warden_fairness_selection_rate",
    "share of the group's decisions that are the favourable label, over the window (count: the latest decisions; time: the last hours)",
    ["model", "version", "attribute", "group", "window"] as const,
  );
  const ratio = gauge(
    "warden_fairness_disparity_ratio",
    "lowest over highest value of the metric (selection_rate, tpr, fpr) between the groups with min_group_size observations, over the window",
    ["model", "version", "attribute", "metric", "window"] as const,
  );
  const difference = gauge(
    "warden_fairness_disparity_difference",
    "highest minus lowest value of the metric (selection_rate, tpr, fpr) between the groups with min_group_size observations, over the window",
    ["model", "version", "attribute", "metric", "window"] as const,
  );
  const verdict = gauge(
    "warden_fairness_verdict",
    "1 when the criterion (demographic_parity, equal_opportunity, equalized_odds) passes the policy's threshold over the latest decisions, 0 when it fails; absent while there is too little data",
    ["model", "version", "attribute", "criterion"] as const,
  );
  const worst = gauge(
    "warden_fairness_worst_selection_rate_ratio",
    "the lowest selection-rate ratio between groups over the version's monitored attributes (latest decisions)",
    ["model", "version"] as const,
  );
  const all = [selection, ratio, difference, verdict, worst];
  async function fill(): Promise<void> {
    for (const g of all) g.reset();
    for (const model of models()) {
      const monitor = monitors.fairnessOf(model);
      if (monitor === undefined) continue;
      const { name: m, version: v } = model.manifest;
      const report = monitor.report();
      for (const [window, part] of [
        ["count", report.by_count],
        ["time", report.by_time],
      ] as const) {
        for (const a of part.attributes) {
          for (const g of a.groups) {
            if (g.selection_rate !== null)
              selection.set(
                { model: m, version: v, attribute: a.attribute, group: g.group, window },
                g.selection_rate,
              );
          }
          for (const metric of ["selection_rate", "tpr", "fpr"] as const) {
            const labels = { model: m, version: v, attribute: a.attribute, metric, window };
            if (a[metric].ratio !== null) ratio.set(labels, a[metric].ratio!);
            if (a[metric].difference !== null) difference.set(labels, a[metric].difference!);
          }
          if (window !== "count") continue;
          for (const c of a.criteria) {
            if (c.verdict === "insufficient") continue;
            verdict.set(
              { model: m, version: v, attribute: a.attribute, criterion: c.criterion },
              c.verdict === "pass" ? 1 : 0,
            );
          }
        }
      }
      if (report.worst_selection_rate_ratio !== null)
        worst.set({ model: m, version: v }, report.worst_selection_rate_ratio);
    }
  }
  for (const g of all) registry.registerMetric(g);
  return all;
}
