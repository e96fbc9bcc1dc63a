/**
 * Monitor reports off the serving thread: a window's decisions are copied out of the live monitor (O(window ·
 * features), the only work left on the caller's thread) and the tests run in one shared worker thread
 * (report-worker.ts). Reports of a monitor are cached until it changes (a decision, a profile; for the time
 * window, also when its oldest decision leaves the span, checked at most once a second), and callers asking
 * while one is being computed share it.
 */
import { Worker } from "node:worker_threads";
import type { FeatureSpec } from "../config/index.js";
import type { LiveMonitor, LiveWindow, MonitorReport } from "./live.js";
import type { ReferenceProfile } from "./profile.js";
import type { ForgetRequest, ReportReply, ReportRequest } from "./report-worker.js";

const WORKER_URL = new URL("./report-worker.js", import.meta.url);

/** A time-window report is reused for this long at most when nothing was observed (its span moves on). */
const TIME_REPORT_REUSE_MS = 1000;

/** Reports of live monitors, computed in a worker thread. */
export interface ReportThread {
  /** The monitor's report over `window` (default `count`). */
  report(monitor: LiveMonitor, features: readonly FeatureSpec[], window?: LiveWindow): Promise<MonitorReport>;
  /**
   * Drop what is kept for the monitor, here and in the thread. Done on its own when the monitor is collected
   * (its model version unloaded and no longer referenced), so unloaded versions' profiles and Isolation Forests
   * (megabytes each) do not pile up over a server's deployments.
   */
  forget(monitor: LiveMonitor): void;
  /** Monitors whose profile is kept for the thread now (for tests and diagnostics). */
  held(): number;
  /** Stop the thread (reports asked later start it again). */
  close(): Promise<void>;
}

interface Cached {
  readonly changes: number;
  readonly at: number;
  readonly report: Promise<MonitorReport>;
}

/** A report thread, started on first use and again after it dies. */
export function createReportThread(options: { readonly now?: () => number } = {}): ReportThread {
  const now = options.now ?? Date.now;
  let worker: Worker | undefined;
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: MonitorReport) => void; reject: (e: Error) => void }>();
  /** Monitor keys, and the profile the current thread holds for each (a new thread holds none). */
  const keys = new WeakMap<LiveMonitor, number>();
  let nextKey = 1;
  let sent = new Map<number, ReferenceProfile | null>();
  const cache = new WeakMap<LiveMonitor, Map<LiveWindow, Cached>>();
  const forgetKey = (key: number) => {
    sent.delete(key);
    worker?.postMessage({ forget: key } satisfies ForgetRequest);
  };
  const collected = new FinalizationRegistry<number>(forgetKey);

  const thread = (): Worker => {
    if (worker !== undefined) return worker;
    const w = new Worker(WORKER_URL, { name: "monitor-reports" });
    // Reports are asked for by scrapes and breakers; an idle thread must not keep the process alive.
    w.unref();
    w.on("message", (reply: ReportReply) => {
      const waiter = pending.get(reply.id);
      if (waiter === undefined) return;
      pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.report);
      else waiter.reject(new Error(`monitor report failed: ${reply.message}`));
    });
    const fail = (error: Error) => {
      if (worker !== w) return;
      worker = undefined;
      sent = new Map();
      for (const waiter of pending.values()) waiter.reject(error);
      pending.clear();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`the monitor report thread stopped (exit code ${code})`)));
    worker = w;
    return w;
  };

  const compute = (monitor: LiveMonitor, features: readonly FeatureSpec[], window: LiveWindow) => {
    let key = keys.get(monitor);
    if (key === undefined) {
      key = nextKey++;
      keys.set(monitor, key);
      collected.register(monitor, key, monitor);
    }
    const profile = monitor.profile();
    const snapshot = monitor.snapshot(window);
    const w = thread();
    const setup = sent.has(key) && sent.get(key) === profile ? undefined : { features, profile };
    sent.set(key, profile);
    const id = nextId++;
    const request: ReportRequest = setup === undefined ? { id, key, snapshot } : { id, key, setup, snapshot };
    return new Promise<MonitorReport>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      w.postMessage(request, [snapshot.rows.buffer as ArrayBuffer, snapshot.scores.buffer as ArrayBuffer]);
    });
  };

  return {
    report(monitor, features, window = "count") {
      let byWindow = cache.get(monitor);
      if (byWindow === undefined) {
        byWindow = new Map();
        cache.set(monitor, byWindow);
      }
      const changes = monitor.changes();
      const t = now();
      const held = byWindow.get(window);
      if (
        held !== undefined &&
        held.changes === changes &&
        (window === "count" || t - held.at < TIME_REPORT_REUSE_MS)
      )
        return held.report;
      const report = compute(monitor, features, window);
      const entry: Cached = { changes, at: t, report };
      byWindow.set(window, entry);
      // A failed report is not kept: the next caller tries again.
      report.catch(() => {
        if (byWindow!.get(window) === entry) byWindow!.delete(window);
      });
      return report;
    },
    forget(monitor) {
      const key = keys.get(monitor);
      if (key === undefined) return;
      keys.delete(monitor);
      cache.delete(monitor);
      collected.unregister(monitor);
      forgetKey(key);
    },
    held: () => sent.size,
    async close() {
      const w = worker;
      worker = undefined;
      sent = new Map();
      for (const waiter of pending.values()) waiter.reject(new Error("the monitor report thread was closed"));
      pending.clear();
      if (w !== undefined) await w.terminate();
    },
  };
}
