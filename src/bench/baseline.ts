/**
 * The baseline of the serving benchmark: the least a server must do to answer a decision request. A bare
 * Fastify app (the same Fastify as Warden) with one route that parses the JSON body, encodes the features
 * and runs the demo XGBoost model synchronously in the request's own thread; no validation, batching,
 * worker threads, ledger, metrics or request ids.
 */
import Fastify from "fastify";
import type { Manifest } from "../config/index.js";
import { applyPolicy, encodeValue, type FeatureValue } from "../decision/index.js";
import { XGBoostEngine } from "../runtime/xgboost/index.js";

/** A listening baseline server. */
export interface BaselineServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serve `POST /v1/models/:model/decisions` with the manifest's XGBoost model on a free loopback port. The
 * body is trusted to be valid (`{"features": {...}}`), as the benchmark only sends holdout rows.
 */
export async function startBaselineServer(manifest: Manifest): Promise<BaselineServer> {
  const engine = new XGBoostEngine(manifest);
  const features = manifest.modelFeatures;
  const app = Fastify({ logger: false });
  app.post<{ Body: { features: Record<string, FeatureValue | undefined> } }>(
    "/v1/models/:model/decisions",
    async (request) => {
      const input = request.body.features;
      const row = new Float32Array(features.length);
      features.forEach((f, i) => {
        row[i] = encodeValue(f, input[f.name] ?? null);
      });
      const output = engine.predict(row, 1);
      // Same answer fields as Warden's, so both serialise a response of about the same size.
      const outcome = applyPolicy(manifest, {
        values: output.values,
        margins: output.margins,
        kind: output.kind,
        batchSize: 1,
        queueMs: 0,
        inferenceMs: 0,
      });
      return {
        model: manifest.name,
        version: manifest.version,
        score: outcome.score,
        probabilities: outcome.probabilities,
        decision: outcome.decision,
      };
    },
  );
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (typeof address !== "object" || address === null)
    throw new Error("the baseline server has no TCP address");
  return { url: `http://127.0.0.1:${address.port}`, close: () => app.close() };
}
