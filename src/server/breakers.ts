import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
/**
 * The circuit breakers of a server's deployments, one per model version (monitor/breaker.ts holds the state
 * machine; this wires it). Signals come from real traffic: each recorded decision's confidence (the
 * probability of the class decided) and whether the profile's Isolation Forest finds its input anomalous;
 * each row the model failed to answer (the batcher's inference failures, timeouts, no live instance); and,
 * every {@link DRIFT_CHECK_EVERY} decisions, the live monitor's drifted share of features. The same check
 * raises the drift and anomaly alerts. Every transition is a `breaker` ledger record, a log line and (on the
 * way open, and back to closed) an alert. A version without `policy.breaker` still has a breaker with no
 * rules, so that an operator can stop any model (EU AI Act Art. 14(4)(e)).
 */
import type { FastifyBaseLogger } from "fastify";
import { v7 as uuidv7 } from "uuid";
import type { BreakerGate, BreakerVerdict, LedgerSink } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import {
  type BreakerEvent,
  type BreakerOptions,
  type BreakerSnapshot,
  breakerAlert,
  type CircuitBreaker,
  createCircuitBreaker,
  driftSignal,
  monitorAlerts,
} from "../monitor/index.js";
import type { LoadedModel, ModelRegistry } from "../registry/index.js";
import type { AlertSink } from "./alert-sink.js";
import type { LiveMonitors } from "./routes-monitoring.js";

/** Decisions of a version between two looks at its live monitor's drift verdict and anomaly rate. */
export const DRIFT_CHECK_EVERY = 50;
/** And at most one look a second per version: the report (in the report thread) is the costly part. */
export const DRIFT_CHECK_MIN_INTERVAL_MS = 1000;

/** The breaker of a version whose manifest configures none: no rules, only an operator's stop and resume. */
const MANUAL_ONLY: BreakerOptions = Object.freeze({
  rules: [],
  window: 10,
  coolDownS: 0,
  probeFraction: 1,
  probeSelection: "sequence",
  probesToClose: 1,
  fallback: Object.freeze({ action: "refuse" }),
});

/** A version's breaker as `GET /v1/models/{m}/versions/{v}/breaker` shows it. */
export interface BreakerView {
  readonly model: string;
  readonly version: string;
  /** Whether the manifest configures rules (`policy.breaker`); without, only an operator opens it. */
  readonly configured: boolean;
  readonly state: BreakerSnapshot["state"];
  readonly stopped_by: { readonly actor: string; readonly reason: string; readonly at: string } | null;
  readonly opened_at: string | null;
  /** The last transition's cause (a rule, cool_down, probes_healthy, manual_stop, manual_resume). */
  readonly last_transition: {
    readonly from: string;
    readonly to: string;
    readonly rule: string;
    readonly at: string;
  } | null;
  readonly probe_observations: number;
  readonly signals: Record<string, { readonly value: number | null; readonly observations: number }>;
  readonly policy: {
    readonly rules: readonly { signal: string; trip: number; reset: number; min_observations: number }[];
    readonly window: number;
    readonly cool_down_s: number;
    readonly probe_fraction: number;
    readonly probe_selection: string;
    readonly probes_to_close: number;
    readonly fallback: { readonly action: string; readonly version?: string };
  } | null;
}

export interface Breakers extends BreakerGate {
  /** The version's breaker state (applies the cool-down first). */
  view(model: LoadedModel): BreakerView;
  /** An operator opens the breaker and holds it open; resolves once the transition is journaled. */
  stop(model: LoadedModel, actor: string, reason: string): Promise<BreakerView>;
  /** An operator lets a stopped breaker go: to `half_open` (probes; the default with rules) or `closed`. */
  resume(
    model: LoadedModel,
    actor: string,
    reason: string,
    to: "closed" | "half_open" | undefined,
  ): Promise<BreakerView>;
  /** Every version's state, for the metrics (applies cool-downs). */
  states(models: readonly LoadedModel[]): { model: string; version: string; state: string }[];
  /** Resolves once every transition recorded so far is journaled and every drift check started has ended. */
  settled(): Promise<void>;
}

interface Held {
  readonly breaker: CircuitBreaker;
  readonly options: BreakerOptions;
  readonly configured: boolean;
  last: BreakerEvent | undefined;
  /** Decisions since the last look at the monitor, when that was, and whether one is running. */
  sinceCheck: number;
  lastCheck: number;
  checking: boolean;
  /** Whether a rule reads `anomaly_rate`: only then is each served row scored by the Isolation Forest. */
  readonly scoresAnomalies: boolean;
}

export function createBreakers(deps: {
  readonly registry: ModelRegistry;
  readonly ledger: LedgerSink;
  readonly monitors: LiveMonitors;
  readonly alerts: AlertSink;
  readonly now: () => number;
  readonly anomalyRate: number;
  readonly logger?: FastifyBaseLogger | undefined;
  /**
   * Where operators' stops are kept across restarts (`<data_dir>/breaker-stops.json`); absent: in memory
   * only. A stopped version stays stopped when the server starts again, until an operator resumes it.
   */
  readonly stopsFile?: string | undefined;
}): Breakers {
  const held = new Map<string, Held>();
  const stops = readStops(deps.stopsFile, deps.logger);
  const writes = new Set<Promise<unknown>>();
  const keyOf = (m: LoadedModel) => `${m.manifest.name}\u0000${m.manifest.version}`;

  const of = (model: LoadedModel): Held => {
    const key = keyOf(model);
    let h = held.get(key);
    if (h === undefined) {
      const options = model.manifest.breaker ?? MANUAL_ONLY;
      h = {
        breaker: createCircuitBreaker(options),
        options,
        configured: model.manifest.breaker !== undefined,
        last: undefined,
        sinceCheck: 0,
        lastCheck: Number.NEGATIVE_INFINITY,
        checking: false,
        scoresAnomalies: options.rules.some((r) => r.signal === "anomaly_rate"),
      };
      held.set(key, h);
      // An operator's stop outlives the process that took it: applied again (and recorded again) at once.
      const stop = stops.get(key);
      if (stop !== undefined) {
        handle(
          model,
          h,
          h.breaker.stop(
            stop.actor,
            `${stop.reason} (stopped on ${stop.at}; kept across a restart)`,
            deps.now(),
          ),
        );
      }
    }
    return h;
  };
  const saveStop = (model: LoadedModel, stop: StopRecord | undefined) => {
    const key = keyOf(model);
    if (stop === undefined) stops.delete(key);
    else stops.set(key, stop);
    writeStops(deps.stopsFile, stops);
  };

  const fallbackText = (o: BreakerOptions) =>
    o.fallback.action === "fallback_version" ? `version ${o.fallback.version}` : o.fallback.action;

  /** Ledger record, log line, alert: for each transition. */
  const handle = (model: LoadedModel, h: Held, events: readonly BreakerEvent[]): Promise<unknown>[] => {
    const m = model.manifest;
    return events.map((e) => {
      h.last = e;
      const values: Record<string, { observations: number; value: number | null }> = {};
      for (const [signal, r] of Object.entries(e.values)) {
        values[signal] = { observations: r!.observations, value: r!.value ?? null };
      }
      const body: Record<string, unknown> = {
        ...(e.actor !== undefined ? { actor: e.actor } : {}),
        fallback: { ...h.options.fallback },
        from: e.from,
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
        rule: e.rule,
        ...(e.threshold !== undefined ? { threshold: e.threshold } : {}),
        to: e.to,
        values,
      };
      const line = { model: m.name, version: m.version, from: e.from, to: e.to, rule: e.rule, values };
      if (e.to === "open") deps.logger?.warn(line, "circuit breaker opened");
      else deps.logger?.info(line, `circuit breaker ${e.to === "closed" ? "closed" : "half-open"}`);
      const alert = breakerAlert(m.name, m.version, e, fallbackText(h.options));
      deps.alerts.set(alert.event, alert.active);
      const write = deps.ledger
        .write({
          id: uuidv7(),
          kind: "breaker",
          time: new Date(e.at).toISOString(),
          model: m.name,
          version: m.version,
          artifact_sha256: m.artifact.sha256,
          body,
        })
        .catch((error: unknown) => {
          deps.logger?.error({ err: error, ...line }, "a circuit breaker transition could not be recorded");
        });
      writes.add(write);
      void write.finally(() => writes.delete(write));
      return write;
    });
  };

  const retryAfter = (h: Held, now: number): number => {
    const s = h.breaker.snapshot();
    if (s.state === "half_open") return 1;
    if (s.stoppedBy !== undefined || s.openedAt === undefined)
      return Math.max(1, Math.ceil(h.options.coolDownS));
    return Math.max(1, Math.ceil((s.openedAt + h.options.coolDownS * 1000 - now) / 1000));
  };

  const openError = (model: LoadedModel, h: Held, why: string, seconds: number) => {
    const m = model.manifest;
    const s = h.breaker.snapshot();
    const rule =
      h.last?.to === "open" ? h.last.rule : s.stoppedBy ? "manual_stop" : (h.last?.rule ?? "unknown");
    return new WardenError(
      "WARDEN_ERR_BREAKER_OPEN",
      `the circuit breaker of model ${m.name} ${m.version} is ${s.state.replace("_", "-")} (${rule}): ${why}`,
      {
        retryAfterSeconds: seconds,
        details: [
          {
            field: "version",
            expected: "a model version whose circuit breaker is closed",
            found: `${m.name} ${m.version}: ${s.state} (${rule})`,
            fix:
              s.stoppedBy !== undefined
                ? `stopped by ${s.stoppedBy.actor}; an operator resumes it with POST /v1/admin/models/${m.name}/versions/${m.version}/breaker/resume`
                : `retry after ${seconds} s; GET /v1/models/${m.name}/versions/${m.version}/breaker shows its state`,
          },
        ],
      },
    );
  };

  const note = (model: LoadedModel, h: Held) => {
    const s = h.breaker.snapshot();
    const rule =
      s.stoppedBy !== undefined
        ? "manual_stop"
        : h.last?.to === "open"
          ? h.last.rule
          : (h.last?.rule ?? "unknown");
    return {
      version: model.manifest.version,
      state: s.state === "half_open" ? ("half_open" as const) : ("open" as const),
      rule,
    };
  };

  const view = (model: LoadedModel, h: Held): BreakerView => {
    handle(model, h, h.breaker.tick(deps.now()));
    const s = h.breaker.snapshot();
    const o = h.options;
    const signals: BreakerView["signals"] = {};
    for (const [signal, r] of Object.entries(s.values)) {
      signals[signal] = { value: r!.value ?? null, observations: r!.observations };
    }
    return {
      model: model.manifest.name,
      version: model.manifest.version,
      configured: h.configured,
      state: s.state,
      stopped_by:
        s.stoppedBy === undefined
          ? null
          : {
              actor: s.stoppedBy.actor,
              reason: s.stoppedBy.reason,
              at: new Date(s.stoppedBy.at).toISOString(),
            },
      opened_at: s.openedAt === undefined ? null : new Date(s.openedAt).toISOString(),
      last_transition:
        h.last === undefined
          ? null
          : { from: h.last.from, to: h.last.to, rule: h.last.rule, at: new Date(h.last.at).toISOString() },
      probe_observations: s.probeObservations,
      signals,
      policy: h.configured
        ? {
            rules: o.rules.map((r) => ({
              signal: r.signal,
              trip: r.trip,
              reset: r.reset,
              min_observations: r.minObservations,
            })),
            window: o.window,
            cool_down_s: o.coolDownS,
            probe_fraction: o.probeFraction,
            probe_selection: o.probeSelection,
            probes_to_close: o.probesToClose,
            fallback: { ...o.fallback },
          }
        : null,
    };
  };

  return {
    admit(model, key): BreakerVerdict {
      const h = of(model);
      const now = deps.now();
      const { route, events } = h.breaker.route(key, now);
      handle(model, h, events);
      if (route.action === "serve") return { action: "serve", probe: false };
      if (route.action === "probe") return { action: "serve", probe: true };
      const seconds = retryAfter(h, now);
      const fallback = route.fallback;
      if (fallback.action === "human_review") {
        return { action: "human_review", breaker: note(model, h), retryAfterSeconds: seconds };
      }
      if (fallback.action === "fallback_version") {
        const version = fallback.version!;
        let other: LoadedModel;
        try {
          other = deps.registry.get(model.manifest.name, version);
        } catch {
          return {
            action: "refuse",
            error: openError(model, h, `its fallback version ${version} is not loaded`, seconds),
          };
        }
        return { action: "fallback_version", model: other, breaker: note(model, h) };
      }
      return { action: "refuse", error: openError(model, h, "its fallback is to refuse", seconds) };
    },

    served(model, row, outcome) {
      const h = of(model);
      const now = deps.now();
      const confidence =
        outcome.decision !== null && outcome.probabilities !== undefined
          ? outcome.probabilities[outcome.decision]
          : undefined;
      const anomalous = h.scoresAnomalies ? deps.monitors.of(model).isAnomalous(row) : undefined;
      handle(model, h, h.breaker.observe({ confidence, anomalous, failed: false }, now));
      h.sinceCheck += 1;
      if (h.sinceCheck < DRIFT_CHECK_EVERY || h.checking || now - h.lastCheck < DRIFT_CHECK_MIN_INTERVAL_MS)
        return;
      h.sinceCheck = 0;
      h.lastCheck = now;
      h.checking = true;
      // The monitor's verdict, computed in the report thread: the breaker's drift signal, and the drift and
      // anomaly alerts. Never awaited by the request.
      const m = model.manifest;
      const check = deps.monitors
        .report(model)
        .then((report) => {
          const at = deps.now();
          const drift = driftSignal(report);
          if (drift !== undefined)
            handle(model, h, h.breaker.reportDrift(drift.share, drift.observations, at));
          // The live fairness monitor's worst selection-rate ratio between groups, for a `fairness` rule.
          const ratio = deps.monitors.worstDisparityRatio(model);
          const fairness = deps.monitors.fairnessOf(model);
          if (ratio !== null && fairness !== undefined)
            handle(model, h, h.breaker.reportFairness(ratio, fairness.decisions(), at));
          for (const a of monitorAlerts(m.name, m.version, report, {
            anomalyRate: deps.anomalyRate,
            now: at,
          })) {
            deps.alerts.set(a.event, a.active);
          }
        })
        .catch((error: unknown) =>
          deps.logger?.error({ err: error, model: m.name, version: m.version }, "breaker drift check failed"),
        )
        .finally(() => {
          h.checking = false;
          writes.delete(check);
        });
      writes.add(check);
    },

    failed(model, rows) {
      const h = of(model);
      const now = deps.now();
      for (let i = 0; i < rows; i++) handle(model, h, h.breaker.observe({ failed: true }, now));
    },

    view: (model) => view(model, of(model)),

    async stop(model, actor, reason) {
      const h = of(model);
      const s = h.breaker.snapshot();
      if (s.stoppedBy !== undefined) {
        throw new WardenError(
          "WARDEN_ERR_CONFLICT",
          `model ${model.manifest.name} ${model.manifest.version} is already stopped (by ${s.stoppedBy.actor})`,
          {
            details: [
              {
                field: "version",
                expected: "a model version not stopped by an operator",
                found: `stopped by ${s.stoppedBy.actor}: ${s.stoppedBy.reason}`,
                fix: "resume it first (POST .../breaker/resume), or leave it stopped",
              },
            ],
          },
        );
      }
      const at = new Date(deps.now()).toISOString();
      saveStop(model, { model: model.manifest.name, version: model.manifest.version, actor, reason, at });
      await Promise.all(handle(model, h, h.breaker.stop(actor, reason, deps.now())));
      return view(model, h);
    },

    async resume(model, actor, reason, to) {
      const h = of(model);
      if (h.breaker.snapshot().stoppedBy === undefined) {
        throw new WardenError(
          "WARDEN_ERR_CONFLICT",
          `model ${model.manifest.name} ${model.manifest.version} is not stopped by an operator`,
          {
            details: [
              {
                field: "version",
                expected: "a model version an operator stopped",
                found: `circuit breaker ${h.breaker.snapshot().state}, not stopped`,
                fix: "only a stopped version can be resumed; an open breaker closes through its probes",
              },
            ],
          },
        );
      }
      // With no rules there is nothing for probes to judge: straight back to closed.
      const target = to ?? (h.configured && h.options.rules.length > 0 ? "half_open" : "closed");
      saveStop(model, undefined);
      await Promise.all(handle(model, h, h.breaker.resume(actor, reason, deps.now(), { to: target })));
      return view(model, h);
    },

    states(models) {
      return models.map((model) => {
        const h = of(model);
        handle(model, h, h.breaker.tick(deps.now()));
        return {
          model: model.manifest.name,
          version: model.manifest.version,
          state: h.breaker.snapshot().state,
        };
      });
    },

    async settled() {
      while (writes.size > 0) await Promise.all([...writes]);
    },
  };
}

/** An operator's stop as kept across restarts. */
interface StopRecord {
  readonly model: string;
  readonly version: string;
  readonly actor: string;
  readonly reason: string;
  /** ISO-8601. */
  readonly at: string;
}

/** The stops kept in `file` (none when it is absent); a damaged file is logged and ignored, never half-read. */
function readStops(file: string | undefined, logger: FastifyBaseLogger | undefined): Map<string, StopRecord> {
  const stops = new Map<string, StopRecord>();
  if (file === undefined) return stops;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return stops;
  }
  try {
    const list = JSON.parse(text) as unknown;
    if (!Array.isArray(list)) throw new Error("not a list");
    for (const item of list) {
      const r = item as Partial<StopRecord>;
      if ([r.model, r.version, r.actor, r.reason, r.at].some((v) => typeof v !== "string"))
        throw new Error("an entry lacks model, version, actor, reason or at");
      stops.set(`${r.model}\u0000${r.version}`, r as StopRecord);
    }
  } catch (error) {
    logger?.error(
      { err: error, file },
      "the operators' breaker stops cannot be read: no version starts stopped (the ledger keeps every stop)",
    );
    return new Map();
  }
  return stops;
}

/** Replace `file` with the stops, whole (written beside it, then renamed over it). */
function writeStops(file: string | undefined, stops: ReadonlyMap<string, StopRecord>): void {
  if (file === undefined) return;
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify([...stops.values()], null, 2)}\n`);
  renameSync(temporary, file);
}
