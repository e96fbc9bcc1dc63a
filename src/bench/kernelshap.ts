/**
 * KernelSHAP's entries in the explain suite's sampling table (milliseconds per row), on the credit demo with
 * the native XGBoost engine as the scorer, in two settings:
 *
 * - the product's: what an explainer thread runs for a decision (explain/service.ts: a k-means background
 *   of SERVICE_BACKGROUND_SIZE reference rows, 2M + SERVICE_EXTRA_COALITIONS coalitions, reason codes), timed
 *   through the service itself;
 * - shap-like: the shap package's usual KernelExplainer set-up (a 50-row k-means background, nsamples
 *   "auto" = 2M + 2048, which for the demo's 11 features is every one of the 2^11 − 2 coalitions).
 *
 * Each is prepared and warmed up on a row outside the timed ones; the timed rows are explained one call
 * for all of them, so the figure includes each row's own model calls and nothing prepared once.
 */
import { join } from "node:path";
import { loadManifest, type Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/index.js";
import { kmeansBackground } from "../explain/background.js";
import { createKernelExplainer, type KernelExplainer } from "../explain/kernelshap.js";
import { loadModelReference } from "../explain/model-explainer.js";
import {
  createExplanationService,
  type ExplanationService,
  explainedOutput,
  SERVICE_BACKGROUND_SIZE,
  SERVICE_EXTRA_COALITIONS,
} from "../explain/service.js";
import { createXGBoostEngine, type XGBoostEngine } from "../runtime/xgboost/index.js";
import { DEMO_XGB, REPO_ROOT } from "../testing/index.js";
import type { ExplainCase, SamplingExplainerBench } from "./explain.js";

/** shap's KernelExplainer defaults as usually run: a 50-row summary, nsamples "auto" = 2M + 2048. */
const SHAP_BACKGROUND_SIZE = 50;
const SHAP_EXTRA_COALITIONS = 2048;

const DEMO_MODEL = join(REPO_ROOT, "models/credit-demo/model.json");

/** The demo model's manifest and native engine, loaded on first use and shared by both entries. */
let demo: Promise<{ manifest: Manifest; engine: XGBoostEngine }> | undefined;
function loadDemo() {
  demo ??= (async () => {
    const manifest = loadManifest(DEMO_XGB);
    return { manifest, engine: await createXGBoostEngine(manifest) };
  })();
  return demo;
}

/** Model-feature values of encoded rows, as validation would have produced them (for the reason texts). */
function decodeRows(manifest: Manifest, input: Float32Array, rows: number): Record<string, FeatureValue>[] {
  const features = manifest.modelFeatures;
  return Array.from({ length: rows }, (_, r) => {
    const values: Record<string, FeatureValue> = {};
    features.forEach((f, j) => {
      const v = input[r * features.length + j]!;
      values[f.name] = Number.isNaN(v)
        ? null
        : f.type === "category"
          ? f.categories![v]!
          : f.type === "boolean"
            ? v === 1
            : v;
    });
    return values;
  });
}

/**
 * Mean ms per row of `explain` over rows 1..`rows` of the case, after one warm-up call on row 0 (which also
 * prepares whatever is made on first use); undefined for any model but the credit demo.
 */
async function timeRows(
  c: ExplainCase,
  rows: number,
  explain: (input: Float32Array, rows: number) => Promise<unknown>,
): Promise<number | undefined> {
  if (c.modelFile !== DEMO_MODEL) return undefined;
  const width = c.model.numFeature;
  const count = Math.min(rows, c.rows - 1);
  await explain(c.input.subarray(0, width), 1);
  const start = process.hrtime.bigint();
  await explain(c.input.subarray(width, (1 + count) * width), count);
  return Number(process.hrtime.bigint() - start) / 1e6 / count;
}

/** KernelSHAP as an explainer thread runs it for a decision: the service, its background, budget, reasons. */
const productDefaults: SamplingExplainerBench = {
  name:
    `KernelSHAP, product (${SERVICE_BACKGROUND_SIZE} background rows, ` +
    `2M+${SERVICE_EXTRA_COALITIONS} coalitions, reasons)`,
  rows: 10,
  async measure(c, rows) {
    let service: ExplanationService | undefined;
    return timeRows(c, rows, async (input, count) => {
      const { manifest, engine } = await loadDemo();
      service ??= await createExplanationService(manifest, engine);
      return service.run({
        kind: "kernelshap",
        input,
        rows: count,
        values: decodeRows(manifest, input, count),
      });
    });
  },
};

/** KernelSHAP with the shap package's usual settings, on the same scorer (the log-odds the service explains). */
const shapDefaults: SamplingExplainerBench = {
  name: `KernelSHAP, shap-like (${SHAP_BACKGROUND_SIZE} background rows, 2M+${SHAP_EXTRA_COALITIONS} coalitions)`,
  rows: 4,
  async measure(c, rows) {
    let kernel: KernelExplainer | undefined;
    return timeRows(c, rows, async (input, count) => {
      const { manifest, engine } = await loadDemo();
      if (kernel === undefined) {
        const reference = await loadModelReference(manifest, engine);
        if (reference === undefined) throw new Error(`${DEMO_XGB} names no reference rows`);
        const { rows: ref } = reference;
        const background = kmeansBackground(
          ref.input,
          ref.rows,
          manifest.modelFeatures.length,
          SHAP_BACKGROUND_SIZE,
          { seed: 0 },
        );
        kernel = await createKernelExplainer(explainedOutput(manifest, engine).scorer, background, {
          summary: { size: SHAP_BACKGROUND_SIZE, seed: 0 },
        });
      }
      const nsamples = 2 * manifest.modelFeatures.length + SHAP_EXTRA_COALITIONS;
      return kernel.explain(input, count, { seed: 0, nsamples });
    });
  },
};

/** KernelSHAP's rows of the sampling table. */
export const KERNEL_SHAP_BENCHES: readonly SamplingExplainerBench[] = [productDefaults, shapDefaults];
