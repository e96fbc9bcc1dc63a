/**
 * Background threads (ledger checkpoints) yield the CPU to the serving threads: on Linux a thread's nice value
 * is its own (setpriority on its thread id), so the thread that calls this is lowered alone, not the process.
 */
import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/** The nice value background threads run at (0 is normal, 19 the lowest). */
export const BACKGROUND_NICE = 10;

/**
 * Lower the calling thread's scheduling priority to {@link BACKGROUND_NICE} (or leave it lower). Returns whether it was lowered:
 * false where threads have no id of their own to address (not Linux) or the system refuses; the thread then
 * runs as before, at normal priority.
 */
export function lowerThisThread(): boolean {
  if (process.platform !== "linux") return false;
  try {
    // "<pid>/task/<tid>"
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (!Number.isSafeInteger(tid) || tid <= 0) return false;
    // Never raised: a thread already running at a lower priority (a niced server) stays there.
    if (getPriority(tid) < BACKGROUND_NICE) setPriority(tid, BACKGROUND_NICE);
    return true;
  } catch {
    return false;
  }
}
