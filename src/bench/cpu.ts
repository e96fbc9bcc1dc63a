/**
 * CPU time by thread, for the benchmarks: what a request costs in CPU, which no amount of concurrency can
 * hide, beside the throughput that depends on how the threads share the cores. Linux only (/proc); elsewhere
 * the figures are absent.
 */
import { readdirSync, readFileSync } from "node:fs";

/** CPU seconds of this process's threads: its main thread, and all others (workers, libuv, V8). */
export interface ThreadCpu {
  readonly main: number;
  readonly others: number;
}

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on every Linux build in use). */
const TICKS = 100;

/** This process's CPU time by thread now; undefined where /proc is not there. */
export function threadCpu(): ThreadCpu | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return undefined;
  }
  let main = 0;
  let others = 0;
  for (const tid of tasks) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended meanwhile
    }
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const seconds = (Number(fields[11]) + Number(fields[12])) / TICKS;
    if (Number(tid) === process.pid) main += seconds;
    else others += seconds;
  }
  return { main, others };
}

/** CPU time between two readings. */
export function cpuSince(before: ThreadCpu | undefined): ThreadCpu | undefined {
  const now = threadCpu();
  if (before === undefined || now === undefined) return undefined;
  return { main: now.main - before.main, others: now.others - before.others };
}
