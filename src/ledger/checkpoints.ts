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
import { chainHash, GENESIS_HASH } from "./hash.js";
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
  /** At most `limit` raw records after `afterSeq`, in sequence order: one query. */
  page(afterSeq: number, limit: number): Promise<readonly RawRow[]> | readonly RawRow[];
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
  let page: Database.Statement<[number, number], RawRow> | undefined;
  return {
    page(afterSeq, limit) {
      page ??= db
        .prepare<[number, number], RawRow>(
          "SELECT seq, id, kind, time, model, version, entry, prev_hash, hash FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .raw(true);
      return page.all(afterSeq, limit);
    },
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

/** Records read per query while checkpointing. */
const PAGE_ROWS = 512;
const HEX_HASH = /^[0-9a-f]{64}$/;

/**
 * Builds checkpoints incrementally. It holds the Merkle frontier and the chain's end (sequence number and hash)
 * as far as it has read, so that each {@link catchUp} reads only the records committed since the previous one:
 * the server's checkpoint thread catches up every second and signs at its interval, instead of reading a whole
 * interval's records at once when it signs (a burst of CPU that grew with the traffic).
 *
 * Each record read is checked before its leaf is added: its sequence number follows the last one, its
 * `prev_hash` is the last record's hash, and its hash is sha256(prev_hash ‖ entry), so a broken chain is never
 * signed. A record is checked when it is read: one changed afterwards is signed as it was read, so the signed
 * head still holds its original content and `warden ledger verify` reports the change. Before signing, the
 * last record read is read again: a ledger that lost records since (restored from a backup, a lagging replica)
 * is read afresh from its latest stored checkpoint rather than signed past its end. Each entry's content is left
 * to `warden ledger verify`, which also checks it. Calls on one builder run one at a time, in order.
 */
export class CheckpointBuilder {
  readonly #source: CheckpointSource;
  #frontier!: MerkleFrontier;
  /** The hash of record `frontier.size`; undefined until read, when restored from a checkpoint. */
  #lastHash: string | undefined;
  /** The call running now: the next one waits for it. */
  #turn: Promise<unknown> = Promise.resolve();

  private constructor(source: CheckpointSource, latest: StoredCheckpoint | undefined) {
    this.#source = source;
    this.#restore(latest);
  }

  /** Start from the latest stored checkpoint (only the latest is read: they add up, one a minute). */
  static async open(source: CheckpointSource): Promise<CheckpointBuilder> {
    return new CheckpointBuilder(source, await source.latestCheckpoint());
  }

  /** Records checked and added so far (the size of the tree {@link sign} would sign now, before catching up). */
  get size(): number {
    return this.#frontier.size;
  }

  /**
   * Read, check and add every record committed after those already added; returns the new size.
   *
   * @throws WardenError WARDEN_ERR_LEDGER when a record does not continue the chain (the builder stays at the
   *   last good record, so a later call fails the same way until the ledger is mended).
   */
  catchUp(): Promise<number> {
    return this.#inTurn(() => this.#catchUp());
  }

  /**
   * Catch up, then sign a tree head over every record added, store it and return it; with nothing new since the
   * latest stored checkpoint, returns that one.
   *
   * @throws WardenError WARDEN_ERR_LEDGER when the new records do not verify.
   */
  sign(key: SigningKey, now = new Date()): Promise<StoredCheckpoint> {
    return this.#inTurn(() => this.#sign(key, now));
  }

  #inTurn<T>(call: () => Promise<T>): Promise<T> {
    const result = this.#turn.then(call);
    this.#turn = result.catch(() => undefined);
    return result;
  }

  #restore(latest: StoredCheckpoint | undefined): void {
    this.#frontier = latest
      ? MerkleFrontier.restore(
          latest.sth.tree_size,
          latest.frontier.map((h) => fromHex(h, "frontier")),
        )
      : new MerkleFrontier();
    this.#lastHash = latest === undefined || latest.sth.tree_size === 0 ? GENESIS_HASH : undefined;
  }

  async #sign(key: SigningKey, now: Date): Promise<StoredCheckpoint> {
    let stored = await this.#source.latestCheckpoint();
    // Another signer (a second server on a shared PostgreSQL ledger, `warden ledger checkpoint`) went further.
    if (stored !== undefined && stored.sth.tree_size > this.#frontier.size) this.#restore(stored);
    try {
      await this.#catchUp();
    } catch (error) {
      // A ledger that lost its tail and grew again breaks the chain where it was read up to: read it afresh.
      if (await this.#endStillHolds()) throw error;
    }
    if (!(await this.#endStillHolds())) {
      // The ledger no longer holds what was read: start again from what is stored.
      stored = await this.#source.latestCheckpoint();
      this.#restore(stored);
      await this.#catchUp();
    }
    const frontier = this.#frontier;
    if (stored !== undefined && stored.sth.tree_size === frontier.size) return stored;
    const sth = signTreeHead(makeTreeHead(frontier.size, frontier.root(), key.keyId, now), key.privateKey);
    const checkpoint = { sth, frontier: frontier.hashes().map(toHex) };
    await this.#source.saveCheckpoint(checkpoint);
    return checkpoint;
  }

  /** Whether the last record read is still in the ledger with the hash it had. */
  async #endStillHolds(): Promise<boolean> {
    const size = this.#frontier.size;
    if (size === 0 || this.#lastHash === undefined) return true;
    const [row] = await this.#source.page(size - 1, 1);
    return row !== undefined && row[0] === size && row[8] === this.#lastHash;
  }

  async #catchUp(): Promise<number> {
    for (;;) {
      const size = this.#frontier.size;
      // Restored from a checkpoint: its last record, read first, gives the hash the chain continues from.
      const rows = await this.#source.page(this.#lastHash === undefined ? size - 1 : size, PAGE_ROWS);
      let at = 0;
      if (this.#lastHash === undefined && rows.length > 0) {
        if (rows[0]![0] !== size) {
          throw brokenChain(size, "missing: the last checkpoint's last record is not in the ledger");
        }
        this.#lastHash = rows[0]![8];
        at = 1;
      }
      for (; at < rows.length; at++) {
        const row = rows[at]!;
        const entry = row[6];
        if (!HEX_HASH.test(this.#lastHash!)) {
          throw brokenChain(this.#frontier.size, "its stored hash is not 64 lower-case hex digits");
        }
        if (
          row[0] !== this.#frontier.size + 1 ||
          row[7] !== this.#lastHash ||
          chainHash(this.#lastHash!, entry) !== row[8]
        ) {
          return this.#refuse(rows.slice(at));
        }
        this.#frontier.append(leafHash(entry));
        this.#lastHash = row[8];
      }
      if (rows.length < PAGE_ROWS) return this.#frontier.size;
    }
  }

  /**
   * A record (the first of `rows`) fails the chain check: say exactly how, with the verifier `warden ledger
   * verify` uses (a hash mismatch is only named with the next record in hand, which may be on the next page).
   */
  async #refuse(rows: readonly RawRow[]): Promise<never> {
    const verifier = new ChainVerifier(
      undefined,
      { count: this.#frontier.size, prevHash: this.#lastHash! },
      { content: false },
    );
    let page = rows;
    for (;;) {
      for (const row of page) {
        const problem = verifier.push(row);
        if (problem !== undefined && !problem.ok)
          throw brokenChain(problem.firstBad.seq, problem.firstBad.reason);
      }
      if (page.length === 0 || !verifier.pending) break;
      page = await this.#source.page(page[page.length - 1]![0], PAGE_ROWS);
    }
    const end = verifier.finish();
    if (!end.ok) throw brokenChain(end.firstBad.seq, end.firstBad.reason);
    throw brokenChain(this.#frontier.size + 1, "it does not continue the chain");
  }
}

/**
 * Make a checkpoint now: extend the last checkpoint's frontier over the records after it (checking their chain
 * first; see {@link CheckpointBuilder}), sign the new head, store it, and return it. With no new records since
 * the last checkpoint, returns that one.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when the records after the last checkpoint do not verify.
 */
export async function makeCheckpoint(
  source: CheckpointSource,
  key: SigningKey,
  now = new Date(),
): Promise<StoredCheckpoint> {
  return (await CheckpointBuilder.open(source)).sign(key, now);
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
