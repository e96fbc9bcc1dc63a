/**
 * Reference profiles over HTTP: built by a model's explainer thread from reference rows (the model's engine
 * scores them there, off the serving thread), stored where `warden profile build` stores them
 * (`<data_dir>/profiles/<model>/<version>.json`), and read back.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { WardenError } from "../errors/index.js";
import { profilePath, type ReferenceProfile, referenceProfileFromJSON } from "../monitor/index.js";
import type { RouteContext } from "./app.js";
import { errorResponses, pathParams } from "./routes-decisions.js";

export function registerProfileRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{
    Params: { model: string; version: string };
    Body: { reference?: string; seed?: number } | undefined;
  }>(
    "/v1/admin/models/:model/versions/:version/profile",
    {
      schema: {
        summary: "Build a model version's reference profile",
        description:
          "Profiles the loaded model version on reference rows (a CSV on the server; default the manifest's policy.explanations.reference; a relative path is resolved against the manifest's folder): per feature sketches, moments, missing and out-of-range rates and samples, or category counts; the score distribution; an Isolation Forest anomaly score and its threshold; provenance. Runs in the model's explainer thread and replaces any stored profile.",
        tags: ["monitoring"],
        params: pathParams("model", "version"),
        body: {
          type: "object",
          properties: {
            reference: { type: "string", minLength: 1, maxLength: 4096 },
            seed: { type: "integer", minimum: 0, maximum: 4294967295 },
          },
          additionalProperties: false,
        },
        response: errorResponses,
      },
    },
    async (request, reply) => {
      const model = ctx.registry.get(request.params.model, request.params.version);
      const m = model.manifest;
      const given = request.body?.reference;
      const reference =
        given === undefined ? undefined : isAbsolute(given) ? given : resolve(dirname(m.manifestPath), given);
      const profile = (await model.explainer.run({
        kind: "profile",
        reference,
        seed: request.body?.seed,
      })) as ReferenceProfile;
      const target = profilePath(ctx.config.data_dir, m.name, m.version);
      const temporary = `${target}.${process.pid}.tmp`;
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(temporary, `${JSON.stringify(profile)}\n`);
      renameSync(temporary, target);
      return reply.status(201).send({
        model: m.name,
        version: m.version,
        stored: target,
        provenance: profile.provenance,
        anomaly_threshold: profile.anomaly.threshold,
      });
    },
  );

  app.get<{ Params: { model: string; version: string } }>(
    "/v1/models/:model/versions/:version/profile",
    {
      schema: {
        summary: "A model version's reference profile, as stored",
        tags: ["monitoring"],
        params: pathParams("model", "version"),
        response: { 404: errorResponses[404] },
      },
    },
    async (request) => {
      const { model, version } = request.params;
      const path = profilePath(ctx.config.data_dir, model, version);
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch {
        throw new WardenError(
          "WARDEN_ERR_PROFILE_NOT_FOUND",
          `model ${model} version ${version} has no reference profile in this server's data folder`,
          {
            details: [
              {
                field: "version",
                expected: "a model version that has been profiled",
                found: `${model} ${version}`,
                fix: `POST /v1/admin/models/${model}/versions/${version}/profile, or warden profile build`,
              },
            ],
          },
        );
      }
      // Checked field by field: a damaged file is an error, not a half-read profile.
      return referenceProfileFromJSON(JSON.parse(text));
    },
  );
}
