import type { Manifest } from "../config/index.js";
import { type InlineExplainer, loadModelReference, treeShapExplainer } from "../explain/model-explainer.js";
import type { ModelEngine } from "./types.js";
import { XGBoostEngine } from "./xgboost/index.js";

/**
 * The inline explainer a model worker holds: TreeSHAP for an XGBoost model whose policy explains (with its
 * reference rows read and scored once here); undefined otherwise (explanations off, or a model without trees).
 * Whatever method the policy explains decisions with, `POST /explain` may ask an XGBoost model for TreeSHAP.
 */
export async function inlineExplainerOf(
  manifest: Manifest,
  engine: ModelEngine,
): Promise<InlineExplainer | undefined> {
  const policy = manifest.explanations;
  if (policy.when === "never" || !(engine instanceof XGBoostEngine)) {
    return undefined;
  }
  const reference = await loadModelReference(manifest, engine);
  return treeShapExplainer(manifest, engine.model, reference);
}
