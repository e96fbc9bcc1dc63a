/**
 * Merkle checkpoints of the ledger (Certificate-Transparency style): every so often, a signed tree head over
 * all records so far, where leaf i is `leafHash(canonical entry of record i + 1)` (merkle.ts) and the head is
 * signed with the ledger's Ed25519 key (signing.ts). A checkpoint is stored with the Merkle frontier at its
 * size, so the next one reads only the records after it.
 *
 * What checkpoints add to the hash chain: a signed head fixes the ledger's size and content at a moment, so
 * records cut off the end, or a chain rewritten with fresh hashes, no longer verify; and anyone holding a
 * head can be shown that one decision is in the ledger (an inclusion proof, O(log n) hashes) or that a later
 * head extends an earlier one (a consistency proof), without reading the ledger.
 *
 * Checkpoints live beside the records: table `checkpoints` in ledger.sqlite, or in the PostgreSQL schema.
 */
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { WardenError } from "../errors/index.js";
import {
  consistencyProof,
  fromHex,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  proofToHex,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";
import {
  makeTreeHead,
  type SignedTreeHead,
  type SigningKey,
  signTreeHead,
  verifyTreeHead,
} from "./signing.js";
import { ChainVerifier, type RawRow } from "./verify.js";

/** A checkpoint as stored: the signed head and the frontier (subtree roots, hex) at its size. */
export interface StoredCheckpoint {
  readonly sth: SignedTreeHead;
  readonly frontier: readonly string[];
}

/** What checkpointing needs from a store. */
export interface CheckpointSource {
  /** Raw records after `afterSeq`, in sequence order. */
  rows(afterSeq: number): AsyncIterable<RawRow> | Iterable<RawRow>;
  /** Every stored checkpoint, oldest first. */
  checkpoints(): Promise<StoredCheckpoint[]>;
  /** The latest stored checkpoint (the largest tree), or undefined when there is none. */
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  /** Store one (a second one of the same size is ignored). */
  saveCheckpoint(checkpoint: StoredCheckpoint): Promise<void>;
}

const SQLITE_TABLE =
  "CREATE TABLE IF NOT EXISTS checkpoints (tree_size INTEGER PRIMARY KEY, sth TEXT NOT NULL, frontier TEXT NOT NULL) STRICT";

/** A stored checkpoint row, parsed. */
export function parseCheckpoint(row: { readonly sth: string; readonly frontier: string }): StoredCheckpoint {
  return { sth: JSON.parse(row.sth) as SignedTreeHead, frontier: JSON.parse(row.frontier) as string[] };
}

/** The checkpoints of an SQLite ledger file, through a connection of their own. */
export function sqliteCheckpoints(
  file: string,
  options: { readonly?: boolean } = {},
): CheckpointSource & { close(): void } {
  const db = new Database(file, { fileMustExist: true, readonly: options.readonly ?? false });
  db.pragma("busy_timeout = 5000");
  const hasTable = () =>
    db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'checkpoints'").get() !==
    undefined;
  if (!options.readonly) db.exec(SQLITE_TABLE);
  return {
    *rows(afterSeq) {
      yield* db
        .prepare<[number], RawRow>(
          "SELECT seq, id, kind, time, model, version, entry, prev_hash, hash FROM records WHERE seq > ? ORDER BY seq",
        )
        .raw(true)
        .iterate(afterSeq);
    },
    async checkpoints() {
      if (!hasTable()) return [];
      return db
        .prepare<[], { sth: string; frontier: string }>(
          "SELECT sth, frontier FROM checkpoints ORDER BY tree_size",
        )
        .all()
        .map(parseCheckpoint);
    },
    async latestCheckpoint() {
      if (!hasTable()) return undefined;
      const row = db
        .prepare<[], { sth: string; frontier: string }>(
          "SELECT sth, frontier FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
        )
        .get();
      return row === undefined ? undefined : parseCheckpoint(row);
    },
    async saveCheckpoint(c) {
      db.prepare("INSERT OR IGNORE INTO checkpoints (tree_size, sth, frontier) VALUES (?, ?, ?)").run(
        c.sth.tree_size,
        JSON.stringify(c.sth),
        JSON.stringify(c.frontier),
      );
    },
    close: () => db.close(),
  };
}

async function* asAsync<T>(items: AsyncIterable<T> | Iterable<T>): AsyncIterableIterator<T> {
  yield* items;
}

/**
 * Make a checkpoint now: extend the last checkpoint's frontier over the records after it (checking their
 * chain first: sequence, links and hashes, so a broken chain is never signed; each entry's content is left to
 * `warden ledger verify`, which also checks it), sign the new head, store it, and return it. With no new
 * records since the last checkpoint, returns that one.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the records after the last checkpoint do not verify.
 */
export async function makeCheckpoint(
  source: CheckpointSource,
  key: SigningKey,
  now = new Date(),
): Promise<StoredCheckpoint> {
  // Only the latest is read: the checkpoints of a long-lived ledger add up (one a minute).
  const last = await source.latestCheckpoint();
  const frontier = last
    ? MerkleFrontier.restore(
        last.sth.tree_size,
        last.frontier.map((h) => fromHex(h, "frontier")),
      )
    : new MerkleFrontier();
  const start = frontier.size;
  const chainOnly = { content: false };
  let verifier: ChainVerifier | undefined =
    start === 0 ? new ChainVerifier(undefined, undefined, chainOnly) : undefined;
  for await (const row of asAsync(source.rows(start === 0 ? 0 : start - 1))) {
    if (verifier === undefined) {
      // The record at the last checkpoint's size: the chain continues from its hash.
      verifier = new ChainVerifier(undefined, { count: row[0], prevHash: row[8] }, chainOnly);
      continue;
    }
    const problem = verifier.push(row);
    if (problem !== undefined && !problem.ok)
      throw brokenChain(problem.firstBad.seq, problem.firstBad.reason);
    frontier.append(leafHash(row[6]));
  }
  const end = verifier?.finish();
  if (end !== undefined && !end.ok) throw brokenChain(end.firstBad.seq, end.firstBad.reason);
  if (last !== undefined && frontier.size === last.sth.tree_size) return last;
  const sth = signTreeHead(makeTreeHead(frontier.size, frontier.root(), key.keyId, now), key.privateKey);
  const checkpoint = { sth, frontier: frontier.hashes().map(toHex) };
  await source.saveCheckpoint(checkpoint);
  return checkpoint;
}

function brokenChain(seq: number, reason: string): WardenError {
  return new WardenError("WARDEN_ERR_LEDGER", `refusing to sign a checkpoint: record ${seq}: ${reason}`);
}

/** Leaf hashes of records 1..size (or all), in order. */
export async function leafHashesOf(source: CheckpointSource, size?: number): Promise<Buffer[]> {
  const leaves: Buffer[] = [];
  for await (const row of asAsync(source.rows(0))) {
    if (size !== undefined && leaves.length >= size) break;
    leaves.push(leafHash(row[6]));
  }
  return leaves;
}

/** An inclusion proof of one decision (or any record) against a checkpoint. */
export interface InclusionEvidence {
  readonly id: string;
  readonly seq: number;
  readonly leaf_index: number;
  /** The record's canonical entry text: the leaf's input. */
  readonly entry: string;
  readonly leaf_hash: string;
  readonly tree_size: number;
  readonly inclusion_proof: readonly string[];
  readonly checkpoint: SignedTreeHead;
}

/**
 * Prove that record `id` is in the ledger as of a checkpoint (the latest by default, or the one of
 * `treeSize`). The proof is checked before it is returned.
 *
 * @throws WardenError WARDEN_ERR_DECISION_NOT_FOUND when no record has that id; WARDEN_ERR_LEDGER when no
 *   checkpoint covers it yet (make one with `warden ledger checkpoint`) or the proof does not verify.
 */
export async function proveInclusion(
  source: CheckpointSource,
  id: string,
  treeSize?: number,
): Promise<InclusionEvidence> {
  const checkpoint = await pickCheckpoint(source, treeSize);
  const leaves: Buffer[] = [];
  let found: RawRow | undefined;
  for await (const row of asAsync(source.rows(0))) {
    if (leaves.length >= checkpoint.sth.tree_size) break;
    leaves.push(leafHash(row[6]));
    if (row[1] === id) found = row;
  }
  if (found === undefined) {
    throw new WardenError(
      "WARDEN_ERR_DECISION_NOT_FOUND",
      `no record with id ${JSON.stringify(id)} in the first ${checkpoint.sth.tree_size} records`,
      {
        details: [
          {
            field: "id",
            expected: `a record id covered by checkpoint ${checkpoint.sth.tree_size}`,
            found: JSON.stringify(id),
            fix: "check the id, or make a newer checkpoint (warden ledger checkpoint) if the record is recent",
          },
        ],
      },
    );
  }
  const index = found[0] - 1;
  const proof = inclusionProof(leaves, index, checkpoint.sth.tree_size);
  const check = verifyInclusion(
    leaves[index]!,
    index,
    checkpoint.sth.tree_size,
    proof,
    fromHex(checkpoint.sth.root_hash),
  );
  if (!check.ok) {
    throw new WardenError(
      "WARDEN_ERR_LEDGER",
      `the ledger does not match checkpoint ${checkpoint.sth.tree_size}: ${check.message}`,
    );
  }
  return {
    id,
    seq: found[0],
    leaf_index: index,
    entry: found[6],
    leaf_hash: toHex(leaves[index]!),
    tree_size: checkpoint.sth.tree_size,
    inclusion_proof: proofToHex(proof),
    checkpoint: checkpoint.sth,
  };
}

/** A consistency proof between two checkpoints. */
export interface ConsistencyEvidence {
  readonly old_checkpoint: SignedTreeHead;
  readonly new_checkpoint: SignedTreeHead;
  readonly consistency_proof: readonly string[];
}

/**
 * Prove that the checkpoint of `newSize` extends the one of `oldSize` (both must be stored). Checked before
 * it is returned.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when either checkpoint is missing or the proof does not verify.
 */
export async function proveConsistency(
  source: CheckpointSource,
  oldSize: number,
  newSize: number,
): Promise<ConsistencyEvidence> {
  if (!(oldSize <= newSize)) {
    throw new WardenError(
      "WARDEN_ERR_LEDGER",
      `the old size ${oldSize} is larger than the new size ${newSize}`,
    );
  }
  const older = await pickCheckpoint(source, oldSize);
  const newer = await pickCheckpoint(source, newSize);
  const leaves = await leafHashesOf(source, newSize);
  const proof = consistencyProof(leaves, oldSize, newSize);
  const check = verifyConsistency(
    oldSize,
    newSize,
    fromHex(older.sth.root_hash),
    fromHex(newer.sth.root_hash),
    proof,
  );
  if (!check.ok) {
    throw new WardenError(
      "WARDEN_ERR_LEDGER",
      `checkpoint ${newSize} does not extend checkpoint ${oldSize}: ${check.message}`,
    );
  }
  return { old_checkpoint: older.sth, new_checkpoint: newer.sth, consistency_proof: proofToHex(proof) };
}

async function pickCheckpoint(
  source: CheckpointSource,
  treeSize: number | undefined,
): Promise<StoredCheckpoint> {
  const all = await source.checkpoints();
  const chosen = treeSize === undefined ? all[all.length - 1] : all.find((c) => c.sth.tree_size === treeSize);
  if (chosen === undefined) {
    const sizes = all.map((c) => c.sth.tree_size);
    throw new WardenError(
      "WARDEN_ERR_LEDGER",
      treeSize === undefined
        ? "the ledger has no checkpoint yet: make one with `warden ledger checkpoint`"
        : `no checkpoint of size ${treeSize}; the checkpoints are of sizes ${sizes.join(", ") || "(none)"}`,
    );
  }
  return chosen;
}

/** The first problem with the checkpoints, or undefined when every one holds. */
export interface CheckpointProblem {
  readonly tree_size: number;
  readonly reason: string;
}

/**
 * Check stored checkpoints against the ledger's leaves (in order; `leaves[i]` is record i + 1's leaf hash):
 * each signature (when a public key is given), each root recomputed at its size, and that no checkpoint
 * covers more records than the ledger holds (records cut off the end).
 */
export function checkCheckpoints(
  checkpoints: readonly StoredCheckpoint[],
  leaves: Iterable<Uint8Array>,
  publicKey: KeyObject | undefined,
): CheckpointProblem | undefined {
  for (const c of checkpoints) {
    if (publicKey !== undefined) {
      const check = verifyTreeHead(c.sth, publicKey);
      if (!check.ok)
        return {
          tree_size: c.sth.tree_size,
          reason: `checkpoint refused (${check.failure}): ${check.message}`,
        };
    }
  }
  const sizes = [...checkpoints].sort((a, b) => a.sth.tree_size - b.sth.tree_size);
  const frontier = new MerkleFrontier();
  let next = 0;
  const compare = () => {
    while (next < sizes.length && sizes[next]!.sth.tree_size === frontier.size) {
      const c = sizes[next]!;
      if (toHex(frontier.root()) !== c.sth.root_hash) {
        return {
          tree_size: c.sth.tree_size,
          reason:
            "the records do not match the checkpoint's Merkle root: records up to it were altered, reordered or replaced",
        };
      }
      next++;
    }
    return undefined;
  };
  let problem = compare();
  if (problem) return problem;
  for (const leaf of leaves) {
    frontier.append(leaf);
    problem = compare();
    if (problem) return problem;
  }
  if (next < sizes.length) {
    const c = sizes[next]!;
    return {
      tree_size: c.sth.tree_size,
      reason: `truncated: checkpoint ${c.sth.tree_size} was signed over ${c.sth.tree_size} records, but the ledger holds ${frontier.size}`,
    };
  }
  return undefined;
}

/** Where a data folder keeps the checkpoint signing key (and `<path>.pub`, its public half). */
export function defaultSigningKeyPath(dataDir: string): string {
  return join(dataDir, "keys", "ledger-ed25519.pem");
}
