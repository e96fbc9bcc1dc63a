/**
 * Worker-thread entry that signs the ledger's Merkle checkpoints (checkpoints.ts) every so often, through a
 * connection of its own, so neither the event loop nor the commits wait for it. On "stop" it signs a last
 * checkpoint over everything committed, reports it and exits.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type LedgerLocation, openLedgerBackend } from "./backend.js";
import { makeCheckpoint } from "./checkpoints.js";
import { loadOrCreateSigningKey } from "./signing.js";

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
const start = workerData as MerkleThreadStart;
const key = loadOrCreateSigningKey(start.keyPath);
const store = await openLedgerBackend(start.location);
let turn = Promise.resolve();

const checkpoint = (final: boolean) => {
  turn = turn.then(async () => {
    try {
      const made = await makeCheckpoint(store.checkpoints, key);
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

const timer = start.intervalMs > 0 ? setInterval(() => void checkpoint(false), start.intervalMs) : undefined;
port.on("message", async () => {
  if (timer) clearInterval(timer);
  await checkpoint(true);
  await store.close();
  port.close();
});
