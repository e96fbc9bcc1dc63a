/**
 * Seeded pseudo-random numbers for the sampling explainers (KernelSHAP, LIME, counterfactual search), so an
 * explanation is reproducible from its seed: the same seed, inputs and model give the same numbers.
 *
 * The generator is xoshiro128** (Blackman and Vigna), seeded through splitmix32 so that nearby seeds give
 * unrelated streams. Not for cryptography.
 */

/** A seeded stream of numbers. */
export interface Random {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Uniform integer in [0, n) (n ≥ 1). */
  int(n: number): number;
  /** Standard normal (Box–Muller, one value per call). */
  normal(): number;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A generator for `seed` (any integer; only its low 32 bits count). */
export function seededRandom(seed: number): Random {
  const mix = splitmix32(seed);
  let a = mix();
  let b = mix();
  let c = mix();
  let d = mix();
  if ((a | b | c | d) === 0) a = 1; // xoshiro's one forbidden state
  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  const next = (): number => nextU32() / 4294967296;
  return {
    next,
    int(n) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`int(n) needs an integer n >= 1, got ${n}`);
      return Math.floor(next() * n);
    },
    normal() {
      // 1 - u keeps the logarithm's argument in (0, 1].
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
