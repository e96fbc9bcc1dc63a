/**
 * Fairness as a library (pure maths, no I/O): intersectional group encoding (`groups.ts`), per-group confusion
 * metrics and calibration from one pass of counts (`metrics.ts`), disparities between groups and to a reference
 * group (`disparity.ts`), individual fairness as AI Fairness 360 has it (`individual.ts`), tests of each group
 * against the reference (`significance.ts`), the count-based bootstrap (`bootstrap.ts`), and the audit that
 * puts them together with intervals and corrected p-values (`audit.ts`). See docs/fairness.md.
 */
export * from "./audit.js";
export * from "./bootstrap.js";
export * from "./disparity.js";
export * from "./groups.js";
export * from "./individual.js";
export * from "./live.js";
export * from "./metrics.js";
export * from "./mitigation.js";
export * from "./policy.js";
export * from "./significance.js";
