import { createHash, randomInt } from "node:crypto";
import { resolve } from "node:path";
import { v7 as uuidv7 } from "uuid";
import { type Device, loadManifest, type Manifest } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import type { LedgerEntry } from "../ledger/index.js";
import type { LoadedModel, ModelRegistry } from "./index.js";
import type {
  DeploymentState,
  DeploymentStore,
  HistoryEntry,
  RegisteredVersion,
  TrafficPolicy,
} from "./store.js";

/** Where a served decision's routing key came from. */
export type KeySource = "subject_id" | "id" | "random";
/** Which side of the deployment answered. */
export type Arm = "production" | "canary" | "pinned";

/** Why a version answered: recorded with every decision (keys in sorted order). */
export interface DeploymentTag {
  /** The alias of the version that answered (production, candidate), or null when it has none. */
  readonly alias: "production" | "candidate" | null;
  readonly arm: Arm;
  readonly key_source: KeySource;
  readonly policy: TrafficPolicy;
  /** sha256 of the routing key (hex), or null for a random arm. */
  readonly subject_key_hash: string | null;
}

/** The version that answers one instance, and the candidate that scores it in the shadow. */
export interface Route {
  readonly model: LoadedModel;
  readonly shadow: LoadedModel | undefined;
  readonly deployment: DeploymentTag;
}

/** The stable key an instance is routed by: its subject id, else the client's id, else none (random). */
export interface RoutingKey {
  readonly key: string | undefined;
  readonly source: KeySource;
}

/** What the manager writes to the ledger through. */
export interface DeploymentLedger {
  write(entry: LedgerEntry): Promise<unknown>;
}

/** One entry of the Open Inference Protocol repository index. */
export interface IndexEntry {
  readonly name: string;
  readonly version: string;
  readonly state: "READY" | "UNAVAILABLE" | "LOADING" | "UNLOADING";
  readonly reason: string;
}

/** A model's deployment as the admin API shows it. */
export interface DeploymentView {
  readonly model: string;
  readonly production: string | null;
  readonly candidate: string | null;
  readonly policy: TrafficPolicy;
  readonly canary_percent: number;
  readonly updated_at: string | null;
  readonly versions: (RegisteredVersion & { loaded: boolean })[];
  readonly history: HistoryEntry[];
}

/** Who changes a deployment and why. */
export interface ChangeContext {
  readonly actor: string;
  readonly reason?: string | undefined;
}

export interface DeploymentManager {
  /** At start-up: register the configured manifests, load what the stored state serves, set defaults. */
  start(manifestPaths: readonly string[]): Promise<void>;
  /** Route one instance of a request (synchronous: the caller submits to the batcher in the same turn). */
  route(model: string, version: string | undefined, key: RoutingKey): Route;
  register(
    model: string,
    manifestPath: string,
    alias: "production" | "candidate" | undefined,
    ctx: ChangeContext,
  ): Promise<DeploymentView>;
  setAliases(
    model: string,
    aliases: { production?: string | undefined; candidate?: string | null | undefined },
    ctx: ChangeContext,
  ): Promise<DeploymentView>;
  promote(model: string, ctx: ChangeContext): Promise<DeploymentView>;
  rollback(model: string, ctx: ChangeContext): Promise<DeploymentView>;
  setPolicy(
    model: string,
    policy: TrafficPolicy,
    canaryPercent: number | undefined,
    ctx: ChangeContext,
  ): Promise<DeploymentView>;
  /** Stop serving one version that no alias points to (its in-flight requests finish first). */
  unloadVersion(model: string, version: string, ctx: ChangeContext): Promise<DeploymentView>;
  /** Load the versions the aliases point to (OIP repository load). */
  loadModel(model: string, ctx: ChangeContext): Promise<DeploymentView>;
  /** Unload every version of a model (OIP repository unload); it stays registered. */
  unloadModel(model: string, ctx: ChangeContext): Promise<DeploymentView>;
  view(model: string): DeploymentView;
  models(): DeploymentView[];
  index(readyOnly: boolean): IndexEntry[];
}

export interface DeploymentManagerOptions {
  readonly registry: ModelRegistry;
  readonly store: DeploymentStore;
  readonly ledger: DeploymentLedger;
  readonly device?: Device | undefined;
  /** Who registers the configured manifests at start-up. */
  readonly startActor: string;
  readonly onLoaded?: (model: LoadedModel) => void;
}

/** A manifest or artifact that cannot be used, as the admin API reports it (422, never a 500). */
function loadFailure(error: unknown, field: string): unknown {
  if (!(error instanceof WardenError) || error.code === "WARDEN_ERR_INTERNAL") return error;
  const first = error.message.split("\n")[0] ?? error.message;
  return new WardenError("WARDEN_ERR_MODEL_LOAD_FAILED", `cannot load the version: ${first}`, {
    details: [
      { field, expected: "a valid manifest whose artifact loads", found: `${error.code}: ${first}` },
      ...error.details,
    ],
    cause: error,
  });
}

function changedVersion(existing: RegisteredVersion, manifestPath: string, sha256: string): WardenError {
  return conflict(
    `model ${existing.model} version ${existing.version} is already registered with another manifest`,
    "manifest",
    `the manifest registered as ${existing.version} (sha256 ${existing.manifest_sha256}, ${existing.manifest_path})`,
    `${manifestPath} (sha256 ${sha256})`,
    "a changed model is a new version: change `version:` in the manifest",
  );
}

const conflict = (message: string, field: string, expected: string, found: string, fix?: string) =>
  new WardenError("WARDEN_ERR_CONFLICT", message, {
    details: [{ field, expected, found, ...(fix ? { fix } : {}) }],
  });

/** sha256 hex of a routing key. */
export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/**
 * The canary bucket of a key, in [0, 100): the same key, model and candidate always give the same bucket,
 * so a subject keeps its arm while the policy stays the same, and raising the weight only moves subjects
 * from production to the candidate, never back.
 */
export function canaryBucket(model: string, candidate: string, keyHash: string): number {
  const digest = createHash("sha256").update(`${model}\0${candidate}\0${keyHash}`).digest();
  return (digest.readUInt32BE(0) / 2 ** 32) * 100;
}

/** Create the manager over a registry (what is loaded) and a store (what is deployed). */
export function createDeploymentManager(options: DeploymentManagerOptions): DeploymentManager {
  const { registry, store, ledger } = options;
  const states = new Map<string, DeploymentState>(store.states().map((s) => [s.model, s]));
  /** Versions being loaded or unloaded, for the index. */
  const transitions = new Map<string, "LOADING" | "UNLOADING">();
  let lock: Promise<unknown> = Promise.resolve();
  /** Changes run one at a time, in arrival order. */
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const next = lock.then(work, work);
    lock = next.catch(() => undefined);
    return next;
  };

  const isLoaded = (model: string, version: string) =>
    registry.versions(model).some((m) => m.manifest.version === version);

  const knownModel = (model: string): RegisteredVersion[] => {
    const versions = store.versions(model);
    if (versions.length === 0) {
      const names = [...new Set(store.versions().map((v) => v.model))];
      throw new WardenError("WARDEN_ERR_MODEL_NOT_FOUND", `no model named ${JSON.stringify(model)}`, {
        details: [
          {
            field: "model",
            expected: `one of ${names.join(", ") || "(no models registered)"}`,
            found: JSON.stringify(model),
          },
        ],
      });
    }
    return versions;
  };

  const registered = (model: string, version: string, field: string): RegisteredVersion => {
    const versions = knownModel(model);
    const found = versions.find((v) => v.version === version);
    if (found === undefined) {
      throw new WardenError(
        "WARDEN_ERR_VERSION_NOT_FOUND",
        `model ${model} has no registered version ${JSON.stringify(version)}`,
        {
          details: [
            {
              field,
              expected: `one of ${versions.map((v) => v.version).join(", ")}`,
              found: JSON.stringify(version),
              fix: "register it first (POST /v1/admin/models/{model}/versions)",
            },
          ],
        },
      );
    }
    return found;
  };

  /** Load a registered version unless it is loaded; refuse a manifest that changed since it was registered. */
  const ensureLoaded = async (v: RegisteredVersion): Promise<void> => {
    if (isLoaded(v.model, v.version)) return;
    const key = `${v.model}\0${v.version}`;
    transitions.set(key, "LOADING");
    try {
      const loaded = await loadAs(v.manifest_path, "manifest_path");
      if (loaded.manifest.manifestSha256 !== v.manifest_sha256 || loaded.manifest.version !== v.version) {
        await registry.unload(loaded.manifest.name, loaded.manifest.version);
        throw conflict(
          `${v.manifest_path} changed since ${v.model} ${v.version} was registered`,
          "manifest_path",
          `a manifest with sha256 ${v.manifest_sha256} (version ${v.version})`,
          `sha256 ${loaded.manifest.manifestSha256} (version ${loaded.manifest.version})`,
          "a changed model is a new version: give it a new version and register it",
        );
      }
    } finally {
      transitions.delete(key);
    }
  };

  /** Load a manifest; a manifest or artifact that cannot be used is the caller's mistake (422), not a 500. */
  const loadAs = async (manifestPath: string, field: string): Promise<LoadedModel> => {
    try {
      const loaded = await registry.load(manifestPath, { device: options.device });
      options.onLoaded?.(loaded);
      return loaded;
    } catch (error) {
      throw loadFailure(error, field);
    }
  };

  const emptyState = (model: string): DeploymentState => ({
    model,
    production: null,
    candidate: null,
    policy: "single",
    canary_percent: 0,
    updated_at: new Date().toISOString(),
  });

  /**
   * Record one change: first in the hash-chained ledger (the tamper-evident copy), then the store and its
   * history, then the serving state in memory.
   */
  const record = async (
    next: DeploymentState,
    change: {
      action: string;
      alias: string | null;
      from: string | null;
      to: string | null;
    },
    ctx: ChangeContext,
  ): Promise<HistoryEntry> => {
    const time = new Date().toISOString();
    const state = { ...next, updated_at: time };
    const subject = change.to ?? change.from ?? state.production ?? "";
    const artifact = subject === "" ? undefined : store.version(state.model, subject);
    const id = uuidv7();
    await ledger.write({
      id,
      kind: "deployment",
      time,
      model: state.model,
      version: subject,
      artifact_sha256: artifact?.artifact_sha256 ?? "",
      // Keys in sorted order (canonical JSON).
      body: {
        action: change.action,
        actor: ctx.actor,
        alias: change.alias,
        canary_percent: state.canary_percent,
        candidate: state.candidate,
        from: change.from,
        manifest_sha256: artifact?.manifest_sha256 ?? null,
        policy: state.policy,
        production: state.production,
        reason: ctx.reason ?? null,
        to: change.to,
      },
    });
    const entry = store.change(state, {
      model: state.model,
      time,
      action: change.action,
      alias: change.alias,
      from_version: change.from,
      to_version: change.to,
      actor: ctx.actor,
      reason: ctx.reason ?? null,
      ledger_id: id,
    });
    states.set(state.model, state);
    registry.setDefault(state.model, state.production ?? undefined);
    return entry;
  };

  const view = (model: string): DeploymentView => {
    const versions = knownModel(model);
    const state = states.get(model) ?? emptyState(model);
    return {
      model,
      production: state.production,
      candidate: state.candidate,
      policy: state.policy,
      canary_percent: state.canary_percent,
      updated_at: states.has(model) ? state.updated_at : null,
      versions: versions.map((v) => ({ ...v, loaded: isLoaded(model, v.version) })),
      history: store.history(model),
    };
  };

  /** Register a loaded manifest's version if it is new; refuse the same version with another manifest. */
  const registerLoaded = (loaded: LoadedModel, manifestPath: string, actor: string): boolean => {
    const m = loaded.manifest;
    const existing = store.version(m.name, m.version);
    if (existing !== undefined) {
      if (existing.manifest_sha256 !== m.manifestSha256) {
        throw changedVersion(existing, manifestPath, m.manifestSha256);
      }
      return false;
    }
    store.addVersion({
      model: m.name,
      version: m.version,
      manifest_path: resolve(manifestPath),
      manifest_sha256: m.manifestSha256,
      artifact_sha256: m.artifact.sha256,
      registered_at: new Date().toISOString(),
      registered_by: actor,
    });
    return true;
  };

  const stateOf = (model: string): DeploymentState => states.get(model) ?? emptyState(model);

  return {
    start: (manifestPaths) =>
      serialized(async () => {
        const ctx = { actor: options.startActor, reason: "server configuration" };
        const configured = new Map<string, string>();
        for (const path of manifestPaths) {
          const loaded = await loadAs(path, "models");
          const m = loaded.manifest;
          const added = registerLoaded(loaded, path, ctx.actor);
          configured.set(m.name, m.version);
          if (added && states.has(m.name)) {
            await record(
              stateOf(m.name),
              { action: "register", alias: null, from: null, to: m.version },
              ctx,
            );
          }
        }
        // Configured models without a deployment: the last configured version of each is production.
        for (const [model, version] of configured) {
          if (states.has(model)) continue;
          await record(
            { ...emptyState(model), production: version },
            { action: "register", alias: "production", from: null, to: version },
            ctx,
          );
        }
        // What the stored deployments serve is loaded too, even when it is not in the configuration.
        for (const state of states.values()) {
          for (const version of [state.production, state.candidate]) {
            if (version === null) continue;
            const v = store.version(state.model, version);
            if (v !== undefined) await ensureLoaded(v);
          }
          registry.setDefault(state.model, state.production ?? undefined);
        }
      }),

    route(model, version, key) {
      const state = states.get(model);
      const policy = state?.policy ?? "single";
      const keyHash = key.key === undefined ? null : hashKey(key.key);
      if (version !== undefined) {
        const loaded = registry.get(model, version);
        return {
          model: loaded,
          shadow: undefined,
          deployment: {
            alias:
              state?.production === version
                ? "production"
                : state?.candidate === version
                  ? "candidate"
                  : null,
            arm: "pinned",
            key_source: key.source,
            policy,
            subject_key_hash: keyHash,
          },
        };
      }
      const production = registry.get(model);
      const candidateVersion = state?.candidate ?? null;
      const candidate =
        candidateVersion === null || policy === "single"
          ? undefined
          : registry.versions(model).find((m) => m.manifest.version === candidateVersion);
      const productionTag: DeploymentTag = {
        alias: production.manifest.version === state?.production ? "production" : null,
        arm: "production",
        key_source: key.source,
        policy,
        subject_key_hash: keyHash,
      };
      if (candidate === undefined) return { model: production, shadow: undefined, deployment: productionTag };
      if (policy === "shadow") return { model: production, shadow: candidate, deployment: productionTag };
      const percent = state!.canary_percent;
      const bucket =
        keyHash === null ? randomInt(0, 1_000_000) / 10_000 : canaryBucket(model, candidateVersion!, keyHash);
      if (bucket < percent) {
        return {
          model: candidate,
          shadow: undefined,
          deployment: { ...productionTag, alias: "candidate", arm: "canary" },
        };
      }
      return { model: production, shadow: undefined, deployment: productionTag };
    },

    register: (model, manifestPath, alias, ctx) =>
      serialized(async () => {
        let manifest: Manifest;
        try {
          manifest = loadManifest(manifestPath, { device: options.device });
        } catch (error) {
          throw loadFailure(error, "manifest");
        }
        if (manifest.name !== model) {
          throw new WardenError(
            "WARDEN_ERR_VALIDATION",
            `${manifestPath} is a manifest of ${manifest.name}, not ${model}`,
            {
              details: [
                {
                  field: "manifest",
                  expected: `a manifest with name: ${model}`,
                  found: `name: ${manifest.name}`,
                  fix: `register it under /v1/admin/models/${manifest.name}/versions`,
                },
              ],
            },
          );
        }
        const before = store.version(model, manifest.version);
        if (before !== undefined && before.manifest_sha256 !== manifest.manifestSha256) {
          throw changedVersion(before, manifestPath, manifest.manifestSha256);
        }
        if (!isLoaded(model, manifest.version)) await loadAs(manifestPath, "manifest");
        const m = manifest;
        const added = before === undefined;
        if (added) {
          store.addVersion({
            model,
            version: m.version,
            manifest_path: resolve(manifestPath),
            manifest_sha256: m.manifestSha256,
            artifact_sha256: m.artifact.sha256,
            registered_at: new Date().toISOString(),
            registered_by: ctx.actor,
          });
        }
        const state = stateOf(model);
        if (added) {
          await record(
            state.production === null ? { ...state, production: m.version } : state,
            {
              action: "register",
              alias: state.production === null ? "production" : null,
              from: null,
              to: m.version,
            },
            ctx,
          );
        }
        const now = stateOf(model);
        if (alias === "candidate" && now.candidate !== m.version && now.production !== m.version) {
          await record(
            { ...now, candidate: m.version },
            { action: "alias", alias: "candidate", from: now.candidate, to: m.version },
            ctx,
          );
        } else if (alias === "production" && now.production !== m.version) {
          await record(
            { ...now, production: m.version, candidate: now.candidate === m.version ? null : now.candidate },
            { action: "alias", alias: "production", from: now.production, to: m.version },
            ctx,
          );
        }
        return view(model);
      }),

    setAliases: (model, aliases, ctx) =>
      serialized(async () => {
        knownModel(model);
        const state = stateOf(model);
        const production = aliases.production ?? state.production;
        const candidate = aliases.candidate === undefined ? state.candidate : aliases.candidate;
        if (production !== null && candidate !== null && production === candidate) {
          throw new WardenError(
            "WARDEN_ERR_VALIDATION",
            `production and candidate cannot both be ${production}`,
            {
              details: [
                {
                  field: aliases.candidate !== undefined ? "candidate" : "production",
                  expected: "a version other than the other alias's",
                  found: JSON.stringify(production),
                  fix: "to make the candidate the production version, promote it",
                },
              ],
            },
          );
        }
        if (aliases.production !== undefined)
          await ensureLoaded(registered(model, aliases.production, "production"));
        if (typeof aliases.candidate === "string")
          await ensureLoaded(registered(model, aliases.candidate, "candidate"));
        if (production !== state.production) {
          await record(
            { ...state, production },
            { action: "alias", alias: "production", from: state.production, to: production },
            ctx,
          );
        }
        const now = stateOf(model);
        if (candidate !== now.candidate) {
          await record(
            {
              ...now,
              candidate,
              ...(candidate === null ? { policy: "single" as const, canary_percent: 0 } : {}),
            },
            { action: "alias", alias: "candidate", from: now.candidate, to: candidate },
            ctx,
          );
        }
        return view(model);
      }),

    promote: (model, ctx) =>
      serialized(async () => {
        knownModel(model);
        const state = stateOf(model);
        if (state.candidate === null) {
          throw conflict(
            `model ${model} has no candidate to promote`,
            "candidate",
            "a version with the candidate alias",
            "none",
            `set one first: PUT /v1/admin/models/${model}/aliases {"candidate": "VERSION"}`,
          );
        }
        await ensureLoaded(registered(model, state.candidate, "candidate"));
        await record(
          { ...state, production: state.candidate, candidate: null, policy: "single", canary_percent: 0 },
          { action: "promote", alias: "production", from: state.production, to: state.candidate },
          ctx,
        );
        return view(model);
      }),

    rollback: (model, ctx) =>
      serialized(async () => {
        knownModel(model);
        const state = stateOf(model);
        const last = store
          .history(model)
          .reverse()
          .find(
            (h) => h.alias === "production" && h.to_version === state.production && h.from_version !== null,
          );
        if (last === undefined || last.from_version === null) {
          throw conflict(
            `model ${model} has no earlier production version to roll back to`,
            "production",
            "a production version that replaced an earlier one",
            state.production ?? "none",
          );
        }
        const previous = last.from_version;
        await ensureLoaded(registered(model, previous, "production"));
        const candidate = state.candidate === previous ? null : state.candidate;
        await record(
          {
            ...state,
            production: previous,
            candidate,
            ...(candidate === null ? { policy: "single" as const, canary_percent: 0 } : {}),
          },
          { action: "rollback", alias: "production", from: state.production, to: previous },
          ctx,
        );
        return view(model);
      }),

    setPolicy: (model, policy, canaryPercent, ctx) =>
      serialized(async () => {
        knownModel(model);
        const state = stateOf(model);
        if (policy !== "single" && state.candidate === null) {
          throw conflict(
            `model ${model} has no candidate: a ${policy} policy needs one`,
            "policy",
            "single while no candidate is set",
            policy,
            `set a candidate first: PUT /v1/admin/models/${model}/aliases {"candidate": "VERSION"}`,
          );
        }
        if (policy === "canary" && canaryPercent === undefined) {
          throw new WardenError("WARDEN_ERR_VALIDATION", "a canary policy needs canary_percent", {
            details: [
              {
                field: "canary_percent",
                expected: "a number from 0 to 100 (the candidate's share of subjects)",
                found: "missing",
              },
            ],
          });
        }
        if (policy !== "canary" && canaryPercent !== undefined) {
          throw new WardenError("WARDEN_ERR_VALIDATION", `canary_percent goes with policy canary only`, {
            details: [
              { field: "canary_percent", expected: `absent for policy ${policy}`, found: `${canaryPercent}` },
            ],
          });
        }
        if (state.candidate !== null) await ensureLoaded(registered(model, state.candidate, "candidate"));
        await record(
          { ...state, policy, canary_percent: policy === "canary" ? canaryPercent! : 0 },
          { action: "policy", alias: null, from: null, to: null },
          ctx,
        );
        return view(model);
      }),

    unloadVersion: (model, version, ctx) =>
      serialized(async () => {
        registered(model, version, "version");
        const state = stateOf(model);
        if (state.production === version || state.candidate === version) {
          const alias = state.production === version ? "production" : "candidate";
          throw conflict(
            `${model} ${version} is the ${alias} version and cannot be unloaded`,
            "version",
            "a version no alias points to",
            `${version} (${alias})`,
            alias === "production" ? "promote or roll back first" : "clear or move the candidate alias first",
          );
        }
        if (!isLoaded(model, version)) return view(model);
        const key = `${model}\0${version}`;
        transitions.set(key, "UNLOADING");
        try {
          await registry.unload(model, version);
        } finally {
          transitions.delete(key);
        }
        await record(state, { action: "unload", alias: null, from: version, to: null }, ctx);
        return view(model);
      }),

    loadModel: (model, ctx) =>
      serialized(async () => {
        const versions = knownModel(model);
        const state = stateOf(model);
        const wanted = [state.production, state.candidate].filter((v): v is string => v !== null);
        if (wanted.length === 0) wanted.push(versions[versions.length - 1]!.version);
        const missing = wanted.filter((v) => !isLoaded(model, v));
        for (const version of missing) await ensureLoaded(registered(model, version, "model"));
        for (const version of missing) {
          await record(
            state.production === null ? { ...state, production: version } : state,
            { action: "load", alias: null, from: null, to: version },
            ctx,
          );
        }
        return view(model);
      }),

    unloadModel: (model, ctx) =>
      serialized(async () => {
        knownModel(model);
        const loaded = registry.versions(model).map((m) => m.manifest.version);
        await Promise.all(
          loaded.map(async (version) => {
            const key = `${model}\0${version}`;
            transitions.set(key, "UNLOADING");
            try {
              await registry.unload(model, version);
            } finally {
              transitions.delete(key);
            }
          }),
        );
        for (const version of loaded) {
          await record(stateOf(model), { action: "unload", alias: null, from: version, to: null }, ctx);
        }
        return view(model);
      }),

    view,
    models: () => [...new Set(store.versions().map((v) => v.model))].map(view),
    index(readyOnly) {
      const entries: IndexEntry[] = store.versions().map((v) => {
        const transition = transitions.get(`${v.model}\0${v.version}`);
        const loaded = isLoaded(v.model, v.version);
        const state = transition ?? (loaded ? "READY" : "UNAVAILABLE");
        return {
          name: v.model,
          version: v.version,
          state,
          reason: state === "UNAVAILABLE" ? "unloaded" : "",
        };
      });
      return readyOnly ? entries.filter((e) => e.state === "READY") : entries;
    },
  };
}
