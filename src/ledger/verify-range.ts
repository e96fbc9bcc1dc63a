/**
 * Worker-thread entry of {@link verifyLedgerParallel}: verifies records `from`..`to` of an SQLite ledger,
 * starting from the stored hash of record `from - 1`, and posts the result.
 */
import { parentPort, workerData } from "node:worker_threads";
import { GENESIS_HASH } from "./hash.js";
import { leafHash } from "./merkle.js";
import { openReader } from "./sqlite-store.js";
import { ChainVerifier, type RawRow, type VerifyResult } from "./verify.js";

const { file, from, to, leaves } = workerData as { file: string; from: number; to: number; leaves: boolean };
/** Merkle leaf hashes of the range's records, 32 bytes each, when asked for (see checkpoints.ts). */
const leafBytes = leaves ? Buffer.allocUnsafe((to - from + 1) * 32) : undefined;

function run(): VerifyResult {
  const db = openReader(file);
  try {
    const before =
      from === 1
        ? GENESIS_HASH
        : (db.prepare<[number], { hash: string }>("SELECT hash FROM records WHERE seq = ?").get(from - 1)
            ?.hash ??
          // Record from - 1 is missing: the range before reports the gap; chain from something that cannot match.
          "missing");
    const verifier = new ChainVerifier(undefined, { count: from - 1, prevHash: before });
    // One row past the range: it tells which of an entry and its hash was altered at the range's end.
    const rows = db
      .prepare<[number, number], RawRow>(
        "SELECT seq, id, kind, time, model, version, entry, prev_hash, hash FROM records WHERE seq >= ? AND seq <= ? ORDER BY seq",
      )
      .raw(true)
      .iterate(from, to + 1);
    try {
      for (const row of rows) {
        if (row[0] > to && !verifier.pending) break;
        const result = verifier.push(row);
        if (result !== undefined) return result;
        if (leafBytes !== undefined && row[0] <= to) leafHash(row[6]).copy(leafBytes, (row[0] - from) * 32);
      }
    } finally {
      rows.return?.();
    }
    if (verifier.pending) return verifier.finish();
    if (verifier.count < to) {
      const missing = verifier.count + 1;
      return {
        ok: false,
        count: verifier.count,
        firstBad: { seq: missing, id: undefined, reason: `sequence gap: record ${missing} is missing` },
      };
    }
    return { ok: true, count: verifier.count };
  } finally {
    db.close();
  }
}

const result = run();
parentPort!.postMessage(
  { result, leaves: result.ok ? leafBytes : undefined },
  result.ok && leafBytes !== undefined ? [leafBytes.buffer as ArrayBuffer] : [],
);
