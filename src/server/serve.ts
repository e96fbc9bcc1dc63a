import type { FastifyInstance } from "fastify";
import pino, { type Logger } from "pino";
import type { ServerConfig } from "../config/index.js";
import {
  createLedgerWriter,
  type LedgerStore,
  type LedgerWriter,
  openSqliteLedger,
} from "../ledger/index.js";
import { createModelRegistry, type ModelRegistry } from "../registry/index.js";
import { buildApp } from "./app.js";
import { createMetrics, type WardenMetrics } from "./metrics.js";

/** A running Warden server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  readonly registry: ModelRegistry;
  readonly ledger: LedgerStore;
  readonly writer: LedgerWriter;
  readonly metrics: WardenMetrics;
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
  options: { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? pino({ level: config.log_level });
  const ledger = openSqliteLedger(config.data_dir, { synchronous: config.ledger.synchronous });
  const metrics = createMetrics();
  const writer = createLedgerWriter(ledger, {
    maxBatch: config.ledger.max_batch,
    onCommit: (records) => {
      for (const r of records) metrics.ledgerWrites.inc({ kind: r.kind });
    },
  });
  const registry = createModelRegistry({
    observe: (m) => metrics.batcherObserver(m.name, m.version),
    onWorkerError: (error) => logger.error({ err: error }, "model worker failed"),
  });
  let ready = false;
  let app: FastifyInstance | undefined;
  try {
    for (const path of config.models) {
      const model = await registry.load(path, { device: config.device });
      logger.info(
        {
          model: model.manifest.name,
          version: model.manifest.version,
          format: model.manifest.artifact.format,
        },
        "model loaded",
      );
    }
    app = await buildApp({
      config,
      registry,
      ledger: { write: (entry) => writer.write(entry), get: (id) => ledger.get(id) },
      metrics,
      logger,
      isReady: () => ready,
    });
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await app?.close();
    await registry.close();
    await writer.close();
    throw error;
  }
  ready = true;
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  let closing: Promise<void> | undefined;
  const runningApp = app;
  return {
    app: runningApp,
    registry,
    ledger,
    writer,
    metrics,
    url,
    close() {
      closing ??= (async () => {
        ready = false;
        await runningApp.close();
        await writer.close();
        await registry.close();
        logger.info({ records: ledger.count() }, "stopped; ledger committed");
      })();
      return closing;
    },
  };
}
