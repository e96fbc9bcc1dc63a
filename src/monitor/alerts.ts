/**
 * Alerts as episodes, pure and clock-free. A condition (a breaker not closed, a dataset drift verdict, an
 * anomaly rate above its limit, a review past its deadline) is one alert, identified by its labels: it fires
 * once when the condition starts and resolves once when it ends, however many requests see it in between.
 * The notifications are Alertmanager's webhook payload (version 4), so anything that takes Alertmanager's
 * webhooks takes Warden's. Sending them is the server's job (server/alert-sink.ts).
 */
import { createHash } from "node:crypto";
import type { BreakerEvent } from "./breaker.js";

/** Severities (the `severity` label; Alertmanager leaves the vocabulary to routes, these are the usual ones). */
export const ALERT_SEVERITIES = ["critical", "warning", "info"] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

/**
 * An alert as other parts of Warden raise it (the review queue's SLA escalations come in this shape):
 * `name` becomes the `alertname` label, `severity` the `severity` label.
 */
export interface AlertEvent {
  readonly name: string;
  readonly severity: string;
  /** Identify the alert with name and severity (e.g. model, version); values are turned into strings. */
  readonly labels?: Readonly<Record<string, unknown>> | undefined;
  /** `summary`, `description`, and anything else worth reading. */
  readonly annotations?: Readonly<Record<string, unknown>> | undefined;
  /** When the condition started: ISO-8601, a Date, or milliseconds since the epoch. */
  readonly startsAt: string | number | Date;
  /** When it ended; set on a resolution. */
  readonly endsAt?: string | number | Date | undefined;
  /** `resolved` (or an `endsAt`) ends the alert; anything else fires it. */
  readonly status?: "firing" | "resolved" | undefined;
  readonly generatorURL?: string | undefined;
}

/** One alert as Alertmanager's webhook carries it. */
export interface Alert {
  readonly status: "firing" | "resolved";
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly startsAt: string;
  /** Alertmanager's zero time (`0001-01-01T00:00:00Z`) while firing. */
  readonly endsAt: string;
  readonly generatorURL?: string;
  /** 16 hex digits identifying the label set. */
  readonly fingerprint: string;
}

/** Alertmanager's webhook payload, version 4. */
export interface AlertmanagerPayload {
  readonly version: "4";
  readonly groupKey: string;
  readonly truncatedAlerts: number;
  readonly status: "firing" | "resolved";
  readonly receiver: string;
  readonly groupLabels: Readonly<Record<string, string>>;
  readonly commonLabels: Readonly<Record<string, string>>;
  readonly commonAnnotations: Readonly<Record<string, string>>;
  readonly externalURL: string;
  readonly alerts: readonly Alert[];
}

/** The time Alertmanager writes as `endsAt` of an alert still firing. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

function isoTime(time: string | number | Date): string {
  const date = time instanceof Date ? time : new Date(time);
  if (Number.isNaN(date.getTime())) throw new RangeError(`not a time: ${String(time)}`);
  return date.toISOString();
}

function strings(record: Readonly<Record<string, unknown>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(record ?? {})) {
    if (value === undefined || value === null) continue;
    out[key] =
      typeof value === "string" ? value : typeof value === "number" ? String(value) : JSON.stringify(value);
  }
  return out;
}

/** An alert's labels: its own, then `alertname` and `severity` (which win). */
export function alertLabels(event: AlertEvent): Record<string, string> {
  return { ...strings(event.labels), alertname: event.name, severity: event.severity };
}

/** sha256 of the sorted label pairs, 16 hex digits: the same label set, the same alert. */
export function alertFingerprint(labels: Readonly<Record<string, string>>): string {
  const text = Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${labels[k]}\u0000`)
    .join("");
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The event as a firing alert. */
export function firingAlert(event: AlertEvent): Alert {
  const labels = alertLabels(event);
  return Object.freeze({
    status: "firing",
    labels,
    annotations: strings(event.annotations),
    startsAt: isoTime(event.startsAt),
    endsAt: ZERO_TIME,
    ...(event.generatorURL !== undefined ? { generatorURL: event.generatorURL } : {}),
    fingerprint: alertFingerprint(labels),
  });
}

/** Alertmanager's webhook payload for one group of alerts (same status). */
export function alertmanagerPayload(
  alerts: readonly Alert[],
  options: { readonly receiver?: string; readonly externalURL?: string } = {},
): AlertmanagerPayload {
  if (alerts.length === 0) throw new RangeError("a notification needs at least one alert");
  const common = (pick: (a: Alert) => Readonly<Record<string, string>>) => {
    const first = pick(alerts[0]!);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(first)) if (alerts.every((a) => pick(a)[k] === v)) out[k] = v;
    return out;
  };
  const commonLabels = common((a) => a.labels);
  const groupLabels: Record<string, string> =
    commonLabels.alertname !== undefined ? { alertname: commonLabels.alertname } : {};
  return {
    version: "4",
    groupKey: `{}:{alertname=${JSON.stringify(groupLabels.alertname ?? "")}}`,
    truncatedAlerts: 0,
    status: alerts.some((a) => a.status === "firing") ? "firing" : "resolved",
    receiver: options.receiver ?? "warden",
    groupLabels,
    commonLabels,
    commonAnnotations: common((a) => a.annotations),
    externalURL: options.externalURL ?? "",
    alerts,
  };
}

/**
 * The alerts firing now, by fingerprint. `set(event, active)` is the whole rule: a condition that becomes true
 * fires its alert (returned), one that stays true returns nothing, one that becomes false resolves it
 * (returned, `endsAt` = `now`). So a condition seen by a thousand requests is one notification each way.
 */
export interface AlertEpisodes {
  /** The alert to send, if this changes the episode; `active` undefined says nothing (no change). */
  set(event: AlertEvent, active: boolean | undefined, now: number): Alert | undefined;
  /** `set` from an event's own status: `resolved` or an `endsAt` ends it (at `endsAt`), anything else fires. */
  emit(event: AlertEvent, now: number): Alert | undefined;
  /** The alerts firing now. */
  firing(): readonly Alert[];
}

export function createAlertEpisodes(): AlertEpisodes {
  const firing = new Map<string, Alert>();
  const set = (event: AlertEvent, active: boolean | undefined, now: number, endsAt?: string) => {
    if (active === undefined) return undefined;
    const fingerprint = alertFingerprint(alertLabels(event));
    const current = firing.get(fingerprint);
    if (active) {
      if (current !== undefined) return undefined;
      const alert = firingAlert(event);
      firing.set(fingerprint, alert);
      return alert;
    }
    if (current === undefined) return undefined;
    firing.delete(fingerprint);
    return Object.freeze({ ...current, status: "resolved", endsAt: endsAt ?? isoTime(now) }) as Alert;
  };
  return {
    set: (event, active, now) => set(event, active, now),
    emit(event, now) {
      const ends = event.status === "resolved" || event.endsAt !== undefined;
      return set(event, !ends, now, event.endsAt !== undefined ? isoTime(event.endsAt) : undefined);
    },
    firing: () => [...firing.values()],
  };
}

/** Alert names Warden raises itself. */
export const ALERT_NAMES = {
  breaker: "WardenBreakerOpen",
  drift: "WardenDatasetDrift",
  anomaly: "WardenAnomalyRate",
} as const;

function signalText(values: BreakerEvent["values"]): string {
  return Object.entries(values)
    .map(
      ([signal, r]) =>
        `${signal} ${r?.value === undefined ? "n/a" : r.value.toFixed(4)} over ${r?.observations}`,
    )
    .join(", ");
}

/**
 * The breaker's alert and whether it is active after `event`: active while the breaker is not closed (open or
 * half-open), so one episode runs from the trip (or the operator's stop) to the close; the transitions in
 * between are ledger records and log lines, not new notifications.
 */
export function breakerAlert(
  model: string,
  version: string,
  event: BreakerEvent,
  fallback: string,
): { readonly event: AlertEvent; readonly active: boolean } {
  const cause =
    event.rule === "manual_stop"
      ? `stopped by ${event.actor ?? "an operator"}: ${event.reason ?? ""}`
      : `${event.rule} ${event.threshold !== undefined ? `crossed ${event.threshold}` : ""}`.trim();
  return {
    active: event.to !== "closed",
    event: {
      name: ALERT_NAMES.breaker,
      severity: "critical",
      labels: { model, version },
      annotations: {
        summary: `circuit breaker of ${model} ${version} is ${event.to.replace("_", "-")} (${event.rule})`,
        description: `${event.from} → ${event.to}: ${cause}. Signals: ${signalText(event.values) || "none"}. While open, requests get the fallback: ${fallback}.`,
        rule: event.rule,
        state: event.to,
      },
      startsAt: event.at,
    },
  };
}

/** What the live monitor's report says that alerts need (see live.ts). */
export interface MonitorReading {
  /** Rows in the window. */
  readonly window: number;
  readonly anomaly_rate: number | null;
  readonly dataset: {
    readonly drifted: boolean;
    readonly driftShare: number;
    readonly driftedCount: number;
    readonly testedCount: number;
  } | null;
}

/**
 * The drift and anomaly alerts of one model version from its monitor's latest report: dataset drift is active
 * while the verdict is drift (no statement while there is no verdict: no profile, too few decisions); the
 * anomaly rate while the window's share of anomalous rows is above `anomalyRate` (from 30 rows on).
 */
export function monitorAlerts(
  model: string,
  version: string,
  report: MonitorReading,
  options: { readonly anomalyRate: number; readonly now: number; readonly minRows?: number },
): { readonly event: AlertEvent; readonly active: boolean | undefined }[] {
  const minRows = options.minRows ?? 30;
  const labels = { model, version };
  const d = report.dataset;
  const a = report.anomaly_rate;
  return [
    {
      active: d === null ? undefined : d.drifted,
      event: {
        name: ALERT_NAMES.drift,
        severity: "warning",
        labels,
        annotations: {
          summary: `${model} ${version}: the live inputs drift from the reference profile`,
          description:
            d === null
              ? "no verdict"
              : `${d.driftedCount} of ${d.testedCount} features drifted (share ${d.driftShare.toFixed(3)}) over the last ${report.window} decisions`,
        },
        startsAt: options.now,
      },
    },
    {
      active: a === null || report.window < minRows ? undefined : a > options.anomalyRate,
      event: {
        name: ALERT_NAMES.anomaly,
        severity: "warning",
        labels,
        annotations: {
          summary: `${model} ${version}: anomalous inputs above ${options.anomalyRate}`,
          description: `${a === null ? "n/a" : a.toFixed(3)} of the last ${report.window} decisions' inputs are anomalous for the reference profile's Isolation Forest (limit ${options.anomalyRate})`,
        },
        startsAt: options.now,
      },
    },
  ];
}

/** The breaker signal a monitor reading's drift gives: the drifted share, over the window's rows. */
export function driftSignal(report: MonitorReading): { share: number; observations: number } | undefined {
  return report.dataset === null
    ? undefined
    : { share: report.dataset.driftShare, observations: report.window };
}
