import { existsSync } from "node:fs";
import type { Command } from "commander";
import {
  DEVICES,
  type Device,
  LOG_LEVELS,
  parseServerConfig,
  readServerConfigFile,
} from "../config/index.js";
import { firstKeyPath, startServer } from "../server/index.js";
import { type CliIo, choiceOption, EXIT, intOption } from "./index.js";
import { DEMO_MODELS, DEMO_REQUEST } from "./paths.js";

interface ServeOptions {
  config?: string;
  model?: string[];
  port?: number;
  host?: string;
  dataDir?: string;
  logLevel?: (typeof LOG_LEVELS)[number];
  device?: Device;
}

/**
 * A curl line a user can paste to get a first decision from the demo model. `key` is a shell expression for
 * the API key (never the key itself: the banner may be collected with the logs).
 */
function curlExample(url: string, model: string, key: string | undefined): string {
  const auth = key === undefined ? "" : ` -H "authorization: Bearer ${key}"`;
  return `curl -s -X POST ${url}/v1/models/${model}/decisions -H 'content-type: application/json'${auth} -d '${JSON.stringify(DEMO_REQUEST)}'`;
}

/** A single-quoted shell word. */
const shellQuote = (text: string): string => `'${text.replace(/'/g, "'\\''")}'`;

/** `warden serve`: start the HTTP server (bundled demo models when no model is given). */
export function serveCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  program
    .command("serve")
    .description("Serve models over HTTP (Open Inference Protocol v2 and the decision API)")
    .option("--config <file>", "server configuration (YAML): host, port, data_dir, models, ...")
    .option(
      "--model <manifest>",
      "a model manifest to serve (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option("--port <port>", "TCP port (default 8080; 0 picks a free one)", intOption("--port", 0, 65535))
    .option("--host <host>", "address to bind (default 127.0.0.1)")
    .option("--data-dir <dir>", "folder for the ledger (default ./warden-data)")
    .option(
      "--device <device>",
      "run every model on cpu or cuda (overrides the manifests' runtime.device)",
      choiceOption("--device", DEVICES),
    )
    .option(
      "--log-level <level>",
      `log level: ${LOG_LEVELS.join(", ")}`,
      choiceOption("--log-level", LOG_LEVELS),
    )
    .action((options: ServeOptions) =>
      run(async () => {
        const fromFile = options.config ? readServerConfigFile(options.config) : {};
        const raw: Record<string, unknown> = { ...fromFile };
        if (options.port !== undefined) raw.port = options.port;
        if (options.host !== undefined) raw.host = options.host;
        if (options.dataDir !== undefined) raw.data_dir = options.dataDir;
        if (options.logLevel !== undefined) raw.log_level = options.logLevel;
        if (options.device !== undefined) raw.device = options.device;
        if (options.model !== undefined) raw.models = options.model;
        const usingDemo = raw.models === undefined || (Array.isArray(raw.models) && raw.models.length === 0);
        if (usingDemo) raw.models = [...DEMO_MODELS];
        const config = parseServerConfig(raw, options.config ?? "command line");
        const server = await startServer(config);
        try {
          const first = server.registry.list()[0]?.manifest.name ?? "MODEL";
          // Standard output carries the JSON log lines only; what is said to the person goes to standard error.
          io.stderr(
            `Warden ${server.url} serving ${server.registry
              .list()
              .map((m) => `${m.manifest.name}@${m.manifest.version}`)
              .join(", ")}\n`,
          );
          io.stderr(
            `Ledger: ${config.data_dir}  ·  OpenAPI: ${server.url}/openapi.json  ·  Metrics: ${server.url}/metrics\n`,
          );
          let key: string | undefined = !config.auth.required ? undefined : "$WARDEN_API_KEY";
          const keyFile = firstKeyPath(config.data_dir);
          if (server.firstKey !== undefined) {
            // The server keeps only its salted hash; the key itself is in an owner-only file, never in the output.
            key = `$(cat ${shellQuote(keyFile)})`;
            io.stderr(
              `First start: an admin API key was made and written to ${keyFile} (readable by you only). Keep it elsewhere and delete that file.\n` +
                `  Make keys for clients with POST ${server.url}/v1/admin/keys {"name": "...", "role": "client"}.\n`,
            );
          } else if (config.auth.required && existsSync(keyFile)) {
            key = `$(cat ${shellQuote(keyFile)})`;
            io.stderr(
              `The first admin API key is still in ${keyFile}: keep it elsewhere and delete that file.\n`,
            );
          }
          if (usingDemo) io.stderr(`Try:\n  ${curlExample(server.url, first, key)}\n`);
        } catch (error) {
          // Nothing may keep a server running without its signal handlers: stop it, then report.
          await server.close().catch(() => undefined);
          throw error;
        }
        const stoppedCleanly = await new Promise<boolean>((resolve) => {
          const stop = (signal: string) => {
            io.stderr(`${signal}: draining in-flight requests and the ledger queue...\n`);
            server.close().then(
              () => resolve(true),
              (error: unknown) => {
                io.stderr(`warden: error while stopping: ${(error as Error).message}\n`);
                resolve(false);
              },
            );
          };
          process.once("SIGTERM", () => stop("SIGTERM"));
          process.once("SIGINT", () => stop("SIGINT"));
        });
        if (!stoppedCleanly) return EXIT.failure;
        io.stderr("stopped\n");
        return EXIT.ok;
      }),
    );
}
