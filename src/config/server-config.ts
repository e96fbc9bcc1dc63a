import { statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Static, Type as T } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { parseDocument } from "yaml";
import { describeValue, type FieldProblem, formatProblems, WardenError } from "../errors/index.js";
import { MAX_CONFIG_BYTES, readBoundedFile } from "./files.js";
import { schemaProblems } from "./schema-errors.js";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** One token bucket: refilled at rate_per_s tokens a second, holding at most burst. */
const BucketSchema = T.Object(
  {
    rate_per_s: T.Number({
      exclusiveMinimum: 0,
      maximum: 1_000_000,
      default: 10,
      description:
        "requests a second refilled, above 0 and at most 1000000 (fractions allowed: 0.5 is one every 2 s)",
    }),
    burst: T.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 20,
      description: "the most requests at once (the bucket's size), an integer from 1 to 1000000",
    }),
  },
  { additionalProperties: false, default: {}, description: "a mapping of rate_per_s and burst" },
);

export const ServerConfigSchema = T.Object(
  {
    host: T.String({ minLength: 1, default: "127.0.0.1" }),
    port: T.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    data_dir: T.String({ minLength: 1, default: "warden-data", description: "a folder for the ledger" }),
    models: T.Array(T.String({ minLength: 1 }), { default: [], description: "manifest paths" }),
    device: T.Optional(
      T.Unsafe<"cpu" | "cuda">(
        T.Union([T.Literal("cpu"), T.Literal("cuda")], {
          description: "cpu or cuda (overrides every model's runtime.device)",
        }),
      ),
    ),
    body_limit_bytes: T.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024, default: 4 * 1024 * 1024 }),
    max_instances_per_request: T.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
    limits: T.Object(
      {
        header_timeout_ms: T.Integer({
          minimum: 100,
          maximum: 600_000,
          default: 10_000,
          description:
            "milliseconds a client may take to send a request's headers (slow-loris), 100 to 600000",
        }),
        request_timeout_ms: T.Integer({
          minimum: 100,
          maximum: 3_600_000,
          default: 60_000,
          description: "milliseconds a client may take to send a whole request, 100 to 3600000",
        }),
        keep_alive_timeout_ms: T.Integer({
          minimum: 100,
          maximum: 600_000,
          default: 5_000,
          description: "milliseconds an idle keep-alive connection stays open, 100 to 600000",
        }),
        max_header_bytes: T.Integer({
          minimum: 1024,
          maximum: 1_048_576,
          default: 16_384,
          description: "the most bytes of request line and headers (431 above), 1024 to 1048576",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    log_level: T.Unsafe<(typeof LOG_LEVELS)[number]>(
      T.Union(
        LOG_LEVELS.map((l) => T.Literal(l)),
        { default: "info", description: `one of ${LOG_LEVELS.join(", ")}` },
      ),
    ),
    ledger: T.Object(
      {
        synchronous: T.Unsafe<"normal" | "full">(
          T.Union([T.Literal("normal"), T.Literal("full")], {
            default: "normal",
            description: "normal or full",
          }),
        ),
        max_batch: T.Integer({ minimum: 1, maximum: 100_000, default: 512 }),
        max_backlog: T.Integer({
          minimum: 1000,
          maximum: 10_000_000,
          default: 100_000,
          description:
            "most decisions answered and not yet committed; past it, decision requests get 503 WARDEN_ERR_LEDGER_BUSY until the ledger catches up",
        }),
        signing_key: T.Optional(
          T.String({
            minLength: 1,
            description:
              "Ed25519 private key (PKCS#8 PEM) for checkpoints; default <data_dir>/keys/ledger-ed25519.pem, created on first start",
          }),
        ),
        checkpoint_interval_s: T.Integer({
          minimum: 0,
          maximum: 86_400,
          default: 60,
          description: "seconds between signed Merkle checkpoints (0: only when the server stops)",
        }),
        postgres: T.Optional(
          T.Object(
            {
              url: T.String({
                pattern: "^postgres(ql)?://",
                description: "a libpq URL, e.g. postgres://user@host:5432/db",
              }),
              schema: T.String({
                pattern: "^[a-z_][a-z0-9_]{0,62}$",
                default: "warden",
                description: "lower-case letters, digits and _",
              }),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    privacy: T.Object(
      {
        encryption_key_file: T.Optional(
          T.String({
            minLength: 1,
            description:
              "a file holding the AES-256 key for subject_storage: encrypted (default <data_dir>/keys/subject-encryption.key; created, mode 0600, when missing)",
          }),
        ),
        pseudonym_key_file: T.Optional(
          T.String({
            minLength: 1,
            description:
              "a file holding the HMAC-SHA256 key for subject_storage: pseudonymised (default <data_dir>/keys/subject-pseudonym.key; created, mode 0600, when missing)",
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    monitoring: T.Object(
      {
        live: T.Boolean({
          default: true,
          description:
            "true or false: whether decisions feed the live monitors (drift, anomaly rate, performance); false turns them off for this server (the breakers' confidence, error-rate and anomaly signals stay; their drift signal and the monitor routes then see no decisions)",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    extraction: T.Object(
      {
        daily_budget: T.Integer({
          minimum: 0,
          maximum: 1_000_000_000,
          default: 0,
          description: "instances a caller may have decided per model in any 24 hours; 0: no budget",
        }),
        budget_alert_share: T.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.8,
          description: "the share of the budget at which WardenQueryBudget fires, above 0 and at most 1",
        }),
        max_callers: T.Integer({
          minimum: 100,
          maximum: 10_000_000,
          default: 10_000,
          description:
            "caller and model pairs whose budgets and probing windows are kept, the least recently seen forgotten first; 100 to 10000000",
        }),
        probing: T.Object(
          {
            enabled: T.Boolean({ default: true, description: "true or false" }),
            window: T.Integer({
              minimum: 10,
              maximum: 10_000,
              default: 200,
              description: "a caller's latest rows compared, 10 to 10000",
            }),
            share: T.Number({
              exclusiveMinimum: 0,
              maximum: 1,
              default: 0.5,
              description: "the share of near-identical rows at which WardenSystematicProbing fires",
            }),
            min_observations: T.Integer({
              minimum: 1,
              maximum: 10_000,
              default: 50,
              description: "rows before it may fire",
            }),
            tolerance: T.Number({
              minimum: 0,
              maximum: 1,
              default: 0.01,
              description: "numbers closer than this share of the feature's manifest range count as the same",
            }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    auth: T.Object(
      {
        required: T.Boolean({
          default: true,
          description:
            "true or false: whether every route but the health checks, GET /v2 and /openapi.json needs an identity (an API key or a JWT); false only on a closed network",
        }),
        jwt: T.Optional(
          T.Object(
            {
              hs256_secret_file: T.Optional(
                T.String({
                  minLength: 1,
                  description: "a file holding the HS256 secret (at least 32 bytes)",
                }),
              ),
              jwks_file: T.Optional(
                T.String({ minLength: 1, description: "a JWKS file (JSON) of RS256 / ES256 public keys" }),
              ),
              jwks_url: T.Optional(
                T.String({ pattern: "^https?://[^\\s]+$", description: "an https:// URL serving a JWKS" }),
              ),
              issuer: T.Optional(T.String({ minLength: 1, description: "the `iss` tokens must carry" })),
              audience: T.Optional(T.String({ minLength: 1, description: "the `aud` tokens must carry" })),
              clock_skew_s: T.Integer({
                minimum: 0,
                maximum: 600,
                default: 60,
                description: "seconds of clock skew allowed on exp and nbf, 0 to 600",
              }),
              role_claim: T.String({
                minLength: 1,
                default: "role",
                description: "the claim naming the role",
              }),
              models_claim: T.String({
                minLength: 1,
                default: "models",
                description: "the claim listing the models a client may use",
              }),
            },
            {
              additionalProperties: false,
              description:
                "a mapping with exactly one of hs256_secret_file, jwks_file or jwks_url, and optionally issuer, audience, clock_skew_s, role_claim, models_claim",
            },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    alerts: T.Object(
      {
        webhooks: T.Array(
          T.Object(
            {
              url: T.String({
                pattern: "^https?://[^\\s]+$",
                maxLength: 2048,
                description: "an http:// or https:// URL that takes Alertmanager webhook payloads",
              }),
              timeout_ms: T.Integer({
                minimum: 1,
                maximum: 60_000,
                default: 5000,
                description: "milliseconds one attempt may take, 1 to 60000",
              }),
              max_attempts: T.Integer({
                minimum: 1,
                maximum: 10,
                default: 4,
                description: "attempts per notification (1 = no retry), 1 to 10",
              }),
            },
            { additionalProperties: false, description: "a mapping of url, timeout_ms and max_attempts" },
          ),
          { default: [], maxItems: 16, description: "a list of at most 16 webhooks" },
        ),
        backoff_ms: T.Integer({
          minimum: 1,
          maximum: 60_000,
          default: 500,
          description: "milliseconds before the first retry, doubled at each one (at most 30 s)",
        }),
        anomaly_rate: T.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.1,
          description:
            "the live window's anomaly rate above which WardenAnomalyRate fires, above 0 and at most 1",
        }),
        external_url: T.Optional(
          T.String({
            pattern: "^https?://[^\\s]+$",
            description: "this server's URL as alerts name it (externalURL, generatorURL)",
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    rate_limits: T.Object(
      {
        enabled: T.Boolean({
          default: false,
          description: "true or false: whether requests are rate limited",
        }),
        identity: T.Unsafe<"ip">(
          T.Union([T.Literal("ip")], {
            default: "ip",
            description: "ip (the client address; API keys come with authentication)",
          }),
        ),
        backend: T.Unsafe<"memory" | "redis">(
          T.Union([T.Literal("memory"), T.Literal("redis")], {
            default: "memory",
            description: "memory (this process) or redis (one budget shared by every replica)",
          }),
        ),
        default: BucketSchema,
        per_model: T.Record(T.String(), BucketSchema, {
          default: {},
          description: "a mapping of model name to {rate_per_s, burst}",
        }),
        memory: T.Object(
          {
            max_buckets: T.Integer({
              minimum: 1,
              maximum: 100_000_000,
              default: 100_000,
              description:
                "the most buckets kept in memory, 1 to 100000000 (least recently used dropped first)",
            }),
          },
          { additionalProperties: false, default: {} },
        ),
        redis: T.Optional(
          T.Object(
            {
              url: T.String({
                pattern: "^rediss?://[^\\s]+$",
                maxLength: 2048,
                description: "a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0",
              }),
              key_prefix: T.String({
                minLength: 1,
                maxLength: 128,
                default: "warden:rl:",
                description: "a prefix of 1 to 128 characters for the limiter's Redis keys",
              }),
              fail: T.Unsafe<"open" | "closed">(
                T.Union([T.Literal("open"), T.Literal("closed")], {
                  default: "open",
                  description: "open (allow requests while Redis is unreachable) or closed (answer 503)",
                }),
              ),
              timeout_ms: T.Integer({
                minimum: 1,
                maximum: 10_000,
                default: 100,
                description: "milliseconds a Redis check may take before it counts as failed, 1 to 10000",
              }),
            },
            { additionalProperties: false, description: "a mapping of url, key_prefix, fail and timeout_ms" },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

/** The privacy section with its key paths resolved (defaults inside the data folder). */
export interface PrivacyConfig {
  readonly encryption_key_file: string;
  readonly pseudonym_key_file: string;
}

/** Validated, frozen server configuration (paths resolved to absolute). */
export type ServerConfig = Readonly<Omit<Static<typeof ServerConfigSchema>, "privacy">> & {
  readonly privacy: PrivacyConfig;
};

/**
 * Validate a server configuration object (from `warden.yaml` and/or flags), apply defaults, resolve
 * relative paths against `baseDir`, and freeze it.
 */
export function parseServerConfig(raw: unknown, source: string, baseDir = process.cwd()): ServerConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new WardenError("WARDEN_ERR_CONFIG_INVALID", `${source}: expected a mapping of settings`, {
      details: [
        {
          field: `${source}#/`,
          expected: "a mapping (host, port, data_dir, models, ...)",
          found: describeValue(raw),
        },
      ],
    });
  }
  const withDefaults = Value.Default(ServerConfigSchema, structuredClone(raw));
  const problems = schemaProblems(ServerConfigSchema, withDefaults);
  if (problems.length === 0) {
    const checked = withDefaults as Static<typeof ServerConfigSchema>;
    problems.push(
      ...urlProblems(checked),
      ...rateLimitProblems(checked),
      ...jwtProblems(checked),
      ...limitProblems(checked),
    );
  }
  if (problems.length > 0) {
    throw new WardenError(
      "WARDEN_ERR_CONFIG_INVALID",
      `${source}: invalid configuration\n${formatProblems(problems)}`,
      {
        details: problems.map((p) => ({ ...p, field: `${source}#${p.field}` })),
      },
    );
  }
  const config = withDefaults as Static<typeof ServerConfigSchema>;
  const dataDir = resolve(baseDir, config.data_dir);
  return Object.freeze({
    ...config,
    data_dir: dataDir,
    privacy: Object.freeze({
      encryption_key_file: resolve(
        baseDir,
        config.privacy.encryption_key_file ?? join(dataDir, "keys", "subject-encryption.key"),
      ),
      pseudonym_key_file: resolve(
        baseDir,
        config.privacy.pseudonym_key_file ?? join(dataDir, "keys", "subject-pseudonym.key"),
      ),
    }),
    models: Object.freeze(config.models.map((m) => resolve(baseDir, m))) as string[],
    auth: Object.freeze({
      ...config.auth,
      ...(config.auth.jwt !== undefined
        ? {
            jwt: Object.freeze({
              ...config.auth.jwt,
              ...(config.auth.jwt.hs256_secret_file !== undefined
                ? { hs256_secret_file: resolve(baseDir, config.auth.jwt.hs256_secret_file) }
                : {}),
              ...(config.auth.jwt.jwks_file !== undefined
                ? { jwks_file: resolve(baseDir, config.auth.jwt.jwks_file) }
                : {}),
            }),
          }
        : {}),
    }),
    ledger: Object.freeze({
      ...config.ledger,
      ...(config.ledger.signing_key !== undefined
        ? { signing_key: resolve(baseDir, config.ledger.signing_key) }
        : {}),
    }),
  });
}

/** Node refuses a header timeout longer than the request timeout. */
function limitProblems(config: Static<typeof ServerConfigSchema>): FieldProblem[] {
  const { header_timeout_ms: headers, request_timeout_ms: request } = config.limits;
  if (headers <= request) return [];
  return [
    {
      field: "/limits/header_timeout_ms",
      expected: `at most request_timeout_ms (${request})`,
      found: describeValue(headers),
      fix: "the headers are part of the request: lower header_timeout_ms or raise request_timeout_ms",
    },
  ];
}

/** The JWT section names exactly one source of keys. */
function jwtProblems(config: Static<typeof ServerConfigSchema>): FieldProblem[] {
  const jwt = config.auth.jwt;
  if (jwt === undefined) return [];
  const sources = [jwt.hs256_secret_file, jwt.jwks_file, jwt.jwks_url].filter((v) => v !== undefined);
  if (sources.length === 1) return [];
  return [
    {
      field: "/auth/jwt",
      expected: "exactly one of hs256_secret_file, jwks_file or jwks_url",
      found: sources.length === 0 ? "none" : `${sources.length} of them`,
      fix: "keep the one your identity provider uses: a shared HS256 secret, or its RS256/ES256 public keys",
    },
  ];
}

/** URLs the schema's pattern lets through but `new URL` refuses (a bad port, an empty host, ...). */
function urlProblems(config: Static<typeof ServerConfigSchema>): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const check = (field: string, url: string) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      problems.push({
        field,
        expected: "a valid http:// or https:// URL",
        found: describeValue(url),
        fix: "write the receiver's full URL, e.g. http://alertmanager:9093/api/v2/alerts or https://hooks.example.com/warden",
      });
      return;
    }
    if (parsed.username !== "" || parsed.password !== "") {
      // fetch refuses such URLs (so nothing would ever be delivered), and the refusal would log the password.
      problems.push({
        field,
        expected: "a URL without a user name or password",
        found: "credentials in the URL (not shown)",
        fix: "give the receiver a URL without credentials (a token in the path or query works, as most webhook receivers take one)",
      });
    }
  };
  config.alerts.webhooks.forEach((w, i) => {
    check(`/alerts/webhooks/${i}/url`, w.url);
  });
  if (config.alerts.external_url !== undefined) check("/alerts/external_url", config.alerts.external_url);
  return problems;
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** What the schema cannot say about `rate_limits`: redis settings for the redis backend, model names. */
function rateLimitProblems(config: Static<typeof ServerConfigSchema>): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const limits = config.rate_limits;
  if (limits.backend === "redis" && limits.redis === undefined) {
    problems.push({
      field: "/rate_limits/redis",
      expected: "a mapping of url, key_prefix, fail and timeout_ms (backend is redis)",
      found: "missing",
      fix: 'add redis: { url: "redis://127.0.0.1:6379" }, or set backend: memory',
    });
  }
  if (limits.redis !== undefined) {
    try {
      new URL(limits.redis.url);
    } catch {
      problems.push({
        field: "/rate_limits/redis/url",
        expected: "a valid redis:// or rediss:// URL",
        found: describeValue(limits.redis.url),
        fix: "write it as redis://[user:password@]host:port[/db], e.g. redis://127.0.0.1:6379/0",
      });
    }
  }
  for (const name of Object.keys(limits.per_model)) {
    if (!MODEL_NAME.test(name)) {
      problems.push({
        field: `/rate_limits/per_model/${name}`,
        expected: "a model name (a letter or digit, then letters, digits, _, . or -; at most 128)",
        found: describeValue(name),
        fix: "use the model's `name` from its manifest",
      });
    }
  }
  return problems;
}

/**
 * Read a YAML configuration file; paths in it are relative to the file's folder. The file may be a pipe
 * (`--config <(...)`): paths in it are then relative to the working folder, since a pipe's folder (/dev/fd)
 * holds nothing of the user's.
 */
export function readServerConfigFile(path: string): Record<string, unknown> {
  const file = resolve(path);
  let fromPipe = false;
  try {
    fromPipe = statSync(file).isFIFO();
  } catch {
    // reported by the read below
  }
  let text: string;
  try {
    text = readBoundedFile(file, MAX_CONFIG_BYTES, { pipes: true }).toString("utf8");
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_CONFIG_INVALID",
      `${file}: cannot read the configuration (${(error as Error).message})`,
    );
  }
  const document = parseDocument(text);
  if (document.errors.length > 0) {
    throw new WardenError(
      "WARDEN_ERR_CONFIG_INVALID",
      `${file}: not valid YAML: ${document.errors[0]!.message.split("\n")[0]}`,
    );
  }
  const raw = document.toJS() as unknown;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new WardenError(
      "WARDEN_ERR_CONFIG_INVALID",
      `${file}: expected a mapping of settings, found ${describeValue(raw)}`,
    );
  }
  const base = fromPipe ? process.cwd() : dirname(file);
  const out = { ...(raw as Record<string, unknown>) };
  if (typeof out.data_dir === "string") out.data_dir = resolve(base, out.data_dir);
  if (typeof out.privacy === "object" && out.privacy !== null && !Array.isArray(out.privacy)) {
    const privacy = { ...(out.privacy as Record<string, unknown>) };
    for (const key of ["encryption_key_file", "pseudonym_key_file"]) {
      if (typeof privacy[key] === "string") privacy[key] = resolve(base, privacy[key] as string);
    }
    out.privacy = privacy;
  }
  if (Array.isArray(out.models))
    out.models = out.models.map((m) => (typeof m === "string" ? resolve(base, m) : m));
  return out;
}
