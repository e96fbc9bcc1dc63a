import type {
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteHandlerMethod,
  RouteShorthandOptions,
} from "fastify";
import type { FeatureSpec, Manifest } from "../config/index.js";
import type { InstanceInput } from "../decision/index.js";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import type { LoadedModel } from "../registry/index.js";
import { type RouteContext, SERVER_NAME, SERVER_VERSION } from "./app.js";
import { callerOf } from "./extraction.js";
import { binaryAnswer, HEADER_LENGTH, parseInferBody } from "./oip-binary.js";
import { errorResponses, pathParams } from "./routes-decisions.js";

/** Open Inference Protocol v2 tensor datatypes. */
export const OIP_DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;
type Datatype = (typeof OIP_DATATYPES)[number];

/** Optional fields may also be null (clients that serialise unset fields as null, such as pydantic models). */
interface InferInput {
  name: string;
  shape: number[];
  datatype: Datatype;
  data: unknown[];
  parameters?: Record<string, unknown> | null;
}
interface InferBody {
  id?: string | null;
  parameters?: Record<string, unknown> | null;
  inputs: InferInput[];
  outputs?: { name: string; parameters?: Record<string, unknown> | null }[] | null;
}

const TensorSchema = {
  type: "object",
  properties: {
    name: { type: "string", minLength: 1 },
    shape: { type: "array", items: { type: "integer", minimum: 0 } },
    datatype: { type: "string", enum: [...OIP_DATATYPES] },
    parameters: { type: ["object", "null"] },
    data: { type: "array" },
  },
  required: ["name", "shape", "datatype", "data"],
  additionalProperties: false,
} as const;

const InferBodySchema = {
  type: "object",
  description:
    "Either one tensor per feature (shape [N] or [N,1]; BYTES for categories, BOOL for booleans) or a single [N, F] numeric tensor in the model's encoding (categories as codes).",
  properties: {
    id: { type: ["string", "null"], description: "Echoed in the answer (null: none)" },
    parameters: { type: ["object", "null"] },
    inputs: { type: "array", items: TensorSchema, minItems: 1 },
    outputs: {
      type: ["array", "null"],
      items: {
        type: "object",
        properties: { name: { type: "string" }, parameters: { type: ["object", "null"] } },
        required: ["name"],
        additionalProperties: false,
      },
    },
  },
  required: ["inputs"],
  additionalProperties: false,
} as const;

/** The values each integer datatype holds (64-bit ones: as far as JSON numbers are exact). */
const INTEGER_RANGES: ReadonlyMap<Datatype, readonly [number, number]> = new Map<
  Datatype,
  readonly [number, number]
>([
  ["UINT8", [0, 255]],
  ["UINT16", [0, 65_535]],
  ["UINT32", [0, 4_294_967_295]],
  ["UINT64", [0, Number.MAX_SAFE_INTEGER]],
  ["INT8", [-128, 127]],
  ["INT16", [-32_768, 32_767]],
  ["INT32", [-2_147_483_648, 2_147_483_647]],
  ["INT64", [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]],
]);

function featureDatatype(f: FeatureSpec): Datatype {
  return f.type === "category"
    ? "BYTES"
    : f.type === "boolean"
      ? "BOOL"
      : f.type === "integer"
        ? "INT64"
        : "FP64";
}

/** The outputs a model's answers carry (a model that discloses labels only sends no scores). */
function outputNames(m: Manifest): string[] {
  const all =
    m.task === "regression"
      ? ["score", "decision_id"]
      : ["probabilities", "score", "decision", "decision_id"];
  return m.disclosure.scores === "label" ? all.filter((n) => !WITHHELD_BY_LABEL.has(n)) : all;
}

/** Outputs `policy.disclosure.scores: label` withholds. */
const WITHHELD_BY_LABEL = new Set(["probabilities", "score"]);

function modelMetadata(model: LoadedModel, versions: readonly string[]) {
  const m = model.manifest;
  const classes = m.output.labels?.length ?? 2;
  const shapes: Record<string, { datatype: string; shape: number[] }> = {
    probabilities: { datatype: "FP64", shape: [-1, classes] },
    score: { datatype: "FP64", shape: [-1] },
    decision: { datatype: "BYTES", shape: [-1] },
    decision_id: { datatype: "BYTES", shape: [-1] },
  };
  const outputs = outputNames(m).map((name) => ({ name, ...shapes[name]! }));
  return {
    name: m.name,
    versions,
    platform: m.artifact.format === "onnx" ? "onnxruntime_onnx" : "xgboost_json",
    inputs: m.features.map((f) => ({
      name: f.name,
      datatype: featureDatatype(f),
      shape: [-1, 1],
      parameters: { sensitive: f.sensitive, nullable: f.nullable },
    })),
    outputs,
    parameters: { task: m.task, risk_tier: m.risk_tier, labels: m.output.labels ?? null },
  };
}

/**
 * Tensor data may come flat (the protocol's form) or nested as the shape says, every list at a level as long
 * as that dimension; anything else (ragged lists, a mix of lists and elements, nesting deeper than the rank)
 * is refused (undefined). Level by level, so a hostile body cannot make it recurse.
 */
function flatten(data: unknown[], shape: readonly number[]): unknown[] | undefined {
  if (!data.some(Array.isArray)) return data;
  let level = data;
  for (let depth = 0; depth < shape.length; depth++) {
    const last = depth === shape.length - 1;
    if (last) return level.some(Array.isArray) ? undefined : level;
    const next: unknown[] = [];
    for (const item of level) {
      if (!Array.isArray(item) || item.length !== shape[depth + 1]) return undefined;
      for (const inner of item) next.push(inner);
    }
    level = next;
  }
  return undefined;
}

function checkElement(datatype: Datatype, value: unknown): boolean {
  if (value === null) return true; // Warden extension: null marks a missing value of a nullable feature.
  if (datatype === "BOOL") return typeof value === "boolean";
  if (datatype === "BYTES") return typeof value === "string";
  if (typeof value !== "number" || !Number.isFinite(value)) return false;
  const range = INTEGER_RANGES.get(datatype);
  return range === undefined || (Number.isInteger(value) && value >= range[0] && value <= range[1]);
}

function elementExpected(datatype: Datatype): string {
  const range = INTEGER_RANGES.get(datatype);
  if (range !== undefined) return `an integer from ${range[0]} to ${range[1]} (${datatype})`;
  if (datatype === "BOOL") return "true or false (BOOL)";
  if (datatype === "BYTES") return "a string (BYTES)";
  return `a finite number (${datatype})`;
}

/** Decode OIP input tensors into decision instances, listing every problem. */
export function decodeTensors(manifest: Manifest, inputs: readonly InferInput[]): InstanceInput[] {
  const problems: FieldProblem[] = [];
  const byName = new Map(manifest.features.map((f) => [f.name, f]));
  const columns = new Map<string, unknown[]>();
  let rows: number | undefined;
  const single = inputs.length === 1 && !byName.has(inputs[0]!.name);
  inputs.forEach((tensor, t) => {
    const at = `inputs[${t}]`;
    const data =
      tensor.data.some(Array.isArray) && tensor.data.length !== tensor.shape[0]
        ? undefined
        : flatten(tensor.data, tensor.shape);
    if (data === undefined) {
      problems.push({
        field: `${at}.data`,
        expected: `a flat list, or lists nested as the shape ${JSON.stringify(tensor.shape).slice(0, 80)} says`,
        found: "lists of other lengths or depths",
      });
      return;
    }
    const expectedLength = tensor.shape.reduce((a, b) => a * b, 1);
    if (data.length !== expectedLength) {
      problems.push({
        field: `${at}.data`,
        expected: `${expectedLength} elements (shape ${JSON.stringify(tensor.shape)})`,
        found: `${data.length} elements`,
      });
      return;
    }
    const bad = data.findIndex((v) => !checkElement(tensor.datatype, v));
    if (bad >= 0) {
      problems.push({
        field: `${at}.data[${bad}]`,
        expected: elementExpected(tensor.datatype),
        found: describeValue(data[bad]),
      });
      return;
    }
    if (single) {
      const width = manifest.modelFeatures.length;
      if (tensor.shape.length !== 2 || tensor.shape[1] !== width || tensor.datatype === "BYTES") {
        problems.push({
          field: `${at}`,
          expected: `a numeric tensor of shape [N, ${width}] (the model's features in manifest order), or one tensor per feature named ${manifest.modelFeatures
            .slice(0, 3)
            .map((f) => f.name)
            .join(", ")}, ...`,
          found: `${tensor.name}: ${tensor.datatype} ${JSON.stringify(tensor.shape)}`,
        });
        return;
      }
      rows = tensor.shape[0];
      manifest.modelFeatures.forEach((f, j) => {
        columns.set(
          f.name,
          Array.from({ length: rows! }, (_, r) => data[r * width + j]),
        );
      });
      return;
    }
    const spec = byName.get(tensor.name);
    if (spec === undefined) {
      problems.push({
        field: `${at}.name`,
        expected: `a feature of ${manifest.name}`,
        found: describeValue(tensor.name),
        fix: `the features are ${manifest.features.map((f) => f.name).join(", ")}`,
      });
      return;
    }
    if (columns.has(tensor.name)) {
      problems.push({ field: `${at}.name`, expected: "each feature once", found: `${tensor.name} again` });
      return;
    }
    if (!(tensor.shape.length === 1 || (tensor.shape.length === 2 && tensor.shape[1] === 1))) {
      problems.push({ field: `${at}.shape`, expected: "[N] or [N, 1]", found: JSON.stringify(tensor.shape) });
      return;
    }
    if (rows !== undefined && tensor.shape[0] !== rows) {
      problems.push({
        field: `${at}.shape`,
        expected: `${rows} rows like the other inputs`,
        found: `${tensor.shape[0]} rows`,
      });
      return;
    }
    rows = tensor.shape[0];
    columns.set(tensor.name, data);
  });
  if (problems.length > 0) {
    throw new WardenError("WARDEN_ERR_VALIDATION", `invalid input tensors for ${manifest.name}`, {
      details: problems,
    });
  }
  const count = rows ?? 0;
  if (count === 0) {
    throw new WardenError("WARDEN_ERR_VALIDATION", "no rows to infer", {
      details: [{ field: "inputs[0].shape", expected: "at least one row", found: "0 rows" }],
    });
  }
  return Array.from({ length: count }, (_, r) => {
    const features: Record<string, unknown> = {};
    const subject: Record<string, unknown> = {};
    for (const [name, column] of columns) {
      const spec = byName.get(name)!;
      let value = column[r];
      if (single && value !== null) value = decodeCode(spec, value as number);
      if (spec.sensitive) subject[name] = value;
      else features[name] = value;
    }
    return { features, subject };
  });
}

/** A single-tensor value in the model's encoding → the feature's value (boolean 0/1, category code). */
function decodeCode(spec: FeatureSpec, value: number): unknown {
  if (spec.type === "boolean") return value === 1 ? true : value === 0 ? false : value;
  if (spec.type === "category") {
    const categories = spec.categories!;
    return Number.isInteger(value) && value >= 0 && value < categories.length ? categories[value] : value;
  }
  return value;
}

export function registerOipRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const tags = ["open inference protocol v2"];
  app.get("/v2", { schema: { summary: "Server metadata", tags } }, async () => ({
    name: SERVER_NAME,
    version: SERVER_VERSION,
    extensions: ["model_repository", "binary_tensor_data"],
  }));
  app.get("/v2/health/live", { schema: { summary: "Liveness", tags } }, async () => ({ live: true }));
  app.get(
    "/v2/health/ready",
    { schema: { summary: "Readiness (all models loaded)", tags } },
    async (_request, reply) => {
      const ready = ctx.isReady();
      return reply.status(ready ? 200 : 503).send({ ready });
    },
  );

  const params = (withVersion: boolean) =>
    withVersion ? pathParams("model", "version") : pathParams("model");

  // The infer routes read their bodies themselves (binary tensor data, and JSON whatever the Content-Type:
  // tritonclient sends none, or application/octet-stream), in a scope of their own so that the rest of the
  // API keeps refusing bodies that are not application/json.
  type InferRoute = { Params: { model: string; version?: string }; Body: InferBody };
  const inferRoutes: [
    string,
    RouteShorthandOptions,
    RouteHandlerMethod<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, InferRoute>,
  ][] = [];
  const infer = (url: string, options: RouteShorthandOptions, handler: (typeof inferRoutes)[number][2]) => {
    inferRoutes.push([url, options, handler]);
  };
  app.register(async (scope) => {
    const parseJson = scope.getDefaultJsonParser("error", "error");
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer" }, (request, body, done) => {
      try {
        done(
          null,
          parseInferBody(
            request.headers,
            body as Buffer,
            (text) => {
              let parsed: unknown;
              parseJson(request, text, (error, value) => {
                if (error) throw jsonProblem(error, request.headers[HEADER_LENGTH] !== undefined);
                parsed = value;
              });
              return parsed;
            },
            {
              maxRows: ctx.config.max_instances_per_request,
              maxRowElements: rowElements(ctx, request.params as { model?: string; version?: string }),
            },
          ),
        );
      } catch (error) {
        done(error as Error, undefined);
      }
    });
    for (const [url, options, handler] of inferRoutes) scope.post<InferRoute>(url, options, handler);
  });

  for (const withVersion of [false, true]) {
    const base = withVersion ? "/v2/models/:model/versions/:version" : "/v2/models/:model";
    app.get<{ Params: { model: string; version?: string } }>(
      base,
      {
        schema: {
          summary: "Model metadata",
          tags,
          params: params(withVersion),
          response: { 404: errorResponses[404] },
        },
      },
      async (request) => {
        const model = ctx.registry.get(request.params.model, request.params.version);
        const versions = ctx.registry.versions(model.manifest.name).map((m) => m.manifest.version);
        return modelMetadata(model, withVersion ? [model.manifest.version] : versions);
      },
    );
    app.get<{ Params: { model: string; version?: string } }>(
      `${base}/ready`,
      {
        schema: {
          summary: "Model readiness",
          tags,
          params: params(withVersion),
          response: { 404: errorResponses[404] },
        },
      },
      async (request, reply) => {
        const model = ctx.registry.get(request.params.model, request.params.version);
        const ready = ctx.isReady();
        return reply.status(ready ? 200 : 503).send({ name: model.manifest.name, ready });
      },
    );
    infer(
      `${base}/infer`,
      {
        schema: {
          summary: "Inference (every row is validated, decided and recorded like a decision)",
          description:
            "JSON, or with the binary tensor data extension (Inference-Header-Content-Length) raw input tensors after the JSON and, when asked (parameters.binary_data_output, or an output's parameters.binary_data), raw output tensors after the answer's JSON. The body is read as JSON whatever its Content-Type.",
          tags,
          params: params(withVersion),
          body: InferBodySchema,
          response: errorResponses,
        },
      },
      async (request, reply) => {
        const { model: name, version } = request.params;
        const model = ctx.registry.get(name, version);
        const manifest = model.manifest;
        request.wardenModel = { name: manifest.name, version: manifest.version };
        const available = outputNames(manifest);
        // No outputs named (or an empty list): all of them.
        const named = request.body.outputs ?? [];
        const requested = named.length > 0 ? named.map((o) => o.name) : available;
        // Refused before the tensors are decoded into instances (work that grows with the rows).
        const claimedRows = request.body.inputs.reduce((most, t) => Math.max(most, t.shape[0] ?? 1), 0);
        if (claimedRows > ctx.config.max_instances_per_request) tooManyRows(claimedRows, ctx);
        let instances: InstanceInput[];
        try {
          const problems: FieldProblem[] = [];
          requested.forEach((n, i) => {
            if (!available.includes(n)) {
              problems.push({
                field: `outputs[${i}].name`,
                expected: `one of ${available.join(", ")}`,
                found: describeValue(n),
                ...(WITHHELD_BY_LABEL.has(n) && manifest.disclosure.scores === "label"
                  ? { fix: `${manifest.name} discloses labels only (policy.disclosure.scores: label)` }
                  : {}),
              });
            } else if (requested.indexOf(n) !== i) {
              problems.push({
                field: `outputs[${i}].name`,
                expected: "each output once",
                found: `${n} again`,
              });
            }
          });
          if (problems.length > 0) {
            throw new WardenError("WARDEN_ERR_VALIDATION", "outputs this model cannot give as asked", {
              details: problems.slice(0, 10),
            });
          }
          instances = decodeTensors(manifest, request.body.inputs);
        } catch (error) {
          // The request reached the model and was refused: recorded like any other invalid request.
          if (!(error instanceof WardenError)) throw error;
          const rows = request.body.inputs[0]?.shape[0];
          return ctx.pipeline.reject(
            model,
            {
              route: "oip",
              requestId: request.id,
              instances: Number.isSafeInteger(rows) ? (rows as number) : 0,
            },
            error,
          );
        }
        if (instances.length > ctx.config.max_instances_per_request) tooManyRows(instances.length, ctx);
        const caller = callerOf(request);
        ctx.extraction.admit(caller, name, instances.length);
        const results = await ctx.pipeline.decide({
          caller,
          model: name,
          version,
          instances,
          route: "oip",
          requestId: request.id,
          receivedAt: request.wardenStart,
          fieldPrefix: (i) => `row ${i}: `,
        });
        const n = results.length;
        const labels = manifest.output.labels ?? [];
        const tensors: Record<string, { name: string; datatype: string; shape: number[]; data: unknown[] }> =
          {
            probabilities: {
              name: "probabilities",
              datatype: "FP64",
              shape: [n, labels.length],
              data: results.flatMap((r) => labels.map((l) => r.probabilities?.[l] ?? 0)),
            },
            score: { name: "score", datatype: "FP64", shape: [n], data: results.map((r) => r.score) },
            decision: {
              name: "decision",
              datatype: "BYTES",
              shape: [n],
              // A row held for human review has no decision yet.
              data: results.map((r) => (r.status === "pending_review" ? "pending_review" : r.decision)),
            },
            decision_id: {
              name: "decision_id",
              datatype: "BYTES",
              shape: [n],
              data: results.map((r) => r.decision_id),
            },
          };
        const answer = {
          model_name: manifest.name,
          model_version: manifest.version,
          ...(typeof request.body.id === "string" ? { id: request.body.id } : {}),
          outputs: requested.map((name) => tensors[name]!),
        };
        const binary = binaryOutputs(request.body, requested);
        if (binary.size === 0) return answer;
        const { body, jsonLength } = binaryAnswer(answer, binary);
        return reply
          .header(HEADER_LENGTH, jsonLength)
          .header("content-type", "application/octet-stream")
          .send(body);
      },
    );
  }
}

function tooManyRows(rows: number, ctx: RouteContext): never {
  throw new WardenError("WARDEN_ERR_BAD_REQUEST", "too many rows in one request", {
    details: [
      {
        field: "inputs[0].shape",
        expected: `at most ${ctx.config.max_instances_per_request} rows (max_instances_per_request)`,
        found: `${rows}`,
        fix: "split the request",
      },
    ],
  });
}

/**
 * The most elements a row of the routed model may have in one input tensor (every feature, in the single
 * [N, F] tensor); for a model that is not there (the route answers 404), a generous bound.
 */
function rowElements(ctx: RouteContext, params: { model?: string; version?: string }): number {
  try {
    return Math.max(1, ctx.registry.get(params.model ?? "", params.version).manifest.features.length);
  } catch {
    return 1024;
  }
}

/** Why an infer request's JSON could not be read, whatever Content-Type it came with. */
function jsonProblem(error: Error, binary: boolean): WardenError {
  const part = binary ? `the JSON part of the body (its first ${HEADER_LENGTH} bytes)` : "the request body";
  const empty = (error as { code?: string }).code === "FST_ERR_CTP_EMPTY_JSON_BODY";
  return new WardenError(
    "WARDEN_ERR_MALFORMED_JSON",
    empty
      ? `${part} is empty`
      : `${part} is not valid JSON, or holds a key named __proto__ or constructor.prototype`,
    {
      details: [
        {
          field: "body",
          expected: "an inference request as JSON, without keys named __proto__ or constructor.prototype",
          found: empty ? "nothing" : "text that is not valid JSON, or holds such a key",
        },
      ],
    },
  );
}

/** The outputs a request asks for as raw bytes (binary tensor data extension). */
function binaryOutputs(body: InferBody, requested: readonly string[]): Set<string> {
  const all = body.parameters?.binary_data_output === true;
  const out = new Set<string>();
  const named = new Map((body.outputs ?? []).map((o) => [o.name, o.parameters?.binary_data]));
  for (const name of requested) {
    const own = named.get(name);
    if (own === true || (own === undefined && all)) out.add(name);
  }
  return out;
}
