/**
 * Explanations as a library (each method checked against outside references) and the glue a model's threads use
 * to explain its rows; see docs/architecture.md, "Explanations".
 */
export * from "./background.js";
export * from "./counterfactuals.js";
export * from "./interventional.js";
export * from "./kernelshap.js";
export * from "./lime.js";
export * from "./linalg.js";
export * from "./model-explainer.js";
export * from "./outcome.js";
export * from "./random.js";
export * from "./reasons.js";
export * from "./reference-stats.js";
export * from "./service.js";
export * from "./shapley.js";
export * from "./treeshap.js";
export * from "./types.js";
