/**
 * Load generation, child side: receives one {@link LoadSpec} over IPC, runs autocannon, sends back one
 * {@link LoadResult} and exits. Started by `runLoad` in load.ts; not meant to be run by hand.
 */
import autocannon from "autocannon";
import type { LoadResult, LoadSpec, PhaseCounts } from "./load.js";

/** The most requests one connection may send in one second; far above what loopback HTTP reaches, it only bounds a run's count. */
const MAX_REQUESTS_PER_SECOND = 100_000;

function counts(result: autocannon.Result): PhaseCounts {
  return { ok: result["2xx"], non2xx: result.non2xx, errors: result.errors };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  // The benchmarks must never send traffic anywhere but this machine's loopback interface.
  if (new URL(spec.url).hostname !== "127.0.0.1")
    throw new Error(`refusing to load ${spec.url}: only 127.0.0.1`);
  const seconds = spec.warmupSeconds + spec.seconds;
  const started = process.cpuUsage();
  const instance = autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    warmup: { connections: spec.connections, duration: spec.warmupSeconds },
    maxOverallRequests: Math.ceil(seconds * MAX_REQUESTS_PER_SECOND) * spec.connections,
    requests: spec.requests.map((r) => ({
      method: "POST",
      path: r.path,
      headers: { "content-type": "application/json" },
      body: r.body,
    })),
  });
  // autocannon's own latency histogram holds whole milliseconds, too coarse for sub-millisecond responses,
  // so every 2xx response time (a float from process.hrtime) is kept here. The listener sees the measured
  // phase only: the warm-up reports to a tracker of its own.
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status < 200 || status >= 300) return;
    if (n === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[n++] = ms;
  });
  const result = await instance;
  const used = process.cpuUsage(started);
  const sorted = latencies.subarray(0, n).sort();
  return {
    connections: spec.connections,
    rps: result["2xx"] / result.duration,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    ...counts(result),
    // Present: every run above has a warm-up.
    warmup: counts(result.warmup!),
    cpu: { loadGenerator: (used.user + used.system) / 1e6 },
  };
}

process.once("message", (spec: LoadSpec) => {
  run(spec).then(
    (result) => process.send!(result, () => process.exit(0)),
    (error: unknown) => process.send!({ error: String(error) }, () => process.exit(1)),
  );
});
