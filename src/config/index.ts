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
  RISK_TIERS,
  type RiskTier,
  TASKS,
  type Task,
} from "./manifest-schema.js";
export { schemaProblems } from "./schema-errors.js";
export {
  LOG_LEVELS,
  parseServerConfig,
  readServerConfigFile,
  type ServerConfig,
  ServerConfigSchema,
} from "./server-config.js";
