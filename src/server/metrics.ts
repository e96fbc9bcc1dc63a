import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { BatcherObserver } from "../runtime/index.js";

/** Latency buckets (seconds) tuned for sub-millisecond to second-long decisions. */
const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Warden's Prometheus metrics, on a registry of their own (one per server instance). */
export interface WardenMetrics {
  readonly registry: Registry;
  readonly requestDuration: Histogram<"model" | "version" | "route" | "outcome">;
  readonly requests: Counter<"model" | "version" | "route" | "outcome">;
  readonly inferenceDuration: Histogram<"model" | "version">;
  readonly batchSize: Histogram<"model" | "version">;
  readonly queueDepth: Gauge<"model" | "version">;
  readonly failures: Counter<"model" | "version" | "reason">;
  readonly ledgerWrites: Counter<"kind">;
  /** Requests refused by a rate limit, by model ("" for routes without one) and limit (key or model). */
  readonly rateLimited: Counter<"model" | "limit">;
  /** Requests let through while the rate limiter's store could not be reached (`fail: open`). */
  readonly rateLimitFailOpen: Counter;
  /** Denials answered but not recorded in the ledger (an address past its denial-record bucket). */
  readonly accessDenialsUnrecorded: Counter;
  /** Batcher hooks for one model version. */
  batcherObserver(model: string, version: string): BatcherObserver;
  /**
   * A function recording one HTTP request (count and duration, seconds). It keeps the labelled series it has
   * seen, so the hot path looks one up instead of building label objects per request.
   */
  requestObserver(): (
    model: string,
    version: string,
    route: string,
    outcome: string,
    seconds: number,
  ) => void;
}

/** Create the metrics (and Node's default process metrics) on a fresh registry. */
export function createMetrics(): WardenMetrics {
  const registry = new Registry();
  // Unprefixed (process_*, nodejs_*), as dashboards for Node.js processes expect them.
  collectDefaultMetrics({ register: registry });
  const requestDuration = new Histogram({
    name: "warden_request_duration_seconds",
    help: "HTTP request duration by model, version, route and outcome",
    labelNames: ["model", "version", "route", "outcome"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const requests = new Counter({
    name: "warden_requests_total",
    help: "HTTP requests by model, version, route and outcome",
    labelNames: ["model", "version", "route", "outcome"] as const,
    registers: [registry],
  });
  const inferenceDuration = new Histogram({
    name: "warden_inference_duration_seconds",
    help: "Time one batch spends in the model (worker hop included)",
    labelNames: ["model", "version"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: "warden_batch_size",
    help: "Rows per batch sent to a model",
    labelNames: ["model", "version"] as const,
    buckets: BATCH_BUCKETS,
    registers: [registry],
  });
  // Queue depth changes on every request; it is kept in a plain number and copied into the gauge at scrape time.
  const depths = new Map<string, { labels: { model: string; version: string }; rows: number }>();
  const queueDepth = new Gauge({
    name: "warden_queue_depth",
    help: "Rows waiting in a model's batching queue",
    labelNames: ["model", "version"] as const,
    registers: [registry],
    collect() {
      for (const depth of depths.values()) this.set(depth.labels, depth.rows);
    },
  });
  const failures = new Counter({
    name: "warden_failures_total",
    help: "Requests to a model that did not produce a decision, by reason (error code)",
    labelNames: ["model", "version", "reason"] as const,
    registers: [registry],
  });
  const ledgerWrites = new Counter({
    name: "warden_ledger_records_total",
    help: "Records appended to the decision ledger, by kind",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: "warden_rate_limited_total",
    help: "Requests refused by a rate limit (429), by model and limit (key: the caller's bucket; model: its quota for the model)",
    labelNames: ["model", "limit"] as const,
    registers: [registry],
  });
  const rateLimitFailOpen = new Counter({
    name: "warden_rate_limit_fail_open_total",
    help: "Requests let through unlimited because the rate limiter's Redis could not be reached (fail: open)",
    registers: [registry],
  });
  const accessDenialsUnrecorded = new Counter({
    name: "warden_access_denials_unrecorded_total",
    help: "401/403 answers not recorded in the ledger because their address was past its denial-record bucket",
    registers: [registry],
  });
  return {
    registry,
    rateLimited,
    rateLimitFailOpen,
    accessDenialsUnrecorded,
    requestDuration,
    requests,
    inferenceDuration,
    batchSize,
    queueDepth,
    failures,
    ledgerWrites,
    requestObserver() {
      const series = new Map<string, { count: { inc(): void }; duration: { observe(v: number): void } }>();
      return (model, version, route, outcome, seconds) => {
        const key = `${model}\u0000${version}\u0000${route}\u0000${outcome}`;
        let entry = series.get(key);
        if (entry === undefined) {
          const labels = { model, version, route, outcome };
          entry = { count: requests.labels(labels), duration: requestDuration.labels(labels) };
          series.set(key, entry);
        }
        entry.count.inc();
        entry.duration.observe(seconds);
      };
    },
    batcherObserver(model, version) {
      const labels = { model, version };
      const inference = inferenceDuration.labels(labels);
      const batches = batchSize.labels(labels);
      const depth = { labels, rows: 0 };
      depths.set(`${model}\u0000${version}`, depth);
      return {
        onBatch(size, ms) {
          batches.observe(size);
          inference.observe(ms / 1000);
        },
        onQueueDepth(rows) {
          depth.rows = rows;
        },
      };
    },
  };
}

/**
 * A factory of gauges that one `fill` sets at each scrape: the registry reads its metrics concurrently, each
 * after its own collect(), so every gauge's collect waits for the scrape's single fill (shared while it runs).
 * The gauges are registered by the caller, on the server's registry only (never the global one).
 */
export function scrapedGauges(fill: () => Promise<void>) {
  let filling: Promise<void> | undefined;
  const collect = async () => {
    filling ??= fill().finally(() => {
      filling = undefined;
    });
    await filling;
  };
  return <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [], collect });
}
