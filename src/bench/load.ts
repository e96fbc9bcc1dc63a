/**
 * Load generation, parent side. Each run drives autocannon in a child process of its own, so that the
 * load generator's CPU (HTTP parsing, timers, latency bookkeeping) is scheduled by the OS on a core of
 * its own instead of sharing the event loop of the server it is measuring.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpuSince, threadCpu } from "./cpu.js";

/** One request of the sequence each connection loops over. */
export interface LoadRequest {
  readonly path: string;
  /** A JSON document. */
  readonly body: string;
}

/** What to send, where, and for how long. */
export interface LoadSpec {
  /** Base URL; only `http://127.0.0.1:<port>` is accepted. */
  readonly url: string;
  /** Concurrent connections, one request in flight on each (no pipelining). */
  readonly connections: number;
  /** Measured seconds. */
  readonly seconds: number;
  /** Unmeasured seconds before, at the same concurrency. */
  readonly warmupSeconds: number;
  /** POSTed in turn, as `application/json`. */
  readonly requests: readonly LoadRequest[];
}

/** Counts of one phase (warm-up or measured). */
export interface PhaseCounts {
  /** 2xx responses. */
  readonly ok: number;
  /** Responses with any other status. */
  readonly non2xx: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
}

/** The outcome of one run. */
export interface LoadResult extends PhaseCounts {
  readonly connections: number;
  /** 2xx responses per second of the measured phase. */
  readonly rps: number;
  /** Latency percentiles of the 2xx responses, ms (nearest rank, microsecond resolution). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly warmup: PhaseCounts;
  /**
   * CPU seconds over the whole run (warm-up and measured): the load generator's process, and, when the server
   * runs in this process, its main thread and its other threads. Absent where /proc is not there.
   */
  readonly cpu?: {
    readonly loadGenerator: number;
    readonly serverMain?: number;
    readonly serverOthers?: number;
  };
}

const CHILD = fileURLToPath(new URL("./load-child.js", import.meta.url));

/** Time a child may take beyond its warm-up and run (start-up, connection set-up, the last tick) before it is killed. */
const GRACE_MS = 30_000;

/**
 * Run autocannon against `spec.url` in a child process and return its measurements.
 *
 * @throws Error when the child fails, exits without a result, or overruns its time (it is then killed).
 */
export async function runLoad(
  spec: LoadSpec,
  options: { serverInProcess?: boolean } = {},
): Promise<LoadResult> {
  const before = options.serverInProcess ? threadCpu() : undefined;
  const result = await runChild(spec);
  const server = cpuSince(before);
  if (result.cpu === undefined || server === undefined) return result;
  return { ...result, cpu: { ...result.cpu, serverMain: server.main, serverOthers: server.others } };
}

function runChild(spec: LoadSpec): Promise<LoadResult> {
  // execArgv: [] so that flags given to the parent (--cpu-prof while profiling the server) stay off the child.
  const child = fork(CHILD, [], { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise<LoadResult>((resolve, reject) => {
    let result: LoadResult | undefined;
    const timer = setTimeout(
      () => {
        child.kill("SIGKILL");
        reject(
          new Error(
            `the load generator overran ${spec.warmupSeconds + spec.seconds} s by ${GRACE_MS / 1000} s`,
          ),
        );
      },
      (spec.warmupSeconds + spec.seconds) * 1000 + GRACE_MS,
    );
    child.once("message", (message: LoadResult | { error: string }) => {
      if ("error" in message) reject(new Error(`load generator: ${message.error}`));
      else result = message;
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (result !== undefined) resolve(result);
      else reject(new Error(`the load generator exited (${signal ?? code}) without a result`));
    });
    child.send(spec);
  });
}
