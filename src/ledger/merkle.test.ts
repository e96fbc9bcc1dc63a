import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import { WardenError } from "../errors/index.js";
import {
  consistencyProof,
  EMPTY_ROOT_HEX,
  emptyRoot,
  fromHex,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  MerkleTree,
  nodeHash,
  type ProofCheck,
  proofFromHex,
  proofToHex,
  rootOf,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";

// ---------------------------------------------------------------------------------------------------------
// Reference numbers from scripts/fixtures/merkle_reference.py (a recursive transcription of RFC 9162 §2.1).

interface Reference {
  leaves: string[];
  leaf_hashes: string[];
  roots: string[];
  inclusion: { size: number; index: number; path: string[] }[];
  consistency: { old_size: number; new_size: number; proof: string[] }[];
}

const REF = JSON.parse(
  readFileSync(new URL("../../fixtures/merkle/reference.json", import.meta.url), "utf8"),
) as Reference;
const REF_LEAVES = REF.leaves.map((data) => leafHash(Buffer.from(data, "hex")));
const refRoot = (size: number) => fromHex(REF.roots[size]!);

test("reference: leaf hashes and the roots of every size 0..70", () => {
  assert.deepEqual(REF_LEAVES.map(toHex), REF.leaf_hashes);
  const tree = MerkleTree.from(REF_LEAVES);
  const frontier = new MerkleFrontier();
  for (let size = 0; size <= REF_LEAVES.length; size++) {
    assert.equal(toHex(rootOf(REF_LEAVES, size)), REF.roots[size], `rootOf, size ${size}`);
    assert.equal(toHex(tree.root(size)), REF.roots[size], `MerkleTree, size ${size}`);
    assert.equal(toHex(frontier.root()), REF.roots[size], `MerkleFrontier, size ${size}`);
    if (size < REF_LEAVES.length) frontier.append(REF_LEAVES[size]!);
  }
  assert.equal(REF.roots[0], EMPTY_ROOT_HEX);
});

test("reference: every inclusion proof, from the array and from a MerkleTree, and each verifies", () => {
  const tree = MerkleTree.from(REF_LEAVES);
  assert.ok(REF.inclusion.length > 300);
  for (const { size, index, path } of REF.inclusion) {
    const where = `index ${index}, size ${size}`;
    assert.deepEqual(proofToHex(inclusionProof(REF_LEAVES, index, size)), path, where);
    assert.deepEqual(proofToHex(tree.inclusionProof(index, size)), path, where);
    assertOk(verifyInclusion(REF_LEAVES[index]!, index, size, proofFromHex(path), refRoot(size)), where);
  }
});

test("reference: every consistency proof for 1 ≤ m ≤ n ≤ 40, from the array and a MerkleTree, verifies", () => {
  const tree = MerkleTree.from(REF_LEAVES);
  assert.equal(REF.consistency.length, 820);
  for (const { old_size: m, new_size: n, proof } of REF.consistency) {
    const where = `${m} → ${n}`;
    assert.deepEqual(proofToHex(consistencyProof(REF_LEAVES, m, n)), proof, where);
    assert.deepEqual(proofToHex(tree.consistencyProof(m, n)), proof, where);
    assertOk(verifyConsistency(m, n, refRoot(m), refRoot(n), proofFromHex(proof)), where);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The RFC 6962 test vectors that Certificate Transparency implementations share. The numbers are copied from
// github.com/transparency-dev/merkle, proof/verify_test.go (`roots`, `leaves`, `inclusionProofs`,
// `consistencyProofs`), the test data of the Go library that certificate-transparency-go's log code uses;
// its leaf indexes are 1-based and are converted to 0-based here.

const CT_LEAVES = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
].map((data) => leafHash(Buffer.from(data, "hex")));

/** CT_ROOTS[n] is the root of the first n leaves. */
const CT_ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const CT_INCLUSION = [
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  { index: 2, size: 3, proof: ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"] },
  {
    index: 1,
    size: 5,
    proof: [
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
];

const CT_CONSISTENCY = [
  { oldSize: 1, newSize: 1, proof: [] },
  {
    oldSize: 1,
    newSize: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    oldSize: 6,
    newSize: 8,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  {
    oldSize: 2,
    newSize: 5,
    proof: [
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
  {
    oldSize: 6,
    newSize: 7,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
];

test("RFC 6962 vectors: the roots of the first 0..8 leaves", () => {
  const frontier = new MerkleFrontier();
  for (let size = 0; size <= 8; size++) {
    assert.equal(toHex(rootOf(CT_LEAVES, size)), CT_ROOTS[size], `size ${size}`);
    assert.equal(toHex(frontier.root()), CT_ROOTS[size], `frontier, size ${size}`);
    if (size < 8) frontier.append(CT_LEAVES[size]!);
  }
  assert.equal(toHex(rootOf([])), toHex(createHash("sha256").digest()));
});

test("RFC 6962 vectors: inclusion proofs are produced exactly, verify, and every corruption is refused", () => {
  for (const { index, size, proof } of CT_INCLUSION) {
    const where = `index ${index}, size ${size}`;
    assert.deepEqual(proofToHex(inclusionProof(CT_LEAVES, index, size)), proof, where);
    const root = fromHex(CT_ROOTS[size]!);
    const path = proofFromHex(proof);
    const leaf = CT_LEAVES[index]!;
    assertOk(verifyInclusion(leaf, index, size, path, root), where);

    // The corruptions of the same Go test suite (corruptInclusionProof).
    const someHash = fromHex("abacaba000000000000000000000000000000000000000000060061e00123456");
    const probes: [string, ProofCheck][] = [
      ["index - 1", verifyInclusion(leaf, index - 1, size, path, root)],
      ["index + 1", verifyInclusion(leaf, index + 1, size, path, root)],
      ["index ^ 2", verifyInclusion(leaf, index ^ 2, size, path, root)],
      ["size * 2", verifyInclusion(leaf, index, size * 2, path, root)],
      ["size / 2", verifyInclusion(leaf, index, Math.floor(size / 2), path, root)],
      ["wrong leaf", verifyInclusion(Buffer.from("WrongLeaf"), index, size, path, root)],
      ["empty root", verifyInclusion(leaf, index, size, path, emptyRoot())],
      ["random root", verifyInclusion(leaf, index, size, path, someHash)],
      ["trailing garbage", verifyInclusion(leaf, index, size, [...path, Buffer.alloc(0)], root)],
      ["trailing root", verifyInclusion(leaf, index, size, [...path, root], root)],
      ["preceding garbage", verifyInclusion(leaf, index, size, [Buffer.alloc(0), ...path], root)],
      ["preceding root", verifyInclusion(leaf, index, size, [root, ...path], root)],
    ];
    for (let i = 0; i < path.length; i++) {
      probes.push([`proof[${i}] bit 3`, verifyInclusion(leaf, index, size, flip(path, i), root)]);
    }
    if (path.length > 0)
      probes.push(["removed", verifyInclusion(leaf, index, size, path.slice(0, -1), root)]);
    if (path.length > 1) {
      const inserted = [path[0]!, someHash, ...path.slice(1)];
      probes.push(["inserted", verifyInclusion(leaf, index, size, inserted, root)]);
    }
    for (const [what, check] of probes) assert.equal(check.ok, false, `${where}: ${what}`);
  }
});

test("RFC 6962 vectors: consistency proofs are produced exactly, verify, and every corruption is refused", () => {
  for (const { oldSize, newSize, proof } of CT_CONSISTENCY) {
    const where = `${oldSize} → ${newSize}`;
    assert.deepEqual(proofToHex(consistencyProof(CT_LEAVES, oldSize, newSize)), proof, where);
    const root1 = fromHex(CT_ROOTS[oldSize]!);
    const root2 = fromHex(CT_ROOTS[newSize]!);
    const path = proofFromHex(proof);
    assertOk(verifyConsistency(oldSize, newSize, root1, root2, path), where);
    if (path.length === 0) continue;

    // The corruptions of the same Go test suite (corruptConsistencyProof).
    const wrong = Buffer.from("WrongRoot");
    const probes: [string, ProofCheck][] = [
      ["size1 - 1", verifyConsistency(oldSize - 1, newSize, root1, root2, path)],
      ["size1 + 1", verifyConsistency(oldSize + 1, newSize, root1, root2, path)],
      ["size1 ^ 2", verifyConsistency(oldSize ^ 2, newSize, root1, root2, path)],
      ["size2 * 2", verifyConsistency(oldSize, newSize * 2, root1, root2, path)],
      ["size2 / 2", verifyConsistency(oldSize, Math.floor(newSize / 2), root1, root2, path)],
      ["wrong root1", verifyConsistency(oldSize, newSize, wrong, root2, path)],
      ["wrong root2", verifyConsistency(oldSize, newSize, root1, wrong, path)],
      ["swapped roots", verifyConsistency(oldSize, newSize, root2, root1, path)],
      ["empty proof", verifyConsistency(oldSize, newSize, root1, root2, [])],
      ["trailing garbage", verifyConsistency(oldSize, newSize, root1, root2, [...path, Buffer.alloc(0)])],
      ["trailing root1", verifyConsistency(oldSize, newSize, root1, root2, [...path, root1])],
      ["trailing root2", verifyConsistency(oldSize, newSize, root1, root2, [...path, root2])],
      ["preceding garbage", verifyConsistency(oldSize, newSize, root1, root2, [Buffer.alloc(0), ...path])],
      ["preceding root1", verifyConsistency(oldSize, newSize, root1, root2, [root1, ...path])],
      ["preceding root2", verifyConsistency(oldSize, newSize, root1, root2, [root2, ...path])],
      ["preceding proof[0]", verifyConsistency(oldSize, newSize, root1, root2, [path[0]!, ...path])],
      ["truncated", verifyConsistency(oldSize, newSize, root1, root2, path.slice(0, -1))],
    ];
    for (let i = 0; i < path.length; i++) {
      const flipped = flip(path, i, 16);
      probes.push([`proof[${i}] bit 4`, verifyConsistency(oldSize, newSize, root1, root2, flipped)]);
    }
    for (const [what, check] of probes) assert.equal(check.ok, false, `${where}: ${what}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Edge cases and hostile input

test("consistency edge cases: equal sizes, the empty old tree, powers of two", () => {
  const leaves = REF_LEAVES.slice(0, 40);
  for (const size of [0, 1, 2, 3, 8, 40]) {
    assert.deepEqual(consistencyProof(leaves, size, size), []);
    assertOk(verifyConsistency(size, size, refRoot(size), refRoot(size), []), `${size} → ${size}`);
    const other = size === 40 ? refRoot(39) : refRoot(size + 1);
    const refused = verifyConsistency(size, size, refRoot(size), other, []);
    assert.equal(refused.ok, false);
    assert.equal(failure(refused), "root-mismatch");
    // Equal sizes take no proof at all.
    assert.equal(
      failure(verifyConsistency(size, size, refRoot(size), refRoot(size), [refRoot(size)])),
      "proof-length",
    );
  }
  // Every tree extends the empty one: no proof, and the old root must be the empty tree's.
  for (const size of [0, 1, 5, 40]) {
    assert.deepEqual(consistencyProof(leaves, 0, size), []);
    assertOk(verifyConsistency(0, size, emptyRoot(), refRoot(size), []), `0 → ${size}`);
    assert.equal(failure(verifyConsistency(0, size, refRoot(1), refRoot(size), [])), "root-mismatch");
    assert.equal(
      failure(verifyConsistency(0, size, emptyRoot(), refRoot(size), [emptyRoot()])),
      "proof-length",
    );
  }
  // A power-of-two old tree is a perfect subtree: its root is not repeated in the proof.
  for (const m of [1, 2, 4, 8, 16, 32]) {
    const proof = consistencyProof(leaves, m, 40);
    assert.ok(!proof.some((hash) => hash.equals(refRoot(m))), `${m} → 40`);
    assertOk(verifyConsistency(m, 40, refRoot(m), refRoot(40), proof));
  }
  assert.equal(failure(verifyConsistency(5, 4, refRoot(5), refRoot(4), [])), "out-of-range");
});

test("verifiers never throw on hostile input, and say why they refuse", () => {
  const root = refRoot(8);
  const leaf = REF_LEAVES[3]!;
  const proof = inclusionProof(REF_LEAVES, 3, 8);
  const throwing = new Proxy([], {
    get() {
      throw new Error("boom");
    },
  });
  const hostile: unknown[] = [
    undefined,
    null,
    "3",
    3.5,
    -1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 60,
    10n,
    {},
    [],
    Buffer.alloc(31),
    Buffer.alloc(33),
    toHex(root),
    throwing,
    Symbol("x"),
  ];
  for (const [which, bad] of hostile.entries()) {
    const as = <T>(value: unknown) => value as T;
    const checks = [
      verifyInclusion(as(bad), 3, 8, proof, root),
      verifyInclusion(leaf, as(bad), 8, proof, root),
      verifyInclusion(leaf, 3, as(bad), proof, root),
      verifyInclusion(leaf, 3, 8, as(bad), root),
      verifyInclusion(leaf, 3, 8, [proof[0]!, as(bad), proof[2]!], root),
      verifyInclusion(leaf, 3, 8, proof, as(bad)),
      verifyConsistency(as(bad), 8, refRoot(5), root, consistencyProof(REF_LEAVES, 5, 8)),
      verifyConsistency(5, as(bad), refRoot(5), root, consistencyProof(REF_LEAVES, 5, 8)),
      verifyConsistency(5, 8, as(bad), root, consistencyProof(REF_LEAVES, 5, 8)),
      verifyConsistency(5, 8, refRoot(5), as(bad), consistencyProof(REF_LEAVES, 5, 8)),
      verifyConsistency(5, 8, refRoot(5), root, as(bad)),
    ];
    for (const check of checks) {
      assert.equal(check.ok, false, `hostile value ${which}`);
      assert.ok(!check.ok && check.message.length > 0);
    }
  }
  assert.equal(failure(verifyInclusion(leaf, 3, 8, proof, Buffer.alloc(31))), "malformed");
  assert.equal(failure(verifyInclusion(leaf, 8, 8, proof, root)), "out-of-range");
  assert.equal(failure(verifyInclusion(leaf, 0, 0, [], emptyRoot())), "out-of-range");
  assert.equal(failure(verifyInclusion(leaf, 3, 8, proof.slice(1), root)), "proof-length");
  assert.equal(failure(verifyInclusion(leaf, 3, 8, new Array(10_000).fill(root), root)), "malformed");
  // Sizes past 2^32 are handled exactly (no 32-bit bit operators): a wrong proof fails cleanly.
  assert.equal(failure(verifyInclusion(leaf, 2 ** 40 + 3, 2 ** 41 + 5, proof, root)), "proof-length");
  const far = verifyConsistency(2 ** 40 + 1, 2 ** 52, root, root, new Array(53).fill(root));
  assert.equal(far.ok, false);
});

test("producers refuse what does not exist with a clear WardenError", () => {
  const leaves = REF_LEAVES.slice(0, 5);
  const refuses = (work: () => unknown, field: string) =>
    assert.throws(work, (error: unknown) => {
      assert.ok(error instanceof WardenError);
      assert.equal(error.code, "WARDEN_ERR_LEDGER");
      assert.equal(error.details[0]?.field, field);
      assert.ok(error.details[0]?.expected && error.details[0]?.found);
      return true;
    });
  refuses(() => inclusionProof(leaves, 5, 5), "index");
  refuses(() => inclusionProof(leaves, 0, 6), "treeSize");
  refuses(() => inclusionProof(leaves, 0, 0), "treeSize");
  refuses(() => inclusionProof(leaves, 1.5, 5), "index");
  refuses(() => consistencyProof(leaves, 4, 3), "oldSize");
  refuses(() => consistencyProof(leaves, 1, 9), "newSize");
  refuses(() => rootOf(leaves, 6), "size");
  refuses(() => rootOf([leaves[0]!, Buffer.alloc(31)]), "leafHashes[1]");
  refuses(() => rootOf("abc" as unknown as Uint8Array[]), "leafHashes");
  refuses(() => nodeHash(leaves[0]!, Buffer.alloc(3)), "right");
  refuses(() => leafHash(42 as unknown as string), "data");
  refuses(() => fromHex("ABC"), "hash");
  refuses(() => proofFromHex(["00".repeat(32), "zz"]), "proof[1]");
  refuses(() => new MerkleFrontier().append(Buffer.alloc(0)), "leafHash");
  refuses(() => MerkleTree.from(leaves).inclusionProof(0, 6), "treeSize");
  refuses(() => new MerkleTree().leafHash(0), "index");
  refuses(() => MerkleFrontier.restore(5, [leaves[0]!]), "hashes");
});

test("leafHash and nodeHash: domain-separated SHA-256, strings as UTF-8", () => {
  const sha = (...parts: Uint8Array[]) => {
    const hash = createHash("sha256");
    for (const part of parts) hash.update(part);
    return hash.digest("hex");
  };
  assert.equal(toHex(leafHash("é")), sha(Buffer.from([0]), Buffer.from("é", "utf8")));
  assert.equal(toHex(leafHash(new Uint8Array([1, 2]))), sha(Buffer.from([0, 1, 2])));
  const [a, b] = [REF_LEAVES[0]!, REF_LEAVES[1]!];
  assert.equal(toHex(nodeHash(a, b)), sha(Buffer.from([1]), a, b));
  // A leaf whose data is 0x01 ‖ a ‖ b does not pose as their parent node.
  assert.notEqual(toHex(leafHash(Buffer.concat([Buffer.from([1]), a, b]))), toHex(nodeHash(a, b)));
  assert.equal(toHex(fromHex(REF.roots[5]!)), REF.roots[5]);
});

test("MerkleFrontier: save and restore mid-stream, then carry on to the same roots", () => {
  const frontier = new MerkleFrontier();
  for (let i = 0; i < 70; i++) {
    const resumed = MerkleFrontier.restore(frontier.size, frontier.hashes());
    assert.equal(toHex(resumed.root()), REF.roots[i]);
    for (let j = i; j < 70; j += 23) {
      // Adding the rest to the resumed copy leaves the original alone.
      for (let k = resumed.size; k <= j; k++) resumed.append(REF_LEAVES[k]!);
      assert.equal(toHex(resumed.root()), REF.roots[j + 1]);
    }
    assert.equal(frontier.size, i);
    frontier.append(REF_LEAVES[i]!);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Properties over random trees

/** Leaf hashes of `count` distinct leaves, different for each `seed`. */
function randomLeaves(count: number, seed: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => leafHash(`seed ${seed} leaf ${i}`));
}

/**
 * The path's shape: for each level from the bottom, which side the sibling is on (RFC 9162 PATH). An inclusion
 * proof checks out for another size exactly when the shape there is the same, since the verifier then does the
 * same hashing; the tree size itself is bound by the signed tree head, which signs size and root together.
 */
function pathShape(index: number, size: number): string {
  if (size === 1) return "";
  let k = 1;
  while (k * 2 < size) k *= 2;
  return index < k ? `${pathShape(index, k)}R` : `${pathShape(index - k, size - k)}L`;
}

/** The same for a consistency proof: SUBPROOF's shape (the old root first when the proof leaves it out). */
function consistencyShape(m: number, n: number, whole = true): string {
  if (m === n) return whole ? "=" : "X";
  let k = 1;
  while (k * 2 < n) k *= 2;
  return m <= k ? `${consistencyShape(m, k, whole)}R` : `${consistencyShape(m - k, n - k, false)}L`;
}

test("property: every inclusion proof verifies; any changed byte, index or size is refused", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (size, indexSeed, byteSeed, seed, bit) => {
        const leaves = randomLeaves(size, seed);
        const index = indexSeed % size;
        const proof = inclusionProof(leaves, index, size);
        const root = rootOf(leaves, size);
        const leaf = leaves[index]!;
        assertOk(verifyInclusion(leaf, index, size, proof, root));

        const mask = 1 << bit;
        for (let i = 0; i < proof.length; i++) {
          assert.equal(verifyInclusion(leaf, index, size, flip(proof, i, mask, byteSeed), root).ok, false);
        }
        assert.equal(verifyInclusion(flipByte(leaf, byteSeed, mask), index, size, proof, root).ok, false);
        assert.equal(verifyInclusion(leaf, index, size, proof, flipByte(root, byteSeed, mask)).ok, false);
        for (const other of [index - 1, index + 1, index ^ 1, index + size]) {
          if (other !== index) assert.equal(verifyInclusion(leaf, other, size, proof, root).ok, false);
        }
        for (const other of [size - 1, size + 1, size * 2, size + 1000]) {
          if (other === size) continue;
          const check = verifyInclusion(leaf, index, other, proof, root);
          const sameShape = other > index && pathShape(index, other) === pathShape(index, size);
          assert.equal(check.ok, sameShape, `index ${index}: size ${size} → ${other}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test("property: every consistency proof verifies; any changed byte or size is refused", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (n, oldSeed, byteSeed, seed, bit) => {
        const leaves = randomLeaves(n, seed);
        const m = 1 + (oldSeed % n);
        const proof = consistencyProof(leaves, m, n);
        const tree = MerkleTree.from(leaves);
        assert.deepEqual(proofToHex(tree.consistencyProof(m, n)), proofToHex(proof));
        const [oldRoot, newRoot] = [rootOf(leaves, m), rootOf(leaves, n)];
        assertOk(verifyConsistency(m, n, oldRoot, newRoot, proof));

        const mask = 1 << bit;
        for (let i = 0; i < proof.length; i++) {
          assert.equal(verifyConsistency(m, n, oldRoot, newRoot, flip(proof, i, mask, byteSeed)).ok, false);
        }
        assert.equal(verifyConsistency(m, n, flipByte(oldRoot, byteSeed, mask), newRoot, proof).ok, false);
        assert.equal(verifyConsistency(m, n, oldRoot, flipByte(newRoot, byteSeed, mask), proof).ok, false);
        const alternatives: [number, number][] = [
          [m - 1, n],
          [m + 1, n],
          [m, n - 1],
          [m, n + 1],
          [m, 2 * n],
          [m + 1, n + 1],
        ];
        for (const [m2, n2] of alternatives) {
          if (m2 < 1 || m2 > n2 || (m2 === m && n2 === n)) continue;
          const check = verifyConsistency(m2, n2, oldRoot, newRoot, proof);
          const sameShape = consistencyShape(m2, n2) === consistencyShape(m, n);
          assert.equal(check.ok, sameShape, `${m} → ${n} checked as ${m2} → ${n2}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test("property: the frontier's root equals rootOf at every size, and MerkleTree agrees", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 200 }), fc.nat(), (count, seed) => {
      const leaves = randomLeaves(count, seed);
      const frontier = new MerkleFrontier();
      const tree = new MerkleTree();
      for (let size = 0; size <= count; size++) {
        const expected = toHex(rootOf(leaves, size));
        assert.equal(toHex(frontier.root()), expected, `size ${size}`);
        assert.equal(toHex(tree.root()), expected, `size ${size}`);
        if (size < count) {
          frontier.append(leaves[size]!);
          tree.append(leaves[size]!);
        }
      }
      // A built tree answers for every earlier size as well.
      for (let size = 1; size <= count; size += 7) {
        const index = seed % size;
        assert.deepEqual(
          proofToHex(tree.inclusionProof(index, size)),
          proofToHex(inclusionProof(leaves, index, size)),
        );
      }
    }),
    { numRuns: 40 },
  );
});

// ---------------------------------------------------------------------------------------------------------

function assertOk(check: ProofCheck, where = ""): void {
  assert.ok(check.ok, `${where}: ${check.ok ? "" : `${check.failure}: ${check.message}`}`);
}

function failure(check: ProofCheck): string | undefined {
  return check.ok ? undefined : check.failure;
}

/** A copy of `proof` with one bit of one byte of element `i` changed. */
function flip(proof: readonly Buffer[], i: number, mask = 8, byteSeed = 0): Buffer[] {
  return proof.map((hash, j) => (j === i ? flipByte(hash, byteSeed, mask) : hash));
}

function flipByte(hash: Uint8Array, byteSeed: number, mask: number): Buffer {
  const copy = Buffer.from(hash);
  const at = byteSeed % copy.length;
  copy[at] = copy[at]! ^ mask;
  return copy;
}
