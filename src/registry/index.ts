import { type Device, loadManifest, type Manifest } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import type { SealKeys } from "../privacy/seal.js";
import { type BatcherObserver, DynamicBatcher } from "../runtime/batcher.js";
import { createExplainerPool, type ExplainerPool } from "../runtime/explainer-pool.js";
import type { EngineDescription } from "../runtime/types.js";
import { createWorkerPool, type ModelExecutor } from "../runtime/worker-pool.js";

/** A model version that is loaded and serving. */
export interface LoadedModel {
  readonly manifest: Manifest;
  readonly description: EngineDescription;
  readonly batcher: DynamicBatcher;
  readonly executor: ModelExecutor;
  /** Its explainer thread (KernelSHAP, LIME, counterfactuals, ...), started on first use. */
  readonly explainer: ExplainerPool;
  /** When it was loaded (ISO-8601). */
  readonly loadedAt: string;
}

/**
 * Models by name and version. A name's default version is the one set with `setDefault` (the deployment's
 * production alias) while it is loaded, else the most recently loaded version.
 */
export interface ModelRegistry {
  /** Load a manifest and its artifact into worker threads; returns once the model can serve. */
  load(manifestPath: string, options?: { device?: Device | undefined }): Promise<LoadedModel>;
  /** The named model (its default version, or the given one); throws 404 errors when absent. */
  get(name: string, version?: string): LoadedModel;
  /** Whether a model of that name is loaded (any version). */
  has(name: string): boolean;
  /** Every loaded model version. */
  list(): readonly LoadedModel[];
  /** Versions of one model, oldest first. */
  versions(name: string): readonly LoadedModel[];
  /** Make `version` the default of `name` (undefined: the most recently loaded version). */
  setDefault(name: string, version: string | undefined): void;
  /**
   * Stop serving one version: it leaves the registry at once (new requests no longer find it), then its
   * batcher drains every request it already took and its workers stop. Resolves once they have.
   */
  unload(name: string, version: string): Promise<void>;
  /** Stop every batcher and worker. */
  close(): Promise<void>;
}

export {
  type Arm,
  type ChangeContext,
  canaryBucket,
  createDeploymentManager,
  type DeploymentManager,
  type DeploymentTag,
  type DeploymentView,
  hashKey,
  type IndexEntry,
  type KeySource,
  type Route,
  type RoutingKey,
} from "./deployments.js";
export {
  createDeploymentStore,
  type DeploymentState,
  type DeploymentStore,
  type HistoryEntry,
  type RegisteredVersion,
  TRAFFIC_POLICIES,
  type TrafficPolicy,
} from "./store.js";

/** Options for `createModelRegistry`. */
export interface RegistryOptions {
  /** Metrics hooks per model version. */
  readonly observe?: (manifest: Manifest) => BatcherObserver;
  readonly onWorkerError?: (error: Error) => void;
  /** Subject keys for the model workers, which seal protected subjects beside inference. */
  readonly sealKeys?: SealKeys;
}

/** Create an empty registry. */
export function createModelRegistry(options: RegistryOptions = {}): ModelRegistry {
  const models = new Map<string, LoadedModel[]>();
  const defaults = new Map<string, string>();
  /** "name\0version" of loads in progress, so that two concurrent loads of one version cannot both win. */
  const loading = new Set<string>();
  return {
    async load(manifestPath, loadOptions = {}) {
      const manifest = loadManifest(manifestPath, { device: loadOptions.device });
      const key = `${manifest.name}\0${manifest.version}`;
      if (
        loading.has(key) ||
        (models.get(manifest.name) ?? []).some((m) => m.manifest.version === manifest.version)
      ) {
        throw new WardenError(
          "WARDEN_ERR_CONFIG_INVALID",
          `model ${manifest.name} version ${manifest.version} is loaded twice (${manifestPath})`,
        );
      }
      loading.add(key);
      let executor: ModelExecutor;
      try {
        executor = await createWorkerPool(manifest, {
          ...(options.onWorkerError ? { onWorkerError: options.onWorkerError } : {}),
          ...(options.sealKeys ? { sealKeys: options.sealKeys } : {}),
        });
      } finally {
        loading.delete(key);
      }
      const featureCount = manifest.modelFeatures.length;
      if (executor.description.featureCount !== featureCount) {
        await executor.close();
        throw new WardenError(
          "WARDEN_ERR_ARTIFACT_INVALID",
          `${manifest.manifestPath}: the artifact takes ${executor.description.featureCount} features, the manifest lists ${featureCount} non-sensitive features`,
        );
      }
      const explainer = createExplainerPool(manifest);
      if (manifest.explanations.when === "always" && manifest.explanations.method !== "treeshap") {
        // Every decision waits for this thread: start it with the model, and refuse the model if it cannot.
        try {
          await explainer.start();
        } catch (error) {
          await Promise.all([executor.close(), explainer.close()]);
          throw error;
        }
      }
      const batcher = new DynamicBatcher(
        manifest.batching,
        executor,
        featureCount,
        options.observe?.(manifest),
      );
      const loaded: LoadedModel = Object.freeze({
        manifest,
        description: executor.description,
        batcher,
        executor,
        explainer,
        loadedAt: new Date().toISOString(),
      });
      models.set(manifest.name, [...(models.get(manifest.name) ?? []), loaded]);
      return loaded;
    },
    get(name, version) {
      const versions = models.get(name);
      if (versions === undefined || versions.length === 0) {
        throw new WardenError("WARDEN_ERR_MODEL_NOT_FOUND", `no model named ${JSON.stringify(name)}`, {
          details: [
            {
              field: "model",
              expected: `one of ${[...models.keys()].join(", ") || "(no models loaded)"}`,
              found: JSON.stringify(name),
            },
          ],
        });
      }
      if (version === undefined) {
        const preferred = defaults.get(name);
        return versions.find((m) => m.manifest.version === preferred) ?? versions[versions.length - 1]!;
      }
      const match = versions.find((m) => m.manifest.version === version);
      if (match === undefined) {
        throw new WardenError(
          "WARDEN_ERR_VERSION_NOT_FOUND",
          `model ${name} has no version ${JSON.stringify(version)}`,
          {
            details: [
              {
                field: "version",
                expected: `one of ${versions.map((m) => m.manifest.version).join(", ")}`,
                found: JSON.stringify(version),
              },
            ],
          },
        );
      }
      return match;
    },
    has: (name) => (models.get(name)?.length ?? 0) > 0,
    list: () => [...models.values()].flat(),
    versions: (name) => models.get(name) ?? [],
    setDefault(name, version) {
      if (version === undefined) defaults.delete(name);
      else defaults.set(name, version);
    },
    async unload(name, version) {
      const versions = models.get(name) ?? [];
      const model = versions.find((m) => m.manifest.version === version);
      if (model === undefined) return;
      const rest = versions.filter((m) => m !== model);
      if (rest.length > 0) models.set(name, rest);
      else models.delete(name);
      model.batcher.close();
      await model.batcher.drained();
      await Promise.all([model.executor.close(), model.explainer.close()]);
    },
    async close() {
      const all = [...models.values()].flat();
      for (const m of all) m.batcher.close();
      await Promise.all(all.flatMap((m) => [m.executor.close(), m.explainer.close()]));
      models.clear();
    },
  };
}
