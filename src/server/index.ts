export { type AlertSink, createAlertSink } from "./alert-sink.js";
export {
  type AppDependencies,
  buildApp,
  type ReviewOptions,
  type RouteContext,
  SERVER_NAME,
  SERVER_VERSION,
} from "./app.js";
export { type Breakers, type BreakerView, createBreakers, DRIFT_CHECK_EVERY } from "./breakers.js";
export { toWardenError } from "./errors.js";
export { createMetrics, type WardenMetrics } from "./metrics.js";
export { modelSummary } from "./routes-decisions.js";
export { decodeTensors, OIP_DATATYPES } from "./routes-oip.js";
export { firstKeyPath, type RunningServer, startServer } from "./serve.js";
