/**
 * Worker-thread entry that signs the ledger's Merkle checkpoints (checkpoints.ts) every so often, through a
 * connection of its own, so neither the event loop nor the commits wait for it. Between checkpoints it reads the
 * newly committed records every second (CheckpointBuilder), so that signing finds little left to read: the
 * work is spread evenly instead of coming as one burst per interval. On "stop" it signs a last checkpoint over
 * everything committed, reports it and exits.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type LedgerLocation, openLedgerBackend } from "./backend.js";
import { CheckpointBuilder } from "./checkpoints.js";
import { loadOrCreateSigningKey } from "./signing.js";
import { lowerThisThread } from "./thread-priority.js";

/** What the thread is started with. */
export interface MerkleThreadStart {
  readonly location: LedgerLocation;
  readonly keyPath: string;
  /** 0: only the final checkpoint at stop. */
  readonly intervalMs: number;
}

/** Thread → main. */
export type MerkleThreadReply =
  | { readonly type: "checkpoint"; readonly treeSize: number; readonly final: boolean }
  | { readonly type: "failed"; readonly message: string; readonly final: boolean };

const port = parentPort!;
// Checkpoints are background work: the serving threads come first.
lowerThisThread();
const start = workerData as MerkleThreadStart;
const key = loadOrCreateSigningKey(start.keyPath);
const store = await openLedgerBackend(start.location);
let turn = Promise.resolve();
/**
 * Opened on first use (again, if opening failed), then kept: after a broken record it carries on from the last
 * good one, and signing starts it afresh from the stored checkpoint if the ledger lost records it had read.
 */
let builder: CheckpointBuilder | undefined;

/** How often the records committed since the last reading are read and added. */
const READ_MS = 1000;

const checkpoint = (final: boolean) => {
  turn = turn.then(async () => {
    try {
      builder ??= await CheckpointBuilder.open(store.checkpoints);
      const made = await builder.sign(key);
      port.postMessage({
        type: "checkpoint",
        treeSize: made.sth.tree_size,
        final,
      } satisfies MerkleThreadReply);
    } catch (error) {
      port.postMessage({ type: "failed", message: String(error), final } satisfies MerkleThreadReply);
    }
  });
  return turn;
};

/** Read and add what was committed since the last reading. */
const read = () => {
  turn = turn.then(async () => {
    try {
      builder ??= await CheckpointBuilder.open(store.checkpoints);
      await builder.catchUp();
    } catch {
      // Reported by the next checkpoint, which meets the same failure.
    }
  });
};

const timer = start.intervalMs > 0 ? setInterval(() => void checkpoint(false), start.intervalMs) : undefined;
const reader = setInterval(read, READ_MS);
port.on("message", async () => {
  if (timer) clearInterval(timer);
  clearInterval(reader);
  await checkpoint(true);
  await store.close();
  port.close();
});
