/**
 * Monitoring statistics as a library: drift tests checked against SciPy (`drift.ts`, `special.ts`), multiple
 * testing and the dataset verdict (`multiple-testing.ts`), mergeable summaries (`sketch.ts`, `sketch-counts.ts`),
 * sliding windows of them (`window.ts`), and binary performance, realised and label-free
 * (`performance.ts`, `performance-summary.ts`), a model version's reference profile (`profile.ts`) and the
 * per-request anomaly score fitted with it (`anomaly.ts`); circuit breakers driven by them (`breaker.ts`); alerts as episodes and their Alertmanager payload
 * (`alerts.ts`).
 */
export * from "./alerts.js";
export * from "./anomaly.js";
export * from "./breaker.js";
export * from "./drift.js";
export * from "./live.js";
export * from "./live-performance.js";
export * from "./multiple-testing.js";
export * from "./performance.js";
export * from "./performance-summary.js";
export * from "./profile.js";
export * from "./range-report.js";
export * from "./report-thread.js";
export * from "./sketch.js";
export * from "./sketch-counts.js";
export * from "./special.js";
export * from "./window.js";
