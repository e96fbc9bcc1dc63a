import { createHash } from "node:crypto";
import { basename, resolve } from "node:path";
import type { Command } from "commander";
import { loadManifest, MAX_REFERENCE_BYTES, readBoundedFile } from "../config/index.js";
import { WardenError } from "../errors/index.js";
import { policyScores } from "../explain/model-explainer.js";
import { readInputReferenceRows } from "../explain/reference-stats.js";
import { buildReferenceProfile, profilePath, type ReferenceProfile, saveProfile } from "../monitor/index.js";
import { loadEngine } from "../runtime/engines.js";
import { type CliIo, EXIT, intOption } from "./index.js";
import { reasonOf } from "./stream-output.js";

interface BuildOptions {
  out?: string;
  dataDir: string;
  seed: number;
}

/** `warden profile build`: a model version's reference profile from reference rows. */
export function profileCommand(
  program: Command,
  io: CliIo,
  run: (action: () => Promise<number>) => void,
): void {
  const profile = program
    .command("profile")
    .description("Reference profiles of model versions: the baseline of the drift and anomaly monitors");
  profile
    .command("build")
    .description(
      "Profile a model version on reference rows (a CSV with a header naming every model feature, e.g. its " +
        "holdout set): per feature a quantile sketch, moments, missing and out-of-range rates and a sample " +
        "of values, or counts per category; the model's score distribution; an Isolation Forest anomaly score " +
        "with its threshold (the reference's 99th-percentile score); and provenance (hashes, rows, time). " +
        "Writes JSON to <data-dir>/profiles/<model>/<version>.json, or --out.",
    )
    .argument("<manifest>", "the model version's manifest (YAML)")
    .argument("<reference>", "the reference rows (CSV)")
    .option("--out <file>", "write the profile here instead")
    .option("--data-dir <dir>", "the server's data folder", "warden-data")
    .option("--seed <n>", "seed of the value samples and the forest", intOption("--seed", 0, 2 ** 32 - 1), 0)
    .action((manifestPath: string, referencePath: string, options: BuildOptions) =>
      run(async () => {
        const manifest = loadManifest(manifestPath);
        const referenceBytes = readReference(referencePath);
        const rows = readInputReferenceRows(manifest, referencePath, referenceBytes);
        const engine = await loadEngine(manifest);
        let scores: Float64Array;
        try {
          scores = await policyScores(manifest, engine, rows.input, rows.rows);
        } finally {
          await engine.close();
        }
        const result = buildReferenceProfile(manifest, rows.input, rows.rows, scores, {
          referenceSha256: createHash("sha256").update(referenceBytes).digest("hex"),
          referenceFile: basename(referencePath),
          seed: options.seed,
        });
        const target =
          options.out !== undefined
            ? resolve(options.out)
            : profilePath(options.dataDir, manifest.name, manifest.version);
        writeProfile(target, result);
        io.stdout(`${summary(result)}\nwrote ${target}\n`);
        return EXIT.ok;
      }),
    );
}

function readReference(path: string): Buffer {
  try {
    return readBoundedFile(path, MAX_REFERENCE_BYTES);
  } catch (error) {
    throw new WardenError("WARDEN_ERR_INPUT_FILE", `cannot read ${path}: ${reasonOf(error)}`, {
      details: [{ field: path, expected: "a readable CSV file", found: reasonOf(error) }],
    });
  }
}

/** Write the profile whole (see saveProfile), an unwritable target named as the input error it is. */
function writeProfile(target: string, profile: ReferenceProfile): void {
  try {
    saveProfile(target, profile);
  } catch (error) {
    throw new WardenError(
      "WARDEN_ERR_INPUT_FILE",
      `cannot write the profile to ${target}: ${reasonOf(error)}`,
      {
        details: [
          {
            field: target,
            expected: "a writable file",
            found: reasonOf(error),
            fix: "check --out or --data-dir",
          },
        ],
      },
    );
  }
}

function summary(profile: ReferenceProfile): string {
  const { provenance, score, anomaly, features } = profile;
  const missing = features
    .filter((f) => f.missing > 0)
    .map((f) => `${f.name} ${(100 * f.missingRate).toFixed(1)}%`);
  const positive =
    score.positiveShare !== null
      ? `, ${(100 * score.positiveShare).toFixed(1)}% decided ${score.positiveLabel}`
      : "";
  return [
    `${provenance.model} ${provenance.version}: ${provenance.rows} reference rows, ${features.length} features${positive}`,
    `missing: ${missing.length > 0 ? missing.join(", ") : "none"}`,
    `anomaly threshold ${anomaly.threshold.toFixed(4)} (${anomaly.trees.length} trees, ψ = ${anomaly.subsample}, contamination ${anomaly.contamination})`,
  ].join("\n");
}
