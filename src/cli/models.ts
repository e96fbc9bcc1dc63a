import { userInfo } from "node:os";
import { resolve } from "node:path";
import type { Command } from "commander";
import { ERRORS, type ErrorCode, WardenError } from "../errors/index.js";
import type { DeploymentView } from "../registry/index.js";
import { TRAFFIC_POLICIES } from "../registry/index.js";
import { type CliIo, choiceOption, EXIT, UsageError } from "./index.js";

interface Common {
  url: string;
  actor?: string;
  apiKey?: string;
}

function defaultActor(): string {
  try {
    return userInfo().username || "unknown";
  } catch {
    return process.env.USER ?? "unknown";
  }
}

/** Call the admin API; a refused change becomes the server's WardenError (exit 1). */
async function callAdmin(
  options: Common,
  method: "GET" | "POST" | "PUT",
  path: string,
  body?: unknown,
): Promise<unknown> {
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw new UsageError(
      `--url must be a URL such as http://127.0.0.1:8080; got ${JSON.stringify(options.url)}`,
    );
  }
  const url = new URL(path, base);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        "x-warden-actor": options.actor ?? defaultActor(),
        ...(apiKeyOf(options) !== undefined ? { authorization: `Bearer ${apiKeyOf(options)}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new WardenError(
      "WARDEN_ERR_INTERNAL",
      `cannot reach Warden at ${base.origin}: ${cause?.code ?? cause?.message ?? (error as Error).message} (is \`warden serve\` running? see --url)`,
    );
  }
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const problem = json as
      | {
          error?: string;
          code?: string;
          details?: { field: string; expected: string; found: string; fix?: string }[];
        }
      | undefined;
    const code = (
      problem?.code && problem.code in ERRORS ? problem.code : "WARDEN_ERR_INTERNAL"
    ) as ErrorCode;
    throw new WardenError(code, `${problem?.error ?? text.slice(0, 200)} (HTTP ${response.status})`, {
      details: problem?.details ?? [],
    });
  }
  return json;
}

function describe(view: DeploymentView): string {
  const policy = view.policy === "canary" ? `canary ${view.canary_percent}% to candidate` : view.policy;
  const lines = [
    `${view.model}: production ${view.production ?? "-"}, candidate ${view.candidate ?? "-"}, policy ${policy}`,
  ];
  for (const v of view.versions) {
    const aliases = [
      v.version === view.production ? "production" : "",
      v.version === view.candidate ? "candidate" : "",
    ].filter(Boolean);
    lines.push(
      `  ${v.version.padEnd(12)} ${(v.loaded ? "loaded" : "unloaded").padEnd(9)} ${aliases.join(",").padEnd(11)} ${v.manifest_path}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** `warden models list|register|promote|rollback|policy`: the admin API of a running server. */
export function modelsCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const models = program
    .command("models")
    .description("Model versions and deployments of a running server (its admin API)");
  const common = (command: Command) =>
    command
      .option("--url <url>", "the server", "http://127.0.0.1:8080")
      .option(
        "--actor <name>",
        "who makes the change where the server takes no identities (default: your user name)",
      )
      .option("--api-key <key>", "an admin API key (default: the WARDEN_API_KEY environment variable)")
      .option("--json", "print the server's JSON answer");
  const print = (view: DeploymentView, json: boolean | undefined) =>
    io.stdout(json ? `${JSON.stringify(view, null, 2)}\n` : describe(view));
  const path = (model: string, rest = "") => `/v1/admin/models/${encodeURIComponent(model)}${rest}`;

  common(models.command("list").description("Every registered model: aliases, policy, versions")).action(
    (options: Common & { json?: boolean }) =>
      run(async () => {
        const { models: views } = (await callAdmin(options, "GET", "/v1/admin/models")) as {
          models: DeploymentView[];
        };
        if (options.json) io.stdout(`${JSON.stringify(views, null, 2)}\n`);
        else if (views.length === 0) io.stdout("no models registered\n");
        else for (const view of views) io.stdout(describe(view));
        return EXIT.ok;
      }),
  );
  common(
    models
      .command("register")
      .description("Register and load a version from a manifest (the path is read by the server)")
      .argument("<model>", "model name")
      .argument("<manifest>", "manifest path (made absolute here)")
      .option(
        "--alias <alias>",
        "also point production or candidate at it",
        choiceOption("--alias", ["production", "candidate"] as const),
      )
      .option("--reason <text>", "why (recorded)"),
  ).action(
    (
      model: string,
      manifest: string,
      options: Common & { json?: boolean; alias?: string; reason?: string },
    ) =>
      run(async () => {
        const view = (await callAdmin(options, "POST", path(model, "/versions"), {
          manifest: resolve(manifest),
          ...(options.alias ? { alias: options.alias } : {}),
          ...(options.reason ? { reason: options.reason } : {}),
        })) as DeploymentView;
        print(view, options.json);
        return EXIT.ok;
      }),
  );
  for (const [action, description] of [
    ["promote", "Make the candidate the production version"],
    ["rollback", "Return production to the version it replaced"],
  ] as const) {
    common(
      models
        .command(action)
        .description(description)
        .argument("<model>", "model name")
        .option("--reason <text>", "why (recorded)"),
    ).action((model: string, options: Common & { json?: boolean; reason?: string }) =>
      run(async () => {
        const view = (await callAdmin(options, "POST", path(model, `/${action}`), {
          ...(options.reason ? { reason: options.reason } : {}),
        })) as DeploymentView;
        print(view, options.json);
        return EXIT.ok;
      }),
    );
  }
  common(
    models
      .command("policy")
      .description("Set the traffic policy: single, canary --percent N, or shadow")
      .argument("<model>", "model name")
      .argument("<policy>", TRAFFIC_POLICIES.join(" | "))
      .option("--percent <n>", "canary: the candidate's share of subjects, 0 to 100")
      .option("--reason <text>", "why (recorded)"),
  ).action(
    (
      model: string,
      policy: string,
      options: Common & { json?: boolean; percent?: string; reason?: string },
    ) =>
      run(async () => {
        if (!(TRAFFIC_POLICIES as readonly string[]).includes(policy)) {
          throw new UsageError(
            `policy must be one of ${TRAFFIC_POLICIES.join(", ")}; got ${JSON.stringify(policy)}`,
          );
        }
        let percent: number | undefined;
        if (options.percent !== undefined) {
          percent = Number(options.percent);
          if (!/^\d+(\.\d+)?$/.test(options.percent) || percent > 100) {
            throw new UsageError(
              `--percent must be a number from 0 to 100; got ${JSON.stringify(options.percent)}`,
            );
          }
        }
        if (policy === "canary" && percent === undefined)
          throw new UsageError("a canary policy needs --percent");
        if (policy !== "canary" && percent !== undefined)
          throw new UsageError("--percent goes with canary only");
        const view = (await callAdmin(options, "PUT", path(model, "/policy"), {
          policy,
          ...(percent !== undefined ? { canary_percent: percent } : {}),
          ...(options.reason ? { reason: options.reason } : {}),
        })) as DeploymentView;
        print(view, options.json);
        return EXIT.ok;
      }),
  );
}

/** The admin key: --api-key, else WARDEN_API_KEY (absent: none is sent). */
function apiKeyOf(options: { apiKey?: string }): string | undefined {
  const key = options.apiKey ?? process.env.WARDEN_API_KEY;
  return key === undefined || key === "" ? undefined : key;
}
