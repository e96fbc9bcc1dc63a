/**
 * The "monitor" suite: what a live monitor costs. Its per-decision update (the encoded row and score into ring
 * buffers, on the serving thread) in µs per decision and per feature, side by side with the model's own
 * prediction of one row by the native engine in the same run (the baseline: what a decision costs anyway);
 * and a report (the window compared with the profile: KS and chi-squared per feature, anomaly scores), which
 * runs only when asked or scraped (in the report thread); and the decision path's throughput with live
 * monitors on and off, same run.
 */

import { parseServerConfig } from "../config/index.js";
import { readReferenceRows } from "../explain/reference-stats.js";
import { buildReferenceProfile, createLiveMonitor, profilePath, saveProfile } from "../monitor/index.js";
import { XGBoostEngine } from "../runtime/xgboost/index.js";
import { type RunningServer, startServer } from "../server/index.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV, loadManifest, tempDir } from "../testing/index.js";
import { type LoadResult, runLoad } from "./load.js";
import { decisionRequests, explanationsOff } from "./serving.js";
import { type BenchSuite, benchRounds, benchSeconds, describeMachine, formatTable, median } from "./suite.js";

const ROUNDS = 7;
const UPDATES = 200_000;
const CONNECTIONS = 16;

export const monitorSuite: BenchSuite = {
  async run() {
    const manifest = loadManifest(DEMO_XGB);
    const features = manifest.modelFeatures;
    const width = features.length;
    const holdout = readReferenceRows(manifest, HOLDOUT_CSV);
    const scores = await xgboostScorer(manifest).score(holdout.input, holdout.rows);
    const profile = buildReferenceProfile(manifest, holdout.input, holdout.rows, scores, {
      referenceSha256: "bench",
      referenceFile: "holdout.csv",
    });
    const monitor = createLiveMonitor(features, { profile });
    const engine = new XGBoostEngine(manifest);
    const row = (i: number) =>
      holdout.input.subarray((i % holdout.rows) * width, ((i % holdout.rows) + 1) * width);
    const updates: number[] = [];
    const predictions: number[] = [];
    const reports: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`monitor: round ${round + 1}/${ROUNDS}\n`);
      let started = performance.now();
      for (let i = 0; i < UPDATES; i++) monitor.observe(row(i), scores[i % holdout.rows]!);
      updates.push(((performance.now() - started) * 1000) / UPDATES);
      started = performance.now();
      for (let i = 0; i < UPDATES / 10; i++) engine.predict(row(i), 1);
      predictions.push(((performance.now() - started) * 1000) / (UPDATES / 10));
      started = performance.now();
      monitor.report();
      reports.push(performance.now() - started);
    }
    const update = median(updates);
    const predict = median(predictions);
    console.log("Warden benchmark: monitor");
    console.log(`machine: ${describeMachine()}`);
    console.log(
      `credit demo (${width} features), window ${monitor.report().window_size} decisions, median of ${ROUNDS} rounds\n`,
    );
    console.log(
      formatTable(
        ["what", "cost", "per feature", "vs one prediction"],
        [
          [
            "live monitor update (per decision)",
            `${update.toFixed(3)} µs`,
            `${(update / width).toFixed(3)} µs`,
            `${(update / predict).toFixed(2)} ×`,
          ],
          ["one prediction, native engine (baseline)", `${predict.toFixed(3)} µs`, "", "1.00 ×"],
          ["report (window vs profile, on request)", `${median(reports).toFixed(2)} ms`, "", ""],
        ],
      ),
    );
    console.log("");
    for (const line of await monitorsOnOff()) console.log(line);
    return 0;
  },
};

/**
 * The decision path with live monitors on and off, same run: two servers on the explanations-off copy of the
 * demo (the governed path without its largest cost, so the monitors' share shows most), each with the
 * version's reference profile in its data folder, `monitoring.live` true and false; concurrency 16, rounds
 * alternating on, off, on, off, ...; throughput ratio on/off per round (median) and CPU time per request.
 */
async function monitorsOnOff(): Promise<string[]> {
  const seconds = benchSeconds(3);
  const rounds = benchRounds(5);
  const dirs = [tempDir("bench-monitor-on"), tempDir("bench-monitor-off"), tempDir("bench-monitor-manifest")];
  const servers: RunningServer[] = [];
  try {
    const manifestPath = explanationsOff(dirs[2]!.path);
    const manifest = loadManifest(manifestPath);
    const holdout = readReferenceRows(manifest, HOLDOUT_CSV);
    const scores = await xgboostScorer(manifest).score(holdout.input, holdout.rows);
    const profile = buildReferenceProfile(manifest, holdout.input, holdout.rows, scores, {
      referenceSha256: "bench",
      referenceFile: "holdout.csv",
    });
    for (const [i, live] of [true, false].entries()) {
      const dataDir = dirs[i]!.path;
      saveProfile(profilePath(dataDir, manifest.name, manifest.version), profile);
      servers.push(
        await startServer(
          parseServerConfig(
            {
              host: "127.0.0.1",
              port: 0,
              data_dir: dataDir,
              log_level: "silent",
              models: [manifestPath],
              monitoring: { live },
              auth: { required: false },
            },
            "bench",
          ),
        ),
      );
    }
    const requests = decisionRequests(manifest);
    const runs: { on: LoadResult[]; off: LoadResult[] } = { on: [], off: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const [label, server] of [
        ["on", servers[0]!],
        ["off", servers[1]!],
      ] as const) {
        process.stderr.write(`monitor: decisions with monitors ${label}, round ${round}/${rounds}\n`);
        runs[label].push(
          await runLoad(
            { url: server.url, connections: CONNECTIONS, seconds, warmupSeconds: 1, requests },
            { serverInProcess: true },
          ),
        );
      }
    }
    const ratios = runs.on.map((r, i) => r.rps / runs.off[i]!.rps);
    const cpu = (r: LoadResult) => {
      const responses = r.ok + r.non2xx + r.warmup.ok + r.warmup.non2xx;
      return r.cpu?.serverMain === undefined || r.cpu.serverOthers === undefined
        ? Number.NaN
        : ((r.cpu.serverMain + r.cpu.serverOthers) * 1e6) / responses;
    };
    const row = (label: string, list: LoadResult[]) => [
      label,
      Math.round(median(list.map((r) => r.rps))).toLocaleString("en-US"),
      median(list.map((r) => r.p99Ms)).toFixed(3),
      median(list.map(cpu)).toFixed(0),
      String(list.reduce((n, r) => n + r.non2xx + r.errors, 0)),
    ];
    return [
      `decisions with live monitors on and off (explanations-off demo copy, profile loaded, concurrency ${CONNECTIONS}, ` +
        `${rounds} rounds of 1 s warm-up + ${seconds} s, alternating):`,
      formatTable(
        ["monitors", "req/s", "p99 ms", "server CPU µs/request", "non-2xx + errors"],
        [row("on", runs.on), row("off", runs.off)],
      ),
      `throughput on/off: ${median(ratios).toFixed(3)} (median; rounds ${ratios.map((r) => r.toFixed(3)).join(", ")})`,
    ];
  } finally {
    for (const server of servers) await server.close();
    for (const dir of dirs) dir.remove();
  }
}
