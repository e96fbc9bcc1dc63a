export {
  checkValue,
  coerceCsvCell,
  encodeValue,
  type FeatureValue,
  type ValidInstance,
  validateInstance,
} from "./input.js";
export {
  type BreakerGate,
  type BreakerNote,
  type BreakerVerdict,
  createDecisionPipeline,
  DECISION_ROUTES,
  type DecidedInstance,
  type DecisionPipeline,
  type DecisionRequest,
  type DecisionResult,
  type DecisionRoute,
  type InstanceInput,
  type LedgerSink,
  type OffThreadExplainer,
  type PipelineObserver,
  type PipelineOptions,
  type ReasonSummary,
  type ReviewRouting,
} from "./pipeline.js";
export { applyPolicy, type Outcome } from "./policy.js";
