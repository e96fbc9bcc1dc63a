/**
 * Merkle trees over the ledger, as Certificate Transparency defines them (RFC 9162 §2.1, the same hashing as
 * RFC 6962): leaf and node hashing, the Merkle Tree Hash (root) of the first n leaves, inclusion proofs
 * (§2.1.3) and consistency proofs (§2.1.4), with their verifiers.
 *
 * - `leafHash(d) = SHA-256(0x00 ‖ d)`, `nodeHash(l, r) = SHA-256(0x01 ‖ l ‖ r)`; the two prefixes keep a leaf
 *   from ever being passed off as an inner node (second pre-image resistance).
 * - The root of n > 1 leaves is `nodeHash(root of the first k, root of the rest)` where k is the largest power
 *   of two smaller than n; the root of one leaf is its leaf hash; the root of none is SHA-256 of nothing.
 * - A proof is an array of 32-byte hashes, in the order of the RFC (bottom of the tree first).
 *
 * Producers take leaf hashes, not leaf data: the ledger hashes each record's canonical entry JSON once and
 * keeps the hash. Three ways to produce:
 * - the functions {@link rootOf}, {@link inclusionProof} and {@link consistencyProof} over an array of leaf
 *   hashes hash each needed subtree afresh: O(n) hashing per call, O(log n) extra memory;
 * - {@link MerkleTree} keeps every complete subtree's hash (about 64 bytes per leaf), so after O(n) hashing
 *   to build it, each root or proof for any earlier size costs O(log² n) at most;
 * - {@link MerkleFrontier} keeps O(log n) hashes and gives the root at its current size, for a checkpoint
 *   over millions of records read as a stream.
 *
 * Verifiers never throw: they return a {@link ProofCheck} that says why a proof was refused. Producers throw
 * WardenError WARDEN_ERR_LEDGER (field, expected, found) when asked for something that does not exist.
 */
import * as crypto from "node:crypto";
import { describeValue, WardenError } from "../errors/index.js";

/** Bytes in a SHA-256 hash. */
export const HASH_BYTES = 32;

/** The root of the empty tree: SHA-256 of the empty string. */
export const EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;
const HEX_HASH = /^[0-9a-f]{64}$/;

// One-shot hashing (Node ≥ 20.12) is about 40% faster than createHash for 65-byte inputs; older 20.x falls back.
// A string is hashed as its UTF-8 bytes.
const oneShot: ((data: Uint8Array | string) => Buffer) | undefined =
  typeof crypto.hash === "function" ? (data) => crypto.hash("sha256", data, "buffer") : undefined;

function sha256(data: Uint8Array): Buffer {
  return oneShot ? oneShot(data) : crypto.createHash("sha256").update(data).digest();
}

/** The root of the empty tree (a fresh copy each time, so callers may keep or change it). */
export function emptyRoot(): Buffer {
  return Buffer.from(EMPTY_ROOT_HEX, "hex");
}

/**
 * The leaf hash `SHA-256(0x00 ‖ data)`. A string is hashed as its UTF-8 bytes; for a ledger record, `data` is
 * its canonical entry JSON (the `entry` column).
 */
export function leafHash(data: Uint8Array | string): Buffer {
  let bytes: Uint8Array;
  // A string is hashed as its UTF-8 bytes with no copy into a buffer first ("\u0000" is the byte 0x00).
  if (typeof data === "string" && oneShot !== undefined) return oneShot(`\u0000${data}`);
  if (typeof data === "string") bytes = Buffer.from(data, "utf8");
  else if (data instanceof Uint8Array) bytes = data;
  else throw badArgument("data", "a Uint8Array or a string", describeValue(data));
  const input = Buffer.allocUnsafe(1 + bytes.length);
  input[0] = LEAF_PREFIX;
  input.set(bytes, 1);
  return sha256(input);
}

// Reused by nodeHash: hashing runs on one thread, and sha256 copies nothing out of it.
const nodeInput = Buffer.alloc(1 + 2 * HASH_BYTES);
nodeInput[0] = NODE_PREFIX;

/** The inner node hash `SHA-256(0x01 ‖ left ‖ right)` of two 32-byte hashes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  requireHash(left, "left");
  requireHash(right, "right");
  return hashPair(left, right);
}

function hashPair(left: Uint8Array, right: Uint8Array): Buffer {
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + HASH_BYTES);
  return sha256(nodeInput);
}

/** The node over the two adjacent hashes at `offset` in `bytes` (one copy instead of two). */
function hashSiblings(bytes: Buffer, offset: number): Buffer {
  nodeInput.set(bytes.subarray(offset, offset + 2 * HASH_BYTES), 1);
  return sha256(nodeInput);
}

/** A hash as 64 lower-case hex digits. */
export function toHex(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("hex");
}

/**
 * A hash from 64 lower-case hex digits.
 * @throws WardenError WARDEN_ERR_LEDGER naming `field` when `text` is anything else.
 */
export function fromHex(text: string, field = "hash"): Buffer {
  if (typeof text !== "string" || !HEX_HASH.test(text)) {
    throw badArgument(field, "a SHA-256 hash as 64 lower-case hex digits", describeValue(text));
  }
  return Buffer.from(text, "hex");
}

/** A proof as hex strings (for JSON). */
export function proofToHex(proof: readonly Uint8Array[]): string[] {
  return proof.map(toHex);
}

/** A proof from hex strings. @throws WardenError WARDEN_ERR_LEDGER naming the bad element. */
export function proofFromHex(hexes: readonly string[], field = "proof"): Buffer[] {
  if (!Array.isArray(hexes)) throw badArgument(field, "an array of hex hashes", describeValue(hexes));
  return hexes.map((text, i) => fromHex(text, `${field}[${i}]`));
}

// ---------------------------------------------------------------------------------------------------------
// Producing roots and proofs

/**
 * Where a producer finds the root of a range of leaves. Every range the proofs ask for starts at a multiple of
 * a power of two at least as large as the range (RFC 9162's recursion only ever cuts at such points).
 */
interface Subtrees {
  /** The Merkle Tree Hash of leaves [start, end), end > start. */
  range(start: number, end: number): Buffer;
}

/** Leaf hashes in an array: each range is hashed afresh, with a frontier (O(end − start) hashing). */
function arraySubtrees(leafHashes: readonly Uint8Array[]): Subtrees {
  return {
    range(start, end) {
      const frontier = new MerkleFrontier();
      for (let i = start; i < end; i++) frontier.append(leafHashes[i]!);
      return frontier.root();
    },
  };
}

/** The largest power of two smaller than n (n ≥ 2): where RFC 9162 splits a tree of n leaves. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, iteratively: siblings from the root down, then reversed. */
function inclusionPath(subtrees: Subtrees, index: number, size: number): Buffer[] {
  const proof: Buffer[] = [];
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      proof.push(subtrees.range(start + k, end));
      end = start + k;
    } else {
      proof.push(subtrees.range(start, start + k));
      start += k;
    }
  }
  return proof.reverse();
}

/** PROOF(oldSize, D[0:newSize]) of RFC 9162 §2.1.4.1 (SUBPROOF with b = true), for 0 < oldSize < newSize. */
function consistencyPath(subtrees: Subtrees, oldSize: number, newSize: number): Buffer[] {
  const proof: Buffer[] = [];
  let start = 0;
  let end = newSize;
  let whole = true; // SUBPROOF's b: the old tree is the whole of the subtree [start, oldSize)
  while (oldSize !== end) {
    const k = splitPoint(end - start);
    if (oldSize - start <= k) {
      proof.push(subtrees.range(start + k, end));
      end = start + k;
    } else {
      proof.push(subtrees.range(start, start + k));
      start += k;
      whole = false;
    }
  }
  if (!whole) proof.push(subtrees.range(start, end));
  return proof.reverse();
}

/** How many hashes PATH(index, D[size]) holds (0 ≤ index < size). */
function inclusionLength(index: number, size: number): number {
  let length = 0;
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) end = start + k;
    else start += k;
    length++;
  }
  return length;
}

/** How many hashes PROOF(oldSize, D[newSize]) holds (0 < oldSize < newSize). */
function consistencyLength(oldSize: number, newSize: number): number {
  let length = 0;
  let start = 0;
  let end = newSize;
  let whole = true;
  while (oldSize !== end) {
    const k = splitPoint(end - start);
    if (oldSize - start <= k) end = start + k;
    else {
      start += k;
      whole = false;
    }
    length++;
  }
  return whole ? length : length + 1;
}

/**
 * The Merkle Tree Hash (root) of the first `size` leaf hashes (default: all of them). O(size) hashing.
 * @throws WardenError WARDEN_ERR_LEDGER if `size` is not an integer from 0 to `leafHashes.length`, or a leaf
 *   hash is not 32 bytes.
 */
export function rootOf(leafHashes: readonly Uint8Array[], size: number = leafHashes?.length): Buffer {
  requireLeafHashes(leafHashes, "leafHashes");
  requireCount(size, "size", 0, leafHashes.length, "the number of leaf hashes given");
  requireHashes(leafHashes, size, "leafHashes");
  return size === 0 ? emptyRoot() : arraySubtrees(leafHashes).range(0, size);
}

/**
 * The inclusion proof of leaf `index` in the tree of the first `treeSize` leaf hashes (RFC 9162 §2.1.3.1).
 * O(treeSize) hashing; for many proofs over one large tree, build a {@link MerkleTree}.
 * @throws WardenError WARDEN_ERR_LEDGER unless 0 ≤ index < treeSize ≤ leafHashes.length.
 */
export function inclusionProof(leafHashes: readonly Uint8Array[], index: number, treeSize: number): Buffer[] {
  requireLeafHashes(leafHashes, "leafHashes");
  requireCount(treeSize, "treeSize", 1, leafHashes.length, "the number of leaf hashes given");
  requireCount(index, "index", 0, treeSize - 1, "the tree size minus one");
  requireHashes(leafHashes, treeSize, "leafHashes");
  return inclusionPath(arraySubtrees(leafHashes), index, treeSize);
}

/**
 * The consistency proof that the tree of the first `oldSize` leaf hashes is a prefix of the tree of the first
 * `newSize` (RFC 9162 §2.1.4.1). Empty when oldSize is 0 or equals newSize. O(newSize) hashing.
 * @throws WardenError WARDEN_ERR_LEDGER unless 0 ≤ oldSize ≤ newSize ≤ leafHashes.length.
 */
export function consistencyProof(
  leafHashes: readonly Uint8Array[],
  oldSize: number,
  newSize: number,
): Buffer[] {
  requireLeafHashes(leafHashes, "leafHashes");
  requireCount(newSize, "newSize", 0, leafHashes.length, "the number of leaf hashes given");
  requireCount(oldSize, "oldSize", 0, newSize, "newSize");
  requireHashes(leafHashes, newSize, "leafHashes");
  if (oldSize === 0 || oldSize === newSize) return [];
  return consistencyPath(arraySubtrees(leafHashes), oldSize, newSize);
}

/**
 * A compact range over leaves 0..size−1: the roots of the perfect subtrees that the size's binary digits
 * describe (largest first), O(log n) hashes in all. Appending a leaf costs one hash per trailing 1 bit of the
 * size (two on average); the root folds the stored hashes from the right.
 */
export class MerkleFrontier {
  #hashes: Buffer[] = [];
  #size = 0;

  /** Leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /** Append one leaf hash (32 bytes; see {@link leafHash}). */
  append(leafHash: Uint8Array): void {
    requireHash(leafHash, "leafHash");
    let hash: Buffer | undefined;
    let size = this.#size;
    while (size % 2 === 1) {
      hash = hashPair(this.#hashes.pop()!, hash ?? leafHash);
      size = (size - 1) / 2;
    }
    this.#hashes.push(hash ?? Buffer.from(leafHash));
    this.#size++;
  }

  /** The root of the tree of every leaf appended so far (the empty tree's root before any). */
  root(): Buffer {
    const hashes = this.#hashes;
    if (hashes.length === 0) return emptyRoot();
    let root = hashes[hashes.length - 1]!;
    for (let i = hashes.length - 2; i >= 0; i--) root = hashPair(hashes[i]!, root);
    return hashes.length === 1 ? Buffer.from(root) : root;
  }

  /** The stored subtree roots, largest (leftmost) first: with `size`, enough to {@link restore} the frontier. */
  hashes(): Buffer[] {
    return this.#hashes.map((hash) => Buffer.from(hash));
  }

  /**
   * A frontier that resumes from a saved `size` and {@link hashes}, so a checkpoint can carry on from the last
   * one without reading the leaves before it.
   * @throws WardenError WARDEN_ERR_LEDGER when the number of hashes is not the number of 1 bits in `size`, or
   *   one is not 32 bytes.
   */
  static restore(size: number, hashes: readonly Uint8Array[]): MerkleFrontier {
    requireCount(size, "size", 0, Number.MAX_SAFE_INTEGER, "2^53 − 1");
    requireLeafHashes(hashes, "hashes");
    const expected = onesIn(size);
    if (hashes.length !== expected) {
      throw badArgument(
        "hashes",
        `${expected} hashes for a frontier of size ${size} (one per 1 bit of the size)`,
        `${hashes.length} hashes`,
        "save and restore `size` and `hashes()` together",
      );
    }
    requireHashes(hashes, hashes.length, "hashes");
    const frontier = new MerkleFrontier();
    frontier.#hashes = hashes.map((hash) => Buffer.from(hash));
    frontier.#size = size;
    return frontier;
  }
}

function onesIn(n: number): number {
  let ones = 0;
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2)) ones += rest % 2;
  return ones;
}

/** Hashes packed in one growing buffer (a level of a MerkleTree). */
class HashArray {
  bytes = Buffer.alloc(0);
  length = 0;

  push(hash: Uint8Array): void {
    const offset = this.length * HASH_BYTES;
    if (offset + HASH_BYTES > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(1024, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, offset);
      this.bytes = grown;
    }
    this.bytes.set(hash, offset);
    this.length++;
  }

  /** A view (not a copy) of hash i. */
  at(i: number): Buffer {
    return this.bytes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }
}

/**
 * An in-memory Merkle tree that keeps the hash of every complete subtree (level h holds ⌊n / 2^h⌋ hashes;
 * about 64 bytes per leaf in all). Appending costs two hashes on average. A root or proof for any size up to
 * the current one reads stored hashes and hashes only along the ragged right edge: O(log² n) at most.
 */
export class MerkleTree {
  #levels: HashArray[] = [new HashArray()];

  /** A tree of these leaf hashes. */
  static from(leafHashes: readonly Uint8Array[]): MerkleTree {
    requireLeafHashes(leafHashes, "leafHashes");
    requireHashes(leafHashes, leafHashes.length, "leafHashes");
    const tree = new MerkleTree();
    for (const hash of leafHashes) tree.#append(hash);
    return tree;
  }

  /** Leaves in the tree. */
  get size(): number {
    return this.#levels[0]!.length;
  }

  /** Append one leaf hash (32 bytes; see {@link leafHash}). */
  append(leafHash: Uint8Array): void {
    requireHash(leafHash, "leafHash");
    this.#append(leafHash);
  }

  #append(leafHash: Uint8Array): void {
    const levels = this.#levels;
    levels[0]!.push(leafHash);
    // Each completed pair makes a node one level up.
    for (let level = 0; levels[level]!.length % 2 === 0; level++) {
      const below = levels[level]!;
      if (levels[level + 1] === undefined) levels.push(new HashArray());
      levels[level + 1]!.push(hashSiblings(below.bytes, (below.length - 2) * HASH_BYTES));
    }
  }

  /** The leaf hash at `index`. */
  leafHash(index: number): Buffer {
    requireCount(index, "index", 0, this.size - 1, "the tree size minus one");
    return Buffer.from(this.#levels[0]!.at(index));
  }

  /** The root of the first `size` leaves (default: all). */
  root(size: number = this.size): Buffer {
    requireCount(size, "size", 0, this.size, "the tree's size");
    return size === 0 ? emptyRoot() : Buffer.from(this.#subtrees.range(0, size));
  }

  /** The inclusion proof of leaf `index` in the tree of the first `treeSize` leaves (default: all). */
  inclusionProof(index: number, treeSize: number = this.size): Buffer[] {
    requireCount(treeSize, "treeSize", 1, this.size, "the tree's size");
    requireCount(index, "index", 0, treeSize - 1, "the tree size minus one");
    return inclusionPath(this.#subtrees, index, treeSize).map((hash) => Buffer.from(hash));
  }

  /** The consistency proof from the first `oldSize` leaves to the first `newSize` (default: all). */
  consistencyProof(oldSize: number, newSize: number = this.size): Buffer[] {
    requireCount(newSize, "newSize", 0, this.size, "the tree's size");
    requireCount(oldSize, "oldSize", 0, newSize, "newSize");
    if (oldSize === 0 || oldSize === newSize) return [];
    return consistencyPath(this.#subtrees, oldSize, newSize).map((hash) => Buffer.from(hash));
  }

  // A range [start, end) that is a complete, aligned subtree is stored; any other (the ragged right edge)
  // splits at the largest power of two, whose left part is complete and aligned.
  #subtrees: Subtrees = {
    range: (start, end) => this.#range(start, end),
  };

  #range(start: number, end: number): Buffer {
    const width = end - start;
    if ((width & (width - 1)) === 0 && width <= 2 ** 30) {
      const level = 31 - Math.clz32(width);
      return this.#levels[level]!.at(start / width);
    }
    const k = splitPoint(width);
    return hashPair(this.#range(start, start + k), this.#range(start + k, end));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Verifying proofs

/** Why a proof was refused. */
export type ProofFailure =
  /** An argument has the wrong type or shape: a hash that is not 32 bytes, a size that is not an integer. */
  | "malformed"
  /** The index is not below the tree size, or the old size is above the new one. */
  | "out-of-range"
  /** The proof does not have the number of hashes that the index and sizes call for. */
  | "proof-length"
  /** The proof does not lead to the root(s): a wrong leaf, proof hash, root, index or size. */
  | "root-mismatch";

/** The outcome of checking a proof. */
export type ProofCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly failure: ProofFailure; readonly message: string };

const OK: ProofCheck = Object.freeze({ ok: true });

function refuse(failure: ProofFailure, message: string): ProofCheck {
  return { ok: false, failure, message };
}

/**
 * Check that `leafHash` is leaf `index` of the tree of `treeSize` leaves whose root is `root`, by the
 * procedure of RFC 9162 §2.1.3.2 (and a check that the proof has exactly the expected number of hashes).
 * Never throws: anything malformed is refused with `failure: "malformed"`.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): ProofCheck {
  try {
    const malformed =
      checkHash(leafHash, "leafHash") ??
      checkHash(root, "root") ??
      checkCount(index, "index") ??
      checkCount(treeSize, "treeSize") ??
      checkProofArray(proof);
    if (malformed !== undefined) return refuse("malformed", malformed);
    if (index >= treeSize) {
      return refuse("out-of-range", `index ${index} is not below the tree size ${treeSize}`);
    }
    const expected = inclusionLength(index, treeSize);
    if (proof.length !== expected) {
      return refuse(
        "proof-length",
        `an inclusion proof for index ${index} in a tree of ${treeSize} has ${expected} hashes, this one has ${proof.length}`,
      );
    }
    const badElement = checkProofHashes(proof);
    if (badElement !== undefined) return refuse("malformed", badElement);

    // RFC 9162 §2.1.3.2, with sizes beyond 2^32 kept exact (no 32-bit bit operators).
    let fn = index;
    let sn = treeSize - 1;
    let r: Uint8Array = leafHash;
    for (const p of proof) {
      if (sn === 0) return refuse("proof-length", "the proof is longer than the path to the root");
      if (fn % 2 === 1 || fn === sn) {
        r = hashPair(p, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      } else {
        r = hashPair(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) return refuse("proof-length", "the proof is shorter than the path to the root");
    if (!equal(r, root)) {
      return refuse(
        "root-mismatch",
        `the proof for index ${index} in a tree of ${treeSize} leads to root ${toHex(r)}, not ${toHex(root)}`,
      );
    }
    return OK;
  } catch (error) {
    return refuse("malformed", `the arguments could not be read: ${String(error)}`);
  }
}

/**
 * Check that the tree of `oldSize` leaves with root `oldRoot` is a prefix of the tree of `newSize` leaves with
 * root `newRoot`, by the procedure of RFC 9162 §2.1.4.2. The edge cases: equal sizes need equal roots and an
 * empty proof; an old size of 0 needs the empty tree's root as `oldRoot` and an empty proof (every tree
 * extends the empty one). Never throws.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): ProofCheck {
  try {
    const malformed =
      checkCount(oldSize, "oldSize") ??
      checkCount(newSize, "newSize") ??
      checkHash(oldRoot, "oldRoot") ??
      checkHash(newRoot, "newRoot") ??
      checkProofArray(proof);
    if (malformed !== undefined) return refuse("malformed", malformed);
    if (oldSize > newSize) {
      return refuse("out-of-range", `the old size ${oldSize} is above the new size ${newSize}`);
    }
    const expected = oldSize === 0 || oldSize === newSize ? 0 : consistencyLength(oldSize, newSize);
    if (proof.length !== expected) {
      return refuse(
        "proof-length",
        `a consistency proof from size ${oldSize} to ${newSize} has ${expected} hashes, this one has ${proof.length}`,
      );
    }
    const badElement = checkProofHashes(proof);
    if (badElement !== undefined) return refuse("malformed", badElement);

    if (oldSize === 0 && !equal(oldRoot, Buffer.from(EMPTY_ROOT_HEX, "hex"))) {
      return refuse(
        "root-mismatch",
        `the root of the empty tree is ${EMPTY_ROOT_HEX}, not ${toHex(oldRoot)}`,
      );
    }
    if (oldSize === newSize) {
      return equal(oldRoot, newRoot)
        ? OK
        : refuse(
            "root-mismatch",
            `two trees of size ${oldSize} have different roots: ${toHex(oldRoot)} and ${toHex(newRoot)}`,
          );
    }
    if (oldSize === 0) return OK;

    // RFC 9162 §2.1.4.2. When the old tree is a perfect subtree of the new one, its root starts the path.
    const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
    let fn = oldSize - 1;
    let sn = newSize - 1;
    while (fn % 2 === 1) {
      fn = (fn - 1) / 2;
      sn = Math.floor(sn / 2);
    }
    let fr: Uint8Array = path[0]!;
    let sr: Uint8Array = path[0]!;
    for (let i = 1; i < path.length; i++) {
      const c = path[i]!;
      if (sn === 0) return refuse("proof-length", "the proof is longer than the path to the new root");
      if (fn % 2 === 1 || fn === sn) {
        fr = hashPair(c, fr);
        sr = hashPair(c, sr);
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      } else {
        sr = hashPair(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) return refuse("proof-length", "the proof is shorter than the path to the new root");
    if (!equal(fr, oldRoot)) {
      return refuse("root-mismatch", `the proof leads to old root ${toHex(fr)}, not ${toHex(oldRoot)}`);
    }
    if (!equal(sr, newRoot)) {
      return refuse("root-mismatch", `the proof leads to new root ${toHex(sr)}, not ${toHex(newRoot)}`);
    }
    return OK;
  } catch (error) {
    return refuse("malformed", `the arguments could not be read: ${String(error)}`);
  }
}

function isPowerOfTwo(n: number): boolean {
  let rest = n;
  while (rest % 2 === 0 && rest > 1) rest /= 2;
  return rest === 1;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A proof longer than this cannot be right for any size below 2^53 (consistency proofs hold at most 2·53). */
const MAX_PROOF_LENGTH = 128;

function checkHash(value: unknown, field: string): string | undefined {
  if (value instanceof Uint8Array && value.length === HASH_BYTES) return undefined;
  return `${field} must be a 32-byte Uint8Array, found ${describeBytes(value)}`;
}

function checkCount(value: unknown, field: string): string | undefined {
  if (Number.isSafeInteger(value) && (value as number) >= 0) return undefined;
  return `${field} must be a non-negative safe integer, found ${describeValue(value)}`;
}

function checkProofArray(proof: unknown): string | undefined {
  if (!Array.isArray(proof)) return `proof must be an array of 32-byte hashes, found ${describeValue(proof)}`;
  if (proof.length > MAX_PROOF_LENGTH) return `proof has ${proof.length} hashes, more than any proof can`;
  return undefined;
}

function checkProofHashes(proof: readonly unknown[]): string | undefined {
  for (let i = 0; i < proof.length; i++) {
    const problem = checkHash(proof[i], `proof[${i}]`);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function describeBytes(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return describeValue(value);
}

// ---------------------------------------------------------------------------------------------------------
// Argument checks for the producers

function badArgument(field: string, expected: string, found: string, fix?: string): WardenError {
  return new WardenError("WARDEN_ERR_LEDGER", `${field}: expected ${expected}, found ${found}`, {
    details: [fix === undefined ? { field, expected, found } : { field, expected, found, fix }],
  });
}

function requireHash(value: unknown, field: string): void {
  if (!(value instanceof Uint8Array && value.length === HASH_BYTES)) {
    throw badArgument(
      field,
      "a 32-byte SHA-256 hash (Uint8Array)",
      describeBytes(value),
      "hash leaf data with leafHash() first",
    );
  }
}

function requireLeafHashes(value: unknown, field: string): asserts value is readonly Uint8Array[] {
  if (!Array.isArray(value)) throw badArgument(field, "an array of 32-byte hashes", describeValue(value));
}

function requireHashes(hashes: readonly Uint8Array[], count: number, field: string): void {
  for (let i = 0; i < count; i++) requireHash(hashes[i], `${field}[${i}]`);
}

function requireCount(value: number, field: string, min: number, max: number, maxName: string): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw badArgument(
      field,
      max < min
        ? `an integer of at least ${min}, but the tree is too small for any`
        : `an integer from ${min} to ${max} (${maxName})`,
      describeValue(value),
    );
  }
}
