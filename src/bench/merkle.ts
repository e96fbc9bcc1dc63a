/**
 * The "merkle" suite: what Merkle checkpoints cost over a large ledger (default 1,000,000 leaves; `npm run
 * bench -- merkle 250000` for another count).
 *
 * Measured, each the median of several rounds (WARDEN_BENCH_ROUNDS, default 3):
 *   - leaf hashes of n short records (leafHash);
 *   - the root with rootOf over the array, and with a MerkleFrontier fed one leaf hash at a time;
 *   - one inclusion proof and one consistency proof straight from the array (each hashes about n nodes);
 *   - building a MerkleTree, then the mean cost of a proof from it and of verifying one.
 * Every proof is verified, and the roots must agree; a disagreement makes the run fail (exit code 1).
 */
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  MerkleTree,
  rootOf,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "../ledger/index.js";
import {
  type BenchSuite,
  BenchUsageError,
  benchRounds,
  describeMachine,
  formatTable,
  median,
  progress,
} from "./suite.js";

const DEFAULT_LEAVES = 1_000_000;
const MAX_LEAVES = 16_000_000;
/** Proofs taken from a built MerkleTree per round, to time one by the mean. */
const TREE_PROOFS = 10_000;

function time<T>(work: () => T): { value: T; ms: number } {
  const start = process.hrtime.bigint();
  const value = work();
  return { value, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

export const merkleSuite: BenchSuite = {
  async run(args) {
    const [raw, ...extra] = args;
    if (extra.length > 0) throw new BenchUsageError(`merkle takes at most one argument, the leaf count`);
    const n = raw === undefined ? DEFAULT_LEAVES : Number(raw);
    if (!Number.isInteger(n) || n < 2 || n > MAX_LEAVES) {
      throw new BenchUsageError(`the leaf count must be an integer from 2 to ${MAX_LEAVES}, not ${raw}`);
    }
    const rounds = benchRounds(3);
    const index = Math.floor(n * 0.618);
    const oldSize = Math.floor(n * 0.777);
    const samples = new Map<string, number[]>();
    const record = (name: string, ms: number) => samples.set(name, [...(samples.get(name) ?? []), ms]);
    let failures = 0;
    const check = (ok: boolean, what: string) => {
      if (!ok) {
        failures++;
        progress(`CHECK FAILED: ${what}`);
      }
    };

    for (let round = 1; round <= rounds; round++) {
      progress(`round ${round} of ${rounds} (${n} leaves)`);
      const hashed = time(() => {
        const hashes = new Array<Buffer>(n);
        for (let i = 0; i < n; i++) hashes[i] = leafHash(`record-${i}`);
        return hashes;
      });
      record("leaf hashes (leafHash × n)", hashed.ms);
      const leaves = hashed.value;

      const root = time(() => rootOf(leaves));
      record("root: rootOf(array)", root.ms);

      const frontierRoot = time(() => {
        const frontier = new MerkleFrontier();
        for (const hash of leaves) frontier.append(hash);
        return frontier.root();
      });
      record("root: MerkleFrontier, one leaf at a time", frontierRoot.ms);
      check(toHex(frontierRoot.value) === toHex(root.value), "frontier root equals rootOf");

      const inclusion = time(() => inclusionProof(leaves, index, n));
      record(`inclusion proof from the array (index ${index})`, inclusion.ms);
      check(verifyInclusion(leaves[index]!, index, n, inclusion.value, root.value).ok, "inclusion proof");

      const oldRoot = rootOf(leaves, oldSize);
      const consistency = time(() => consistencyProof(leaves, oldSize, n));
      record(`consistency proof from the array (${oldSize} → ${n})`, consistency.ms);
      check(verifyConsistency(oldSize, n, oldRoot, root.value, consistency.value).ok, "consistency proof");

      const built = time(() => MerkleTree.from(leaves));
      record("MerkleTree.from (build)", built.ms);
      const tree = built.value;
      check(toHex(tree.root()) === toHex(root.value), "tree root equals rootOf");

      const step = Math.floor(n / TREE_PROOFS) || 1;
      const proofs = time(() => {
        const out = [];
        for (let i = 0; i < TREE_PROOFS; i++) out.push(tree.inclusionProof((i * step) % n));
        return out;
      });
      record("inclusion proof from a MerkleTree (mean)", proofs.ms / TREE_PROOFS);
      const verified = time(() => {
        let ok = 0;
        for (let i = 0; i < TREE_PROOFS; i++) {
          const at = (i * step) % n;
          if (verifyInclusion(leaves[at]!, at, n, proofs.value[i]!, root.value).ok) ok++;
        }
        return ok;
      });
      record("verifyInclusion (mean)", verified.ms / TREE_PROOFS);
      check(verified.value === TREE_PROOFS, "every tree inclusion proof verifies");

      const consistencies = time(() => {
        const out = [];
        for (let i = 1; i <= TREE_PROOFS; i++) out.push(tree.consistencyProof(Math.min(i * step, n), n));
        return out;
      });
      record("consistency proof from a MerkleTree (mean)", consistencies.ms / TREE_PROOFS);
      const treeConsistency = tree.consistencyProof(oldSize);
      check(
        treeConsistency.map(toHex).join() === consistency.value.map(toHex).join(),
        "tree and array consistency proofs agree",
      );
    }

    const rows = [...samples].map(([name, values]) => {
      const ms = median(values);
      return [
        name,
        ms >= 10 ? `${ms.toFixed(0)} ms` : ms >= 0.1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`,
      ];
    });
    process.stdout.write(
      `Merkle checkpoints over ${n.toLocaleString("en")} leaves — median of ${rounds} rounds\n` +
        `${describeMachine()}\n\n${formatTable(["operation", "time"], rows)}\n` +
        (failures > 0 ? `\n${failures} checks FAILED\n` : "\nevery proof verified; all roots agree\n"),
    );
    return failures > 0 ? 1 : 0;
  },
};
