export {
  type BreakerPolicy,
  BreakerPolicySchema,
  breakerPolicyOf,
  breakerPolicyProblems,
  DEFAULT_BREAKER_COOL_DOWN_S,
  DEFAULT_BREAKER_PROBE_FRACTION,
  DEFAULT_BREAKER_PROBES_TO_CLOSE,
  DEFAULT_BREAKER_WINDOW,
} from "./breaker-policy.js";
export {
  DISCLOSURES,
  type Disclosure,
  type DisclosurePolicy,
  roundTo,
} from "./disclosure-policy.js";
export {
  DEFAULT_COUNTERFACTUAL_EVALUATIONS,
  DEFAULT_COUNTERFACTUALS,
  DEFAULT_KERNELSHAP_BACKGROUND,
  DEFAULT_KERNELSHAP_EXTRA_SAMPLES,
  DEFAULT_MAX_REASONS,
  EXPLANATION_METHODS,
  EXPLANATION_WHEN,
  type ExplanationMethod,
  type ExplanationPolicy,
  type ExplanationWhen,
} from "./explanation-policy.js";
export {
  bucketLabels,
  FAIRNESS_DEFAULTS,
  FAIRNESS_MISSING_LEVEL,
  FAIRNESS_REFERENCE_RULES,
  type FairnessAttribute,
  type FairnessPolicy,
  FairnessPolicySchema,
  type FairnessReferenceRule,
  fairnessPolicyOf,
  fairnessPolicyProblems,
} from "./fairness-policy.js";
export {
  checkReadableFile,
  MAX_CONFIG_BYTES,
  MAX_JSON_MODEL_BYTES,
  MAX_LABELLED_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_PROFILE_BYTES,
  MAX_REFERENCE_BYTES,
  makeFolder,
  readBoundedFile,
  sha256OfFile,
  UnreadableFile,
} from "./files.js";
export { featureIndex, loadManifest, parseManifest, sha256File, verifyArtifact } from "./manifest.js";
export {
  ARTIFACT_FORMATS,
  type ArtifactFormat,
  DEVICES,
  type Device,
  FEATURE_TYPES,
  type FeatureSpec,
  type FeatureType,
  type Manifest,
  ManifestSchema,
  MONOTONE_DIRECTIONS,
  type MonotoneDirection,
  RISK_TIERS,
  type RiskTier,
  TASKS,
  type Task,
} from "./manifest-schema.js";
export {
  HIGH_RISK_MIN_RETENTION_DAYS,
  MAX_RETENTION_DAYS,
  PRIVACY_DEFAULTS,
  type PrivacyPolicy,
  privacyPolicyOf,
  privacyPolicyProblems,
  SUBJECT_STORAGES,
  type SubjectStorage,
} from "./privacy-policy.js";
export {
  DEFAULT_REVIEW_CLAIM_MINUTES,
  DEFAULT_REVIEW_SLA_MINUTES,
  type ReviewPolicy,
  ReviewPolicySchema,
  reviewPolicyOf,
  reviewPolicyProblems,
} from "./review-policy.js";
export { schemaProblems } from "./schema-errors.js";
export {
  LOG_LEVELS,
  parseServerConfig,
  readServerConfigFile,
  type ServerConfig,
  ServerConfigSchema,
} from "./server-config.js";
