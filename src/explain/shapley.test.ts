import assert from "node:assert/strict";
import { test } from "node:test";
import { weightedBackground } from "./background.js";
import { seededRandom } from "./random.js";
import {
  binomial,
  exactInterventionalShapley,
  exactShapley,
  interventionalCoalitionValues,
  popcount,
  shapleyFromCoalitions,
} from "./shapley.js";

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i]! - expected[i]!);
    assert.ok(diff <= tolerance, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (diff ${diff})`);
  }
}

/** Shapley values by their other definition: the mean marginal contribution over every player order. */
function shapleyByPermutations(players: number, value: (mask: number) => number): number[] {
  const phi = new Array<number>(players).fill(0);
  let orders = 0;
  const visit = (order: number[], used: number) => {
    if (order.length === players) {
      orders++;
      let mask = 0;
      for (const i of order) {
        phi[i]! += value(mask | (1 << i)) - value(mask);
        mask |= 1 << i;
      }
      return;
    }
    for (let i = 0; i < players; i++) if ((used & (1 << i)) === 0) visit([...order, i], used | (1 << i));
  };
  visit([], 0);
  return phi.map((v) => v / orders);
}

test("textbook games: the glove game, a unanimity game and an additive game", () => {
  // Player 0 holds a left glove, players 1 and 2 a right glove each; a pair is worth 1.
  const glove = exactShapley(3, (s) => ((s & 1) !== 0 && (s & 6) !== 0 ? 1 : 0));
  assertClose(glove, [2 / 3, 1 / 6, 1 / 6], 1e-15, "glove");
  // Worth 6 only when players 1, 2 and 3 are all in: they split it, 0 and 4 get nothing.
  const unanimity = exactShapley(5, (s) => ((s & 0b01110) === 0b01110 ? 6 : 0));
  assertClose(unanimity, [0, 2, 2, 2, 0], 1e-15, "unanimity");
  // v(S) = Σ_{i∈S} a_i: each player gets exactly its own a_i.
  const a = [3, -1, 0.5, 7];
  const additive = exactShapley(4, (s) => a.reduce((sum, value, i) => sum + ((s >> i) & 1 ? value : 0), 0));
  assertClose(additive, a, 1e-14, "additive");
});

test("a random game: the coalition formula equals the mean over all 720 player orders, and adds up", () => {
  const random = seededRandom(11);
  const players = 6;
  const table = Float64Array.from({ length: 2 ** players }, () => random.normal());
  const phi = shapleyFromCoalitions(players, table);
  assertClose(
    phi,
    shapleyByPermutations(players, (s) => table[s]!),
    1e-12,
    "permutations",
  );
  const total = phi.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(total - (table[2 ** players - 1]! - table[0]!)) < 1e-12, `efficiency: ${total}`);
});

test("popcount and binomial coefficients; the player count is checked", () => {
  assert.deepEqual([0, 1, 3, 0xff, 0x7fffffff, 0b1011].map(popcount), [0, 1, 2, 8, 31, 3]);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((k) => binomial(4, k)),
    [1, 4, 6, 4, 1],
  );
  assert.equal(binomial(40, 20), 137846528820);
  assert.equal(binomial(5, 7), 0);
  assert.throws(() => exactShapley(0, () => 0), RangeError);
  assert.throws(() => exactShapley(21, () => 0), RangeError);
});

test("interventional values of a linear model are c_j (x_j − weighted background mean of x_j)", async () => {
  // For f(x) = c·x + d every coalition's value is linear in the background means: closed form.
  const random = seededRandom(5);
  const m = 5;
  const n = 7;
  const c = [1.5, -2, 0.25, 0, 3];
  const data = Float32Array.from({ length: n * m }, () => random.normal());
  const weights = Array.from({ length: n }, () => 0.1 + random.next());
  const background = weightedBackground(data, n, m, weights);
  const x = Float32Array.from({ length: m }, () => random.normal());
  let calls = 0;
  const scorer = async (input: Float32Array, rows: number) => {
    calls++;
    return Float64Array.from({ length: rows }, (_, r) =>
      c.reduce((s, cj, j) => s + cj * input[r * m + j]!, 0.5),
    );
  };
  const expected = c.map((cj, j) => {
    let mean = 0;
    for (let b = 0; b < n; b++) mean += background.weights[b]! * data[b * m + j]!;
    return cj * (x[j]! - mean);
  });
  const result = await exactInterventionalShapley(scorer, x, background);
  assert.equal(calls, 1, "32 coalitions × 7 rows fit one call");
  assertClose(result.values, expected, 1e-12, "linear");
  const [fx] = await scorer(x, 1);
  const total = result.values.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(result.base + total - fx!) < 1e-12, "base + Σ values = f(x)");

  // Split into calls of at most 20 rows (two coalitions each): the same numbers, 16 calls.
  calls = 0;
  const chunked = await exactInterventionalShapley(scorer, x, background, { maxRowsPerCall: 20 });
  assert.equal(calls, 16);
  assertClose(chunked.values, result.values, 0, "chunked");
});

test("coalition values: the empty coalition is the background mean, the full one f(x); a bad scorer fails", async () => {
  const background = weightedBackground(Float32Array.from([1, 2, 3, 4]), 2, 2, [3, 1]);
  const scorer = (input: Float32Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, r) => input[r * 2]! * 10 + input[r * 2 + 1]!);
  const values = await interventionalCoalitionValues(scorer, Float32Array.from([5, 6]), background);
  // Masks: 0 = {}, 1 = {0}, 2 = {1}, 3 = {0, 1}; background rows (1, 2) weight 3/4 and (3, 4) weight 1/4.
  assertClose(values, [0.75 * 12 + 0.25 * 34, 0.75 * 52 + 0.25 * 54, 0.75 * 16 + 0.25 * 36, 56], 1e-12, "v");
  await assert.rejects(
    exactInterventionalShapley(() => new Float64Array(1), Float32Array.from([5, 6]), background),
    RangeError,
  );
  await assert.rejects(exactInterventionalShapley(scorer, Float32Array.from([5]), background), RangeError);
});
