/**
 * The extraction defences in the server (security/extraction.ts): a caller's query budget checked before a
 * request reaches the pipeline (429 past it), its decided rows watched for probing, and both alert episodes
 * sent to the alert sink.
 */
import type { FastifyRequest } from "fastify";
import type { ServerConfig } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import type { LoadedModel } from "../registry/index.js";
import { createExtractionDefences, type FeatureScale } from "../security/index.js";
import type { AlertSink } from "./alert-sink.js";

/** Who asks: the authenticated identity, else the client address. */
export function callerOf(request: FastifyRequest): string {
  return request.wardenIdentity?.id ?? `ip:${request.ip}`;
}

export interface ExtractionGuard {
  /** @throws WardenError WARDEN_ERR_QUERY_BUDGET (429, Retry-After) when `n` instances would pass the budget. */
  admit(caller: string, model: string, n: number): void;
  observe(caller: string, model: LoadedModel, row: ArrayLike<number>): void;
  state(caller: string, model: string): { used: number; limit: number; nearShare: number; rows: number };
}

export function createExtractionGuard(
  config: ServerConfig["extraction"],
  alerts: AlertSink,
  options: { now?: () => number; onRefused?: (model: string) => void } = {},
): ExtractionGuard {
  const scales = new WeakMap<LoadedModel, FeatureScale[]>();
  const defences = createExtractionDefences(
    {
      perDay: config.daily_budget,
      alertShare: config.budget_alert_share,
      maxCallers: config.max_callers,
      probing: {
        enabled: config.probing.enabled,
        window: config.probing.window,
        share: config.probing.share,
        minObservations: config.probing.min_observations,
        tolerance: config.probing.tolerance,
      },
      ...(options.now ? { now: options.now } : {}),
    },
    (alert) =>
      alerts.emit({
        name: alert.kind === "budget" ? "WardenQueryBudget" : "WardenSystematicProbing",
        severity: "warning",
        labels: { caller: alert.caller, model: alert.model },
        annotations:
          alert.kind === "budget"
            ? {
                summary: `${alert.caller} has used ${Math.round(alert.value * 100)} % of its daily query budget on ${alert.model}`,
                description: `extraction.daily_budget is ${config.daily_budget} instances per 24 hours; unusual volume can be model extraction`,
              }
            : {
                summary: `${alert.caller} is probing ${alert.model}: ${Math.round(alert.value * 100)} % of its latest inputs differ from an earlier one in at most one feature`,
                description:
                  "systematic one-feature sweeps map a model's decision boundary (extraction, membership inference)",
              },
        startsAt: alert.startsAt,
        ...(alert.status === "resolved"
          ? { status: "resolved" as const, endsAt: new Date().toISOString() }
          : {}),
      }),
  );
  return {
    admit(caller, model, n) {
      const verdict = defences.admit(caller, model, n);
      if (verdict.allowed) return;
      options.onRefused?.(model);
      throw new WardenError(
        "WARDEN_ERR_QUERY_BUDGET",
        `the daily query budget of ${model} for this caller is spent (${verdict.used} of ${verdict.limit} instances in 24 hours); retry in ${verdict.retryAfterSeconds} s`,
        {
          retryAfterSeconds: verdict.retryAfterSeconds,
          details: [
            {
              field: "instances",
              expected: `at most ${verdict.limit - verdict.used} more instances in the next hour`,
              found: `${n}`,
              fix: "wait for the budget to refill, or ask an admin for a larger extraction.daily_budget",
            },
          ],
        },
      );
    },
    observe(caller, model, row) {
      let s = scales.get(model);
      if (s === undefined) {
        s = model.manifest.modelFeatures.map((f) => ({
          range: f.min !== undefined && f.max !== undefined ? f.max - f.min : undefined,
        }));
        scales.set(model, s);
      }
      defences.observe(caller, model.manifest.name, row, s);
    },
    state: (caller, model) => defences.state(caller, model),
  };
}
