/**
 * `npm run bench [-- <suite>]`: run one benchmark suite (default "serving") and print its report. A suite is
 * a module of src/bench/ registered in SUITES; its traffic goes only to 127.0.0.1, and every run is bounded
 * in time and request count, so the program always stops by itself.
 */
import { type BenchSuite, BenchUsageError } from "./suite.js";

interface SuiteEntry {
  readonly description: string;
  /** Imported only when chosen, so one suite's dependencies do not load for another. */
  readonly load: () => Promise<BenchSuite>;
}

const SUITES: Readonly<Record<string, SuiteEntry>> = {
  serving: {
    description:
      "decision throughput and latency: bare Fastify + XGBoost vs Warden (XGBoost with and without explanations, ONNX)",
    load: async () => (await import("./serving.js")).servingSuite,
  },
  ledger: {
    description: "ledger appends/s and verification on SQLite and PostgreSQL (1, 2, 4 writer processes)",
    load: async () => (await import("./ledger.js")).ledgerSuite,
  },
  merkle: {
    description: "Merkle checkpoints: root, inclusion and consistency proofs over 1,000,000 leaves",
    load: async () => (await import("./merkle.js")).merkleSuite,
  },
  monitor: {
    description: "live monitor cost: the per-decision update (µs per feature) vs one prediction; a report",
    load: async () => (await import("./monitor.js")).monitorSuite,
  },
  explain: {
    description:
      "explanations per row: exact TreeSHAP vs XGBoost's C++ pred_contribs on the same rows; KernelSHAP ms/row",
    load: async () => (await import("./explain.js")).explainSuite,
  },
  fairness: {
    description:
      "fairness audit of 1,000,000 decisions, 3 sensitive attributes (40 groups), 200 bootstrap resamples: in memory, and warden audit fairness --ledger over a real SQLite ledger (read, group, audit)",
    load: async () => (await import("./fairness.js")).fairnessSuite,
  },
};

const DEFAULT_SUITE = "serving";

async function main(args: readonly string[]): Promise<number> {
  const [name = DEFAULT_SUITE, ...rest] = args;
  const entry = Object.hasOwn(SUITES, name) ? SUITES[name] : undefined;
  if (entry === undefined) {
    const list = Object.entries(SUITES).map(([n, s]) => `  ${n.padEnd(10)} ${s.description}`);
    process.stderr.write(
      `unknown benchmark suite ${JSON.stringify(name)}; the suites are:\n${list.join("\n")}\n`,
    );
    return 2;
  }
  try {
    return await (await entry.load()).run(rest);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
