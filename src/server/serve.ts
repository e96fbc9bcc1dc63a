import { mkdirSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import type { FastifyInstance, FastifyRequest } from "fastify";
import pino, { type Logger } from "pino";
import { Counter, Gauge } from "prom-client";
import { makeFolder, type ServerConfig } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import {
  defaultSigningKeyPath,
  type LedgerBackend,
  type LedgerLocation,
  type LedgerWriter,
  loadOrCreateSigningKey,
  openLedgerBackend,
  startLedgerThread,
  writeFileAtomically,
} from "../ledger/index.js";
import { openSubjectProtection, type SubjectProtection } from "../privacy/index.js";
import {
  createDeploymentManager,
  createDeploymentStore,
  createModelRegistry,
  type DeploymentManager,
  type ModelRegistry,
} from "../registry/index.js";
import { createJwtVerifier, type IssuedKey, type KeyStore, openKeyStore } from "../security/index.js";
import type { AlertSink } from "./alert-sink.js";
import { buildApp, type ReviewOptions } from "./app.js";
import { createMetrics, type WardenMetrics } from "./metrics.js";

/** A running Warden server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  readonly registry: ModelRegistry;
  /** Where the ledger lives: SQLite in the data folder, or PostgreSQL (`ledger.postgres`). */
  readonly location: LedgerLocation;
  /** Versions, aliases and traffic policies (persisted in `<data_dir>/registry.sqlite`). */
  readonly deployments: DeploymentManager;
  /** Read access to the ledger (the writer runs in its own thread). */
  readonly ledger: LedgerBackend;
  readonly writer: LedgerWriter;
  readonly metrics: WardenMetrics;
  /** Subject keys and the subject vault (`<data_dir>/vault.sqlite`). */
  readonly privacy: SubjectProtection;
  /** Where alerts are raised: `emit({name, severity, labels, annotations, startsAt})`, `fire`, `resolve`. */
  readonly alerts: AlertSink;
  /** API keys (`<data_dir>/auth.sqlite`). */
  readonly keys: KeyStore;
  /**
   * The admin key made at the first start of a server that requires identities and had no key yet, and the
   * owner-only file its secret was written to ({@link firstKeyPath}; never printed). Absent on later starts.
   */
  readonly firstKey?: IssuedKey & { readonly file: string };
  /** `http://host:port` actually bound. */
  readonly url: string;
  /**
   * Graceful stop: refuse new requests (503), finish in-flight ones, commit every queued ledger write,
   * stop the model workers. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Start Warden: open the ledger, load every model into its worker threads, then listen. Models load
 * before the port opens, so readiness is true from the first request.
 */
export async function startServer(
  config: ServerConfig,
  options: {
    logger?: Logger;
    /**
     * Whether a request may see a decision's decrypted subject (`GET /v1/decisions/{id}?reveal=subject`). The
     * hook for authentication; without it, nobody may.
     */
    canRevealSubject?: (request: FastifyRequest) => boolean;
    /** The rate limit key of a request ("ip:<addr>" by default); authentication plugs in here. */
    rateLimitKey?: (request: FastifyRequest) => string;
    /** Human review: clock, SLA check interval, circuit breakers' state. */
    review?: ReviewOptions;
    /** The clock of circuit breakers and alerts (tests move it); `Date.now` by default. */
    now?: () => number;
  } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? pino({ level: config.log_level });
  try {
    makeFolder(config.data_dir);
  } catch (error) {
    throw new WardenError("WARDEN_ERR_CONFIG_INVALID", `data_dir: ${(error as Error).message}`, {
      details: [
        {
          field: "data_dir",
          expected: "a folder Warden may make and write",
          found: (error as Error).message,
          fix: "give --data-dir (or data_dir) a writable folder",
        },
      ],
    });
  }
  const metrics = createMetrics();
  const location: LedgerLocation = config.ledger.postgres
    ? { kind: "postgres", url: config.ledger.postgres.url, schema: config.ledger.postgres.schema }
    : { kind: "sqlite", dataDir: config.data_dir };
  // The checkpoint signing key: made on first start (the demo's included), its public half beside it.
  const keyPath = config.ledger.signing_key ?? defaultSigningKeyPath(config.data_dir);
  const key = loadOrCreateSigningKey(keyPath);
  if (key.created) {
    logger.info(
      { key: key.path, public_key: key.publicKeyPath, key_id: key.keyId },
      "created the ledger's checkpoint signing key",
    );
  }
  const writer = await startLedgerThread(config.data_dir, {
    location,
    checkpoints: { keyPath, intervalMs: config.ledger.checkpoint_interval_s * 1000 },
    onCheckpoint: (treeSize) => logger.debug({ tree_size: treeSize }, "ledger checkpoint signed"),
    synchronous: config.ledger.synchronous,
    maxBatch: config.ledger.max_batch,
    maxBacklog: config.ledger.max_backlog,
    onCommit: (kinds) => {
      for (const kind of kinds) metrics.ledgerWrites.inc({ kind });
    },
    onError: (error) => logger.error({ err: error }, "ledger"),
  });
  // The ledger's backlog, read at each scrape: how far commits trail the answers, and what was refused for it.
  new Gauge({
    name: "warden_ledger_backlog",
    help: "Decisions (and other records) answered and not yet committed to the ledger; at ledger.max_backlog new decisions are refused with 503",
    registers: [metrics.registry],
    collect() {
      this.set(writer.stats().queued);
    },
  });
  let refusedSeen = 0;
  new Counter({
    name: "warden_ledger_refused_total",
    help: "Records refused because the ledger's backlog was full (WARDEN_ERR_LEDGER_BUSY)",
    registers: [metrics.registry],
    collect() {
      const refused = writer.stats().refused;
      this.inc(refused - refusedSeen);
      refusedSeen = refused;
    },
  });
  let ledger: LedgerBackend;
  try {
    ledger = await openLedgerBackend(location);
  } catch (error) {
    await writer.close();
    throw error;
  }
  let privacy: SubjectProtection;
  try {
    privacy = openSubjectProtection(config.data_dir, config.privacy, {
      synchronous: config.ledger.synchronous,
    });
  } catch (error) {
    await ledger.close();
    await writer.close();
    throw error;
  }
  for (const note of privacy.keyNotes()) logger[note.level](note.message);
  const registry = createModelRegistry({
    sealKeys: privacy.sealKeys(),
    observe: (m) => metrics.batcherObserver(m.name, m.version),
    onWorkerError: (error) => logger.error({ err: error }, "model worker failed"),
  });
  let ready = false;
  let app: FastifyInstance | undefined;
  let store: ReturnType<typeof createDeploymentStore> | undefined;
  let keys: KeyStore | undefined;
  /** An admin key made at the first start of a server that requires identities (shown once). */
  let firstKey: (IssuedKey & { readonly file: string }) | undefined;
  let deployments: DeploymentManager | undefined;
  try {
    store = createDeploymentStore(config.data_dir);
    deployments = createDeploymentManager({
      registry,
      store,
      ledger: writer,
      device: config.device,
      startActor: osUser(),
      onLoaded: (model) =>
        logger.info(
          {
            model: model.manifest.name,
            version: model.manifest.version,
            format: model.manifest.artifact.format,
          },
          "model loaded",
        ),
    });
    await deployments.start(config.models);
    keys = openKeyStore(config.data_dir);
    if (config.auth.required && keys.count() === 0) {
      const made = keys.create({ name: "first-admin", role: "admin", createdBy: "warden (first start)" });
      const file = firstKeyPath(config.data_dir);
      try {
        writeFirstKey(file, made.key);
      } catch (error) {
        // Nobody could ever use a key whose secret was not handed over: undone, so the next start makes one.
        keys.discard(made.id);
        throw new WardenError(
          "WARDEN_ERR_CONFIG_INVALID",
          `cannot write the first admin API key to ${file}: ${(error as Error).message}`,
          {
            details: [
              {
                field: "data_dir",
                expected: `a data folder where ${file} can be made (a regular file, mode 0600)`,
                found: (error as Error).message,
              },
            ],
          },
        );
      }
      firstKey = { ...made, file };
    }
    const jwt = config.auth.jwt === undefined ? undefined : createJwtVerifier(config.auth.jwt);
    app = await buildApp({
      access: { required: config.auth.required, keys, jwt },
      config,
      registry,
      deployments,
      ledger: {
        write: (entry, attachment) => writer.write(entry, attachment),
        backlogged: () => writer.backlogged(),
        get: (id) => ledger.get(id),
        scan: (options) => ledger.scan(options),
        linked: (decisionId, afterSeq, limit) => ledger.linked(decisionId, afterSeq, limit),
        latestLinked: (decisionId, kind) => ledger.latestLinked(decisionId, kind),
        reviewSources: (afterSeq, limit) => ledger.reviewSources(afterSeq, limit),
        // A decision is answered once journaled; its commit follows within a turn or two.
        committed: () => writer.drain(),
      },
      metrics,
      logger,
      privacy,
      ...(options.canRevealSubject ? { canRevealSubject: options.canRevealSubject } : {}),
      ...(options.rateLimitKey ? { rateLimitKey: options.rateLimitKey } : {}),
      ...(options.review ? { review: options.review } : {}),
      ...(options.now ? { now: options.now } : {}),
      // Ready while serving and the ledger can record: a decision that cannot be recorded is not served.
      // Not while the ledger is behind (decisions are then refused): a load balancer sends them elsewhere.
      isReady: () =>
        ready &&
        writer.healthy() &&
        !writer.backlogged() &&
        registry.list().every((m) => m.executor.isReady()),
    });
    await app.listen({ host: config.host, port: config.port }).catch((error: NodeJS.ErrnoException) => {
      const reason =
        error.code === "EADDRINUSE"
          ? "the address is already in use: stop the other server or choose another --port"
          : error.code === "EACCES"
            ? "permission denied: ports below 1024 need privileges; choose another --port"
            : error.code === "EADDRNOTAVAIL"
              ? "no such address on this machine: check --host"
              : error.message;
      throw new WardenError(
        "WARDEN_ERR_CONFIG_INVALID",
        `cannot listen on ${config.host}:${config.port}: ${reason}`,
        {
          cause: error,
        },
      );
    });
  } catch (error) {
    await app?.close();
    await registry.close();
    store?.close();
    keys?.close();
    privacy.close();
    await writer.close();
    await ledger.close();
    throw error;
  }
  ready = true;
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  let closing: Promise<void> | undefined;
  const runningApp = app;
  const runningStore = store;
  const runningKeys = keys!;
  return {
    app: runningApp,
    registry,
    location,
    deployments,
    ledger,
    writer,
    metrics,
    privacy,
    alerts: runningApp.wardenAlerts,
    keys: runningKeys,
    ...(firstKey !== undefined ? { firstKey } : {}),
    url,
    close() {
      closing ??= (async () => {
        ready = false;
        await runningApp.close();
        await registry.close();
        runningStore.close();
        runningKeys.close();
        privacy.close();
        // The reader goes first so that the writer's connection is the last one: closing it checkpoints the
        // WAL into ledger.sqlite, leaving one self-contained file.
        await ledger.close();
        await writer.close();
        const records = writer.stats().entriesWritten;
        logger.info({ records }, "stopped; ledger committed (records written by this run)");
      })();
      return closing;
    },
  };
}

/** The operating-system user, for changes made by the server itself (its configuration at start-up). */
export function osUser(): string {
  try {
    return userInfo().username || "unknown";
  } catch {
    return process.env.USER ?? process.env.USERNAME ?? "unknown";
  }
}

/** Where the first start writes the admin key it made (owner-only), so that no secret goes to the output. */
export function firstKeyPath(dataDir: string): string {
  return join(dataDir, "keys", "first-admin.key");
}

function writeFirstKey(path: string, key: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Durable before the server answers with it; a file left by an earlier first start (its key store since
  // removed) is replaced, never written through.
  writeFileAtomically(path, `${key}\n`, 0o600, true);
}
