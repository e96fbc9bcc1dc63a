/**
 * The "monitor" suite: what a live monitor costs. Its per-decision update (the encoded row and score into ring
 * buffers, on the serving thread) in µs per decision and per feature, side by side with the model's own
 * prediction of one row by the native engine in the same run (the baseline: what a decision costs anyway);
 * and a report (the window compared with the profile: KS and chi-squared per feature, anomaly scores), which
 * runs only when asked or scraped.
 */
import { readReferenceRows } from "../explain/reference-stats.js";
import { buildReferenceProfile, createLiveMonitor } from "../monitor/index.js";
import { XGBoostEngine } from "../runtime/xgboost/index.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV, loadManifest } from "../testing/index.js";
import { type BenchSuite, describeMachine, formatTable, median } from "./suite.js";

const ROUNDS = 7;
const UPDATES = 200_000;

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
    return 0;
  },
};
