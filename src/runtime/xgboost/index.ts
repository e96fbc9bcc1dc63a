/** Native XGBoost JSON engine: parse XGBoost models into typed-array trees and serve them in-process. */
export { createXGBoostEngine, XGBoostEngine } from "./engine.js";
export {
  OBJECTIVES,
  type ObjectiveSpec,
  parseXGBoostModel,
  readXGBoostModel,
  type XGBoostModel,
  type XGBoostTrees,
} from "./model.js";
