/**
 * Worker-thread entry of the monitor reports (report-thread.ts): computes {@link computeReport} away from the
 * serving thread. Profiles arrive once per key and stay, with their Isolation Forest, until replaced or forgotten
 * (the monitor was collected: its model version was unloaded).
 */
import { parentPort } from "node:worker_threads";
import type { FeatureSpec } from "../config/index.js";
import { type IsolationForest, isolationForestFromJSON } from "./anomaly.js";
import { computeReport, type MonitorReport, type WindowSnapshot } from "./live.js";
import type { ReferenceProfile } from "./profile.js";

/** Main thread → report thread. */
export interface ReportRequest {
  readonly id: number;
  /** The monitor's key, and — when this thread has not seen them yet — its features and profile. */
  readonly key: number;
  readonly setup?: { readonly features: readonly FeatureSpec[]; readonly profile: ReferenceProfile | null };
  readonly snapshot: WindowSnapshot;
}

/** Main thread → report thread: the monitor is gone (its model version unloaded); drop what is kept for it. */
export interface ForgetRequest {
  readonly forget: number;
}

/** Report thread → main thread. */
export type ReportReply =
  | { readonly id: number; readonly ok: true; readonly report: MonitorReport }
  | { readonly id: number; readonly ok: false; readonly message: string };

const port = parentPort;
if (port === null) throw new Error("monitor/report-worker.js must run as a worker thread");

const setups = new Map<
  number,
  { features: readonly FeatureSpec[]; profile: ReferenceProfile | null; forest: IsolationForest | null }
>();

port.on("message", (message: ReportRequest | ForgetRequest) => {
  if ("forget" in message) {
    setups.delete(message.forget);
    return;
  }
  const request = message;
  try {
    if (request.setup !== undefined) {
      const { features, profile } = request.setup;
      setups.set(request.key, {
        features,
        profile,
        forest: profile === null ? null : isolationForestFromJSON(profile.anomaly),
      });
    }
    const setup = setups.get(request.key);
    if (setup === undefined) throw new Error(`no setup for monitor ${request.key}`);
    const report = computeReport(setup.features, request.snapshot, setup.profile, setup.forest);
    port.postMessage({ id: request.id, ok: true, report } satisfies ReportReply);
  } catch (error) {
    port.postMessage({
      id: request.id,
      ok: false,
      message: error instanceof Error ? error.message : String(error),
    } satisfies ReportReply);
  }
});
