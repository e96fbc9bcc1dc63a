/**
 * A mergeable quantile sketch with a deterministic relative-error guarantee: DDSketch (Masson, Rim and Lee,
 * 2019, "DDSketch: a fast and fully-mergeable quantile sketch with relative-error guarantees", VLDB 12(12)).
 *
 * Why DDSketch rather than KLL: the sketch is deterministic (the same values give the same sketch, in any
 * order, on any replica), and merging is exact: the merge of the sketches of k replicas is bucket for bucket
 * the sketch of the union of their values. A monitor's verdict is therefore reproducible from the records,
 * which a governed server needs; KLL's bound is probabilistic and its merge depends on the order of merges.
 *
 * How: with γ = (1 + α) / (1 − α), a value x > 0 falls in bucket i = ⌈log_γ x⌉, which covers (γ^(i−1), γ^i];
 * the bucket stands for 2γ^i / (γ + 1), within relative error α of every value in it. Negative values go to a
 * second store keyed by |x|; values with |x| ≤ `zeroThreshold` (default 0: only zero itself) are counted in a
 * zero bucket. Each store is a dense array of counts over the bucket indices it has seen.
 */

/** Options of {@link createQuantileSketch}. */
export interface QuantileSketchOptions {
  /** α in (0, 1): the relative error of quantiles. Default 0.01. */
  readonly relativeAccuracy?: number;
  /**
   * Most buckets per sign (default 2048, which spans a ratio of about 10^17 between the smallest and the
   * largest magnitude at α = 0.01). Beyond it the buckets nearest zero are folded into the smallest kept one.
   */
  readonly maxBuckets?: number;
  /** Magnitudes at or below this count as zero (absolute error at most this). Default 0. */
  readonly zeroThreshold?: number;
}

/** The JSON form of a sketch (see {@link QuantileSketch.toJSON}). Bucket counts run from `offset` upwards. */
export interface QuantileSketchJSON {
  readonly kind: "ddsketch";
  readonly version: 1;
  readonly relativeAccuracy: number;
  readonly maxBuckets: number;
  readonly zeroThreshold: number;
  readonly count: number;
  readonly sum: number;
  /** Smallest and largest value added; null when the sketch is empty. */
  readonly min: number | null;
  readonly max: number | null;
  readonly zeroCount: number;
  readonly positive: { readonly offset: number; readonly counts: readonly number[] };
  readonly negative: { readonly offset: number; readonly counts: readonly number[] };
}

/**
 * A DDSketch. Guarantees, with α its relative accuracy and x_(k) the k-th smallest value (0-based) of the n
 * added so far, as long as no bucket was folded (see `maxBuckets`):
 * - `quantile(q)` is within α·|x_(k)| of x_(k), k = ⌊q·(n − 1)⌋ (for |x_(k)| > zeroThreshold; otherwise it
 *   is 0, within zeroThreshold); `quantile(0)` and `quantile(1)` are the exact minimum and maximum;
 * - `cdf(x)` lies between F(x/γ) and F(x·γ) for x > 0 (F the exact share of values ≤ x; mirrored for x < 0),
 *   so a rank error only arises from values within a factor γ = (1 + α)/(1 − α) of x.
 * `add` costs O(1) amortised; `merge` O(buckets); `quantile` and `cdf` O(buckets).
 */
export interface QuantileSketch {
  /** Adds a finite `value`, `weight` times (default 1; weight > 0, may be fractional). */
  add(value: number, weight?: number): void;
  /** Folds `other` (same relative accuracy and zero threshold) into this sketch. */
  merge(other: QuantileSketch): void;
  /** The value at quantile q ∈ [0, 1]; NaN when empty. */
  quantile(q: number): number;
  /** Estimated share of values ≤ x, in [0, 1]; NaN when empty. */
  cdf(x: number): number;
  /** Total weight added. */
  readonly count: number;
  /** Sum of the values (weighted), exact up to floating-point rounding. */
  readonly sum: number;
  /** Exact minimum and maximum; NaN when empty. */
  readonly min: number;
  readonly max: number;
  readonly relativeAccuracy: number;
  /** A deep copy. */
  clone(): QuantileSketch;
  toJSON(): QuantileSketchJSON;
}

const DEFAULT_ACCURACY = 0.01;
const DEFAULT_MAX_BUCKETS = 2048;

/** Counts over a contiguous run of bucket indices, grown on demand. */
class DenseStore {
  counts: Float64Array = new Float64Array(0);
  /** Bucket index of counts[0]. */
  offset = 0;
  /** Number of counts[] slots in use (from 0); slots beyond are zero. */
  length = 0;
  total = 0;

  constructor(readonly maxBuckets: number) {}

  add(index: number, weight: number): void {
    let i = index;
    if (this.length === 0) {
      if (this.counts.length === 0) this.counts = new Float64Array(16);
      this.offset = index;
      this.length = 1;
    } else if (index < this.offset) {
      const grow = this.offset - index;
      if (this.length + grow > this.maxBuckets) {
        i = this.offset; // fold into the smallest kept bucket
      } else {
        this.#reserve(this.length + grow);
        this.counts.copyWithin(grow, 0, this.length);
        this.counts.fill(0, 0, grow);
        this.offset = index;
        this.length += grow;
      }
    } else if (index >= this.offset + this.length) {
      const needed = index - this.offset + 1;
      if (needed > this.maxBuckets) this.#foldBelow(index - this.maxBuckets + 1);
      this.#reserve(index - this.offset + 1);
      this.length = index - this.offset + 1;
    }
    this.counts[i - this.offset]! += weight;
    this.total += weight;
  }

  /** Folds every bucket below `newOffset` into the bucket at `newOffset` (collapsing the lowest). */
  #foldBelow(newOffset: number): void {
    const k = newOffset - this.offset;
    const drop = Math.min(k, this.length);
    let folded = 0;
    for (let j = 0; j < drop; j++) folded += this.counts[j]!;
    this.counts.copyWithin(0, drop, this.length);
    this.counts.fill(0, this.length - drop, this.length);
    this.counts[0]! += folded;
    this.offset = newOffset;
    this.length = Math.max(1, this.length - drop);
  }

  #reserve(size: number): void {
    if (size <= this.counts.length) return;
    let capacity = this.counts.length || 16;
    while (capacity < size) capacity *= 2;
    const next = new Float64Array(capacity);
    next.set(this.counts.subarray(0, this.length));
    this.counts = next;
  }

  mergeFrom(other: DenseStore): void {
    for (let j = 0; j < other.length; j++) {
      const c = other.counts[j]!;
      if (c !== 0) this.add(other.offset + j, c);
    }
  }

  copyFrom(other: DenseStore): void {
    this.counts = other.counts.slice();
    this.offset = other.offset;
    this.length = other.length;
    this.total = other.total;
  }

  toJSON(): { offset: number; counts: number[] } {
    let lo = 0;
    let hi = this.length;
    while (lo < hi && this.counts[lo] === 0) lo++;
    while (hi > lo && this.counts[hi - 1] === 0) hi--;
    return { offset: this.offset + lo, counts: Array.from(this.counts.subarray(lo, hi)) };
  }
}

class DDSketch implements QuantileSketch {
  readonly relativeAccuracy: number;
  readonly #maxBuckets: number;
  readonly #zeroThreshold: number;
  readonly #gamma: number;
  readonly #logGamma: number;
  #positive: DenseStore;
  #negative: DenseStore;
  #zeroCount = 0;
  #sum = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = Number.NEGATIVE_INFINITY;

  constructor(relativeAccuracy: number, maxBuckets: number, zeroThreshold: number) {
    if (!(relativeAccuracy > 0 && relativeAccuracy < 1)) {
      throw new RangeError(`relativeAccuracy must lie in (0, 1), got ${relativeAccuracy}`);
    }
    if (!Number.isInteger(maxBuckets) || maxBuckets < 1) {
      throw new RangeError(`maxBuckets must be an integer >= 1, got ${maxBuckets}`);
    }
    if (!(zeroThreshold >= 0 && Number.isFinite(zeroThreshold))) {
      throw new RangeError(`zeroThreshold must be a finite number >= 0, got ${zeroThreshold}`);
    }
    this.relativeAccuracy = relativeAccuracy;
    this.#maxBuckets = maxBuckets;
    this.#zeroThreshold = zeroThreshold;
    this.#gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy);
    this.#logGamma = Math.log(this.#gamma);
    this.#positive = new DenseStore(maxBuckets);
    this.#negative = new DenseStore(maxBuckets);
  }

  get count(): number {
    return this.#zeroCount + this.#positive.total + this.#negative.total;
  }
  get sum(): number {
    return this.#sum;
  }
  get min(): number {
    return this.count > 0 ? this.#min : Number.NaN;
  }
  get max(): number {
    return this.count > 0 ? this.#max : Number.NaN;
  }

  #index(magnitude: number): number {
    return Math.ceil(Math.log(magnitude) / this.#logGamma);
  }

  /** The value bucket `index` stands for: 2γ^i/(γ + 1), within α of both ends of (γ^(i−1), γ^i]. */
  #value(index: number): number {
    return (2 * Math.exp(index * this.#logGamma)) / (this.#gamma + 1);
  }

  add(value: number, weight = 1): void {
    if (!Number.isFinite(value)) throw new RangeError(`sketch values must be finite, got ${value}`);
    if (!(weight > 0 && Number.isFinite(weight))) {
      throw new RangeError(`sketch weights must be finite and > 0, got ${weight}`);
    }
    if (value > this.#zeroThreshold) this.#positive.add(this.#index(value), weight);
    else if (value < -this.#zeroThreshold) this.#negative.add(this.#index(-value), weight);
    else this.#zeroCount += weight;
    this.#sum += value * weight;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
  }

  merge(other: QuantileSketch): void {
    if (!(other instanceof DDSketch))
      throw new TypeError("can only merge sketches made by createQuantileSketch");
    if (other.relativeAccuracy !== this.relativeAccuracy || other.#zeroThreshold !== this.#zeroThreshold) {
      throw new RangeError(
        `cannot merge sketches of different accuracy or zero threshold ` +
          `(${this.relativeAccuracy}/${this.#zeroThreshold} vs ${other.relativeAccuracy}/${other.#zeroThreshold})`,
      );
    }
    if (other.count === 0) return;
    this.#positive.mergeFrom(other.#positive);
    this.#negative.mergeFrom(other.#negative);
    this.#zeroCount += other.#zeroCount;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile needs q in [0, 1], got ${q}`);
    const n = this.count;
    if (n === 0) return Number.NaN;
    if (q === 0) return this.#min;
    if (q === 1) return this.#max;
    const rank = q * (n - 1);
    // Negative values, most negative first: the negative store from its highest index down.
    const neg = this.#negative;
    let seen = 0;
    for (let j = neg.length - 1; j >= 0; j--) {
      seen += neg.counts[j]!;
      if (seen > rank) return this.#clamp(-this.#value(neg.offset + j));
    }
    seen += this.#zeroCount;
    if (seen > rank) return this.#clamp(0);
    const pos = this.#positive;
    for (let j = 0; j < pos.length; j++) {
      seen += pos.counts[j]!;
      if (seen > rank) return this.#clamp(this.#value(pos.offset + j));
    }
    return this.#max; // rounding of fractional weights
  }

  #clamp(v: number): number {
    return Math.min(Math.max(v, this.#min), this.#max);
  }

  cdf(x: number): number {
    const n = this.count;
    if (n === 0) return Number.NaN;
    if (Number.isNaN(x)) throw new RangeError("cdf needs a number, got NaN");
    if (x < this.#min) return 0;
    if (x >= this.#max) return 1;
    let below = 0;
    if (x > this.#zeroThreshold) {
      below = this.#negative.total + this.#zeroCount + this.#storeBelow(this.#positive, x);
    } else if (x < -this.#zeroThreshold) {
      // Values ≤ x < 0 are those with magnitude ≥ |x|.
      below = this.#negative.total - this.#storeBelow(this.#negative, -x);
    } else {
      below = this.#negative.total + (x >= 0 ? this.#zeroCount : 0);
    }
    return Math.min(1, Math.max(0, below / n));
  }

  /**
   * Weight in `store` of magnitudes below m: full buckets, plus the share of m's own bucket given by the
   * position of m in it on the log scale (values inside one bucket are indistinguishable).
   */
  #storeBelow(store: DenseStore, m: number): number {
    const index = this.#index(m);
    let total = 0;
    const last = Math.min(store.length, index - store.offset);
    for (let j = 0; j < last; j++) total += store.counts[j]!;
    const inBucket = index - store.offset;
    if (inBucket >= 0 && inBucket < store.length) {
      // Position of m in (γ^(i−1), γ^i] on the log scale, in (0, 1].
      const share = Math.log(m) / this.#logGamma - (index - 1);
      const fraction = Math.min(1, Math.max(0, share));
      total += store.counts[inBucket]! * fraction;
    }
    return total;
  }

  clone(): QuantileSketch {
    const copy = new DDSketch(this.relativeAccuracy, this.#maxBuckets, this.#zeroThreshold);
    copy.#positive.copyFrom(this.#positive);
    copy.#negative.copyFrom(this.#negative);
    copy.#zeroCount = this.#zeroCount;
    copy.#sum = this.#sum;
    copy.#min = this.#min;
    copy.#max = this.#max;
    return copy;
  }

  toJSON(): QuantileSketchJSON {
    const empty = this.count === 0;
    return {
      kind: "ddsketch",
      version: 1,
      relativeAccuracy: this.relativeAccuracy,
      maxBuckets: this.#maxBuckets,
      zeroThreshold: this.#zeroThreshold,
      count: this.count,
      sum: this.#sum,
      min: empty ? null : this.#min,
      max: empty ? null : this.#max,
      zeroCount: this.#zeroCount,
      positive: this.#positive.toJSON(),
      negative: this.#negative.toJSON(),
    };
  }

  /** Restores stores and totals from JSON already checked by {@link quantileSketchFromJSON}. */
  static restore(json: QuantileSketchJSON): DDSketch {
    const sketch = new DDSketch(json.relativeAccuracy, json.maxBuckets, json.zeroThreshold);
    const fill = (store: DenseStore, part: QuantileSketchJSON["positive"]): void => {
      part.counts.forEach((c, j) => {
        if (c > 0) store.add(part.offset + j, c);
      });
    };
    fill(sketch.#positive, json.positive);
    fill(sketch.#negative, json.negative);
    sketch.#zeroCount = json.zeroCount;
    sketch.#sum = json.sum;
    if (json.min !== null && json.max !== null) {
      sketch.#min = json.min;
      sketch.#max = json.max;
    }
    return sketch;
  }
}

/** A new, empty DDSketch. Example: `const s = createQuantileSketch({ relativeAccuracy: 0.01 }); s.add(3.2);` */
export function createQuantileSketch(options: QuantileSketchOptions = {}): QuantileSketch {
  return new DDSketch(
    options.relativeAccuracy ?? DEFAULT_ACCURACY,
    options.maxBuckets ?? DEFAULT_MAX_BUCKETS,
    options.zeroThreshold ?? 0,
  );
}

/** A new sketch holding the merge of `sketches` (at least one; the inputs are left as they were). */
export function mergeQuantileSketches(sketches: readonly QuantileSketch[]): QuantileSketch {
  const [first, ...rest] = sketches;
  if (first === undefined) throw new RangeError("mergeQuantileSketches needs at least one sketch");
  const merged = first.clone();
  for (const s of rest) merged.merge(s);
  return merged;
}

/** Reads a sketch from its JSON form (as written by `toJSON`), checking every field. */
export function quantileSketchFromJSON(json: unknown): QuantileSketch {
  const fail = (what: string): never => {
    throw new TypeError(`not a DDSketch JSON: ${what}`);
  };
  if (typeof json !== "object" || json === null) return fail("expected an object");
  const j = json as Record<string, unknown>;
  if (j.kind !== "ddsketch") fail(`kind must be "ddsketch", got ${String(j.kind)}`);
  if (j.version !== 1) fail(`version must be 1, got ${String(j.version)}`);
  for (const key of ["relativeAccuracy", "maxBuckets", "zeroThreshold", "count", "sum", "zeroCount"]) {
    if (typeof j[key] !== "number" || !Number.isFinite(j[key])) fail(`${key} must be a finite number`);
  }
  for (const key of ["min", "max"]) {
    if (j[key] !== null && (typeof j[key] !== "number" || !Number.isFinite(j[key]))) {
      fail(`${key} must be a finite number or null`);
    }
  }
  for (const key of ["positive", "negative"]) {
    const part = j[key] as Record<string, unknown> | null | undefined;
    if (typeof part !== "object" || part === null) fail(`${key} must be an object`);
    const p = part as Record<string, unknown>;
    if (!Number.isInteger(p.offset)) fail(`${key}.offset must be an integer`);
    if (
      !Array.isArray(p.counts) ||
      !p.counts.every((c) => typeof c === "number" && c >= 0 && Number.isFinite(c))
    ) {
      fail(`${key}.counts must be an array of finite numbers >= 0`);
    }
  }
  const sketch = DDSketch.restore(j as unknown as QuantileSketchJSON);
  const expected = j.count as number;
  if (Math.abs(sketch.count - expected) > 1e-9 * Math.max(1, expected)) {
    fail(`count ${expected} does not match the buckets' total ${sketch.count}`);
  }
  return sketch;
}
