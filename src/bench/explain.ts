/**
 * The "explain" suite (`npm run bench -- explain`): what an explanation costs per row.
 *
 * Exact TreeSHAP (src/explain/treeshap.ts) on the reference models of fixtures/shap/ and the credit demo,
 * single-threaded, next to XGBoost's own C++ TreeSHAP (`predict(pred_contribs=True)`, nthread=1) on the same
 * model and the same rows, measured in the same run by Debian's python3-xgboost in a child process. Each
 * model's rows are repeated up to at least {@link MIN_ROWS} rows; each side is warmed up, then timed over
 * WARDEN_BENCH_ROUNDS rounds (default 5), and the median round gives µs per row (XGBoost: only the predict
 * call is timed, not the DMatrix). The ratio is TreeSHAP's time over XGBoost's.
 *
 * Checks (exit code 1 when one fails): every TreeSHAP value within 1e-5 of XGBoost's (relative to the row's
 * largest value, as XGBoost rounds to float32), and each row's values adding up to the engine's margin.
 * Without /usr/bin/python3 and its xgboost module the comparison is skipped with a note.
 *
 * Sampling explainers (KernelSHAP) report in a second table, in ms per row, through
 * {@link SAMPLING_EXPLAINERS}.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { prepareTreeShap, type TreeShap } from "../explain/treeshap.js";
import { readXGBoostModel, type XGBoostModel } from "../runtime/xgboost/model.js";
import { computeMargins } from "../runtime/xgboost/predict.js";
import { REPO_ROOT, tempDir } from "../testing/index.js";
import { KERNEL_SHAP_BENCHES } from "./kernelshap.js";
import {
  type BenchSuite,
  BenchUsageError,
  benchRounds,
  describeMachine,
  formatTable,
  median,
  progress,
} from "./suite.js";

/** Rows per timed round: each model's rows are repeated until there are at least this many. */
const MIN_ROWS = 500;
/** Untimed passes over the rows before the rounds, so the JIT has compiled the hot loops. */
const WARM_UP = 2;
const PYTHON = "/usr/bin/python3";

/** One model to explain, with the rows it is timed on (row-major float32, NaN = missing). */
export interface ExplainCase {
  readonly name: string;
  readonly model: XGBoostModel;
  /** The model file, for the XGBoost side. */
  readonly modelFile: string;
  readonly input: Float32Array;
  readonly rows: number;
}

/**
 * A sampling explainer's entry in the report (KernelSHAP, LIME, ...): milliseconds per row for a case, or
 * undefined to leave the case out (a model the explainer does not handle).
 */
export interface SamplingExplainerBench {
  /** Name in the report, e.g. "KernelSHAP (2048 samples, 100 background rows)". */
  readonly name: string;
  /** Rows it is timed on per case: sampling explainers are slow, so a few rows of the case's input. */
  readonly rows: number;
  /** Mean milliseconds per row over `rows` rows of `input`. */
  measure(explainCase: ExplainCase, rows: number): Promise<number | undefined>;
}

/**
 * The sampling explainers timed beside TreeSHAP, each with a row per model it measures in the second table
 * of the report: KernelSHAP on the credit demo, with the product's settings and with shap's (kernelshap.ts).
 */
export const SAMPLING_EXPLAINERS: readonly SamplingExplainerBench[] = [...KERNEL_SHAP_BENCHES];

/** The models of fixtures/shap/ (their own rows) and the credit demo (its whole holdout). */
function loadCases(): ExplainCase[] {
  const folder = join(REPO_ROOT, "fixtures/shap");
  const cases: ExplainCase[] = [];
  for (const file of readdirSync(folder).sort()) {
    if (!file.endsWith(".json") || file === "credit-demo.json") continue;
    const fixture = JSON.parse(readFileSync(join(folder, file), "utf8")) as {
      name: string;
      model: string;
      inputs: (number | null)[][];
    };
    cases.push(makeCase(fixture.name, fixture.model, fixture.inputs));
  }
  const holdout = JSON.parse(
    readFileSync(join(REPO_ROOT, "fixtures/xgboost/credit-demo-holdout-reference.json"), "utf8"),
  ) as { inputs: (number | null)[][] };
  cases.push(makeCase("credit-demo (holdout)", "models/credit-demo/model.json", holdout.inputs));
  return cases;
}

function makeCase(
  name: string,
  modelFile: string,
  inputs: readonly (readonly (number | null)[])[],
): ExplainCase {
  const model = readXGBoostModel(join(REPO_ROOT, modelFile));
  const repeats = Math.ceil(MIN_ROWS / inputs.length);
  const rows = repeats * inputs.length;
  const input = new Float32Array(rows * model.numFeature);
  let at = 0;
  for (let r = 0; r < repeats; r++) {
    for (const row of inputs) for (const v of row) input[at++] = v === null ? Number.NaN : v;
  }
  return { name, model, modelFile: join(REPO_ROOT, modelFile), input, rows };
}

/** Deepest leaf of the model, in edges from the root. */
function depthOf(model: XGBoostModel): number {
  const { left, right, treeStart, count } = model.trees;
  let deepest = 0;
  for (let t = 0; t < count; t++) {
    const stack: [number, number][] = [[treeStart[t]!, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (left[node] === -1) deepest = Math.max(deepest, depth);
      else stack.push([left[node]!, depth + 1], [right[node]!, depth + 1]);
    }
  }
  return deepest;
}

/**
 * Run by /usr/bin/python3 with a folder holding `cases.json` and one `<i>.f32` input per case. It loads every
 * case (booster with nthread=1, DMatrix), runs `predict(pred_contribs=True)` once on each and writes the
 * result to `<i>.contribs.f64` (for the correctness check), says `ready <version>`, then answers each
 * `time <i>` line on standard input with the seconds one predict call on case i took.
 */
const XGBOOST_TIMER = `
import json, os, sys, time
import numpy as np
import xgboost as xgb
folder = sys.argv[1]
spec = json.load(open(os.path.join(folder, "cases.json")))
loaded = []
for i, case in enumerate(spec["cases"]):
    x = np.fromfile(os.path.join(folder, f"{i}.f32"), dtype=np.float32).reshape(case["rows"], case["features"])
    booster = xgb.Booster(model_file=case["model"])
    booster.set_param({"nthread": 1})
    dm = xgb.DMatrix(x, missing=np.nan, feature_names=booster.feature_names, nthread=1)
    booster.predict(dm, pred_contribs=True).astype(np.float64).tofile(os.path.join(folder, f"{i}.contribs.f64"))
    loaded.append((booster, dm))
print("ready", xgb.__version__, flush=True)
for line in sys.stdin:
    words = line.split()
    if words[:1] != ["time"]:
        break
    booster, dm = loaded[int(words[1])]
    start = time.perf_counter()
    booster.predict(dm, pred_contribs=True)
    print(time.perf_counter() - start, flush=True)
`;

/** XGBoost's C++ TreeSHAP in a child process, timed one call at a time. */
interface XGBoostTimer {
  readonly version: string;
  /** XGBoost's contributions per case (same layout as TreeSHAP's). */
  readonly contribs: readonly Float64Array[];
  /** Seconds one `predict(pred_contribs=True)` call on case i takes. */
  time(i: number): Promise<number>;
  close(): void;
}

/** Start the XGBoost side on every case, or say why it cannot run. */
async function startXGBoost(cases: readonly ExplainCase[]): Promise<XGBoostTimer | string> {
  const dir = tempDir("bench-explain");
  cases.forEach((c, i) => {
    writeFileSync(
      join(dir.path, `${i}.f32`),
      new Uint8Array(c.input.buffer, c.input.byteOffset, c.input.byteLength),
    );
  });
  const spec = {
    cases: cases.map((c) => ({ model: c.modelFile, rows: c.rows, features: c.model.numFeature })),
  };
  writeFileSync(join(dir.path, "cases.json"), JSON.stringify(spec));
  // OpenMP reads its thread count at start: one thread, like TreeSHAP here.
  const child = spawn(PYTHON, ["-c", XGBOOST_TIMER, dir.path], {
    env: { ...process.env, OMP_NUM_THREADS: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const failure = (why: string) => {
    child.kill();
    dir.remove();
    const reason = stderr.includes("No module named 'xgboost'")
      ? "python3-xgboost is not installed (apt-get install python3-xgboost)"
      : why;
    return `${PYTHON} cannot time XGBoost: ${reason}`;
  };
  const started = await Promise.race([
    lines.next().then((line) => (line.done ? undefined : line.value)),
    once(child, "error").then(([error]) => error as Error),
  ]);
  if (started instanceof Error) return failure(started.message);
  if (started === undefined || !started.startsWith("ready ")) {
    // It stopped: let its standard error arrive in full before reading the reason from it.
    if (child.exitCode === null) await once(child, "close");
    return failure(stderr.trim().split("\n").at(-1) ?? "it exited before it was ready");
  }
  const contribs = cases.map((_, i) => {
    const bytes = readFileSync(join(dir.path, `${i}.contribs.f64`));
    return new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  });
  dir.remove();
  return {
    version: started.slice("ready ".length),
    contribs,
    async time(i) {
      child.stdin.write(`time ${i}\n`);
      const line = await lines.next();
      const seconds = line.done ? Number.NaN : Number(line.value);
      if (!Number.isFinite(seconds)) throw new Error(`the XGBoost timer stopped: ${stderr.trim()}`);
      return seconds;
    },
    close() {
      child.stdin.end();
    },
  };
}

/** Seconds one TreeSHAP pass over the case's rows takes. */
function timeTreeShap(shap: TreeShap, c: ExplainCase, out: Float64Array): number {
  const start = process.hrtime.bigint();
  shap.contributions(c.input, c.rows, out);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const microseconds = (us: number) => (us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us.toFixed(2));

export const explainSuite: BenchSuite = {
  async run(args) {
    if (args.length > 0) throw new BenchUsageError("explain takes no arguments");
    const rounds = benchRounds(7);
    const cases = loadCases();
    let failures = 0;
    const check = (ok: boolean, what: string) => {
      if (!ok) {
        failures++;
        progress(`CHECK FAILED: ${what}`);
      }
    };

    progress(`starting XGBoost through ${PYTHON} (nthread=1)`);
    const xgboost = await startXGBoost(cases);
    const prepared = cases.map((c) => {
      const shap = prepareTreeShap(c.model);
      const out = new Float64Array(c.rows * c.model.groups * (c.model.numFeature + 1));
      for (let i = 0; i < WARM_UP; i++) shap.contributions(c.input, c.rows, out);
      return { shap, out };
    });

    // Correctness first: each row's values add up to the engine's margin, and agree with XGBoost's.
    cases.forEach((c, i) => {
      const { out } = prepared[i]!;
      const width = c.model.numFeature + 1;
      const margins = new Float64Array(c.rows * c.model.groups);
      computeMargins(c.model, c.input, c.rows, margins);
      for (let block = 0; block < margins.length; block++) {
        let sum = 0;
        for (let k = 0; k < width; k++) sum += out[block * width + k]!;
        const ok = Math.abs(sum - margins[block]!) <= 1e-5 * Math.max(1, Math.abs(sum));
        check(ok, `${c.name}: block ${block} adds up to ${sum}, margin ${margins[block]}`);
        if (!ok) break;
      }
      if (typeof xgboost === "string") return;
      const theirs = xgboost.contribs[i]!;
      check(
        theirs.length === out.length,
        `${c.name}: XGBoost gave ${theirs.length} values, TreeSHAP ${out.length}`,
      );
      for (let at = 0; at < out.length && theirs.length === out.length; at += width) {
        let scale = 0;
        let gap = 0;
        for (let k = at; k < at + width; k++) {
          scale = Math.max(scale, Math.abs(theirs[k]!));
          gap = Math.max(gap, Math.abs(out[k]! - theirs[k]!));
        }
        if (gap > 1e-5 * Math.max(1, scale)) {
          check(false, `${c.name}: block ${at / width} differs from XGBoost's by ${gap}`);
          break;
        }
      }
    });

    // Rounds interleave the two sides case by case, so a busy machine slows both alike; the ratio is the
    // median of the rounds' ratios.
    const ours: number[][] = cases.map(() => []);
    const theirs: number[][] = cases.map(() => []);
    const ratios: number[][] = cases.map(() => []);
    try {
      for (let round = 1; round <= rounds; round++) {
        progress(`round ${round} of ${rounds}`);
        for (let i = 0; i < cases.length; i++) {
          const c = cases[i]!;
          const mine = timeTreeShap(prepared[i]!.shap, c, prepared[i]!.out);
          ours[i]!.push(mine);
          if (typeof xgboost === "string") continue;
          const other = await xgboost.time(i);
          theirs[i]!.push(other);
          ratios[i]!.push(mine / other);
        }
      }
    } finally {
      if (typeof xgboost !== "string") xgboost.close();
    }

    const table = cases.map((c, i) => {
      const base = [
        c.name,
        String(c.model.trees.count),
        String(depthOf(c.model)),
        String(c.model.numFeature),
        String(c.rows),
        microseconds((median(ours[i]!) / c.rows) * 1e6),
      ];
      if (typeof xgboost === "string") return [...base, "—", "—"];
      return [...base, microseconds((median(theirs[i]!) / c.rows) * 1e6), median(ratios[i]!).toFixed(2)];
    });
    const header = [
      "model",
      "trees",
      "depth",
      "features",
      "rows",
      "TreeSHAP µs/row",
      "XGBoost µs/row",
      "ratio",
    ];
    const note =
      typeof xgboost === "string"
        ? `XGBoost comparison skipped: ${xgboost}\n`
        : `XGBoost ${xgboost.version} C++ pred_contribs, nthread=1; ratio = TreeSHAP / XGBoost per round, median ` +
          `(below 1: TreeSHAP is faster)\n`;

    const sampling: string[][] = [];
    for (const explainer of SAMPLING_EXPLAINERS) {
      for (const c of cases) {
        progress(`${explainer.name}: ${c.name}`);
        const ms = await explainer.measure(c, Math.min(explainer.rows, c.rows));
        if (ms !== undefined) {
          sampling.push([explainer.name, c.name, String(Math.min(explainer.rows, c.rows)), ms.toFixed(1)]);
        }
      }
    }
    const samplingReport =
      sampling.length === 0
        ? "\nKernelSHAP ms per row: not measured (no sampling explainer in SAMPLING_EXPLAINERS)\n"
        : `\nSampling explainers, single thread, the native XGBoost engine as scorer (one pass over a few rows, ` +
          `after a warm-up row)\n${formatTable(["explainer", "model", "rows", "ms/row"], sampling)}\n`;

    process.stdout.write(
      `Explanations — exact TreeSHAP, single thread, median of ${rounds} rounds\n${describeMachine()}\n` +
        `${note}\n${formatTable(header, table)}\n${samplingReport}` +
        (failures > 0
          ? `\n${failures} checks FAILED\n`
          : typeof xgboost === "string"
            ? "\nevery row's values add up to its margin\n"
            : "\nevery value within 1e-5 of XGBoost's; every row's values add up to its margin\n"),
    );
    return failures > 0 ? 1 : 0;
  },
};
