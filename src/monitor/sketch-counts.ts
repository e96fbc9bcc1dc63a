/**
 * Mergeable summaries beside the quantile sketch: frequency counts of categories (with missing values) and
 * running moments (count, mean, variance, min, max) of a number. Both merge exactly (up to floating-point
 * rounding), so the summaries of several replicas or several window buckets combine into one.
 */

/** Options of {@link createCategoryCounts}. */
export interface CategoryCountsOptions {
  /**
   * Most distinct categories kept (default 1000). Once full, new categories are counted under `overflow`, so
   * a feature of unbounded cardinality cannot grow the summary without bound. Merges obey the same limit.
   */
  readonly maxCategories?: number;
}

/** The JSON form of category counts. `counts` keeps the categories in first-seen order. */
export interface CategoryCountsJSON {
  readonly kind: "category-counts";
  readonly version: 1;
  readonly maxCategories: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly missing: number;
  readonly overflow: number;
}

/** Counts of the categories of one feature, missing values (null, undefined, "") counted apart. */
export interface CategoryCounts {
  /** Counts one value (`weight` times, default 1); null, undefined and "" count as missing. */
  add(category: string | null | undefined, weight?: number): void;
  /** Folds `other`'s counts into these. */
  merge(other: CategoryCounts): void;
  /** The count of `category` (0 when unseen). */
  countOf(category: string): number;
  /** The categories seen, first-seen order, with their counts. */
  entries(): IterableIterator<[string, number]>;
  /** All values counted, missing and overflow included. */
  readonly total: number;
  readonly missing: number;
  /** Values of categories beyond `maxCategories`. */
  readonly overflow: number;
  clone(): CategoryCounts;
  toJSON(): CategoryCountsJSON;
}

class Counts implements CategoryCounts {
  readonly #max: number;
  #counts = new Map<string, number>();
  #missing = 0;
  #overflow = 0;
  #total = 0;

  constructor(maxCategories: number) {
    if (!Number.isInteger(maxCategories) || maxCategories < 1) {
      throw new RangeError(`maxCategories must be an integer >= 1, got ${maxCategories}`);
    }
    this.#max = maxCategories;
  }

  get total(): number {
    return this.#total;
  }
  get missing(): number {
    return this.#missing;
  }
  get overflow(): number {
    return this.#overflow;
  }

  add(category: string | null | undefined, weight = 1): void {
    if (!(weight > 0 && Number.isFinite(weight)))
      throw new RangeError(`weights must be finite and > 0, got ${weight}`);
    this.#total += weight;
    if (category === null || category === undefined || category === "") {
      this.#missing += weight;
      return;
    }
    const seen = this.#counts.get(category);
    if (seen !== undefined) this.#counts.set(category, seen + weight);
    else if (this.#counts.size < this.#max) this.#counts.set(category, weight);
    else this.#overflow += weight;
  }

  merge(other: CategoryCounts): void {
    for (const [category, count] of other.entries()) this.add(category, count);
    if (other.missing > 0) this.add(null, other.missing);
    if (other.overflow > 0) {
      this.#overflow += other.overflow;
      this.#total += other.overflow;
    }
  }

  countOf(category: string): number {
    return this.#counts.get(category) ?? 0;
  }

  entries(): IterableIterator<[string, number]> {
    return this.#counts.entries();
  }

  clone(): CategoryCounts {
    const copy = new Counts(this.#max);
    copy.#counts = new Map(this.#counts);
    copy.#missing = this.#missing;
    copy.#overflow = this.#overflow;
    copy.#total = this.#total;
    return copy;
  }

  static restore(j: CategoryCountsJSON): Counts {
    const c = new Counts(j.maxCategories);
    for (const [category, count] of Object.entries(j.counts)) c.#counts.set(category, count);
    c.#missing = j.missing;
    c.#overflow = j.overflow;
    c.#total = j.missing + j.overflow + [...c.#counts.values()].reduce((a, b) => a + b, 0);
    return c;
  }

  toJSON(): CategoryCountsJSON {
    return {
      kind: "category-counts",
      version: 1,
      maxCategories: this.#max,
      counts: Object.fromEntries(this.#counts),
      missing: this.#missing,
      overflow: this.#overflow,
    };
  }
}

/** New, empty category counts. Example: `const c = createCategoryCounts(); c.add("FR"); c.add(null);` */
export function createCategoryCounts(options: CategoryCountsOptions = {}): CategoryCounts {
  return new Counts(options.maxCategories ?? 1000);
}

/** Reads category counts from their JSON form, checking every field. */
export function categoryCountsFromJSON(json: unknown): CategoryCounts {
  const fail = (what: string): never => {
    throw new TypeError(`not a category-counts JSON: ${what}`);
  };
  if (typeof json !== "object" || json === null) return fail("expected an object");
  const j = json as Record<string, unknown>;
  if (j.kind !== "category-counts") fail(`kind must be "category-counts", got ${String(j.kind)}`);
  if (j.version !== 1) fail(`version must be 1, got ${String(j.version)}`);
  const isCount = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;
  if (!Number.isInteger(j.maxCategories) || (j.maxCategories as number) < 1)
    fail("maxCategories must be >= 1");
  if (!isCount(j.missing)) fail("missing must be a count");
  if (!isCount(j.overflow)) fail("overflow must be a count");
  if (typeof j.counts !== "object" || j.counts === null || Array.isArray(j.counts))
    fail("counts must be an object");
  const entries = Object.entries(j.counts as Record<string, unknown>);
  if (entries.length > (j.maxCategories as number)) fail("more categories than maxCategories");
  for (const [category, count] of entries) {
    if (category === "" || !isCount(count))
      fail(`counts["${category}"] must be a count of a non-empty category`);
  }
  return Counts.restore(j as unknown as CategoryCountsJSON);
}

/** The JSON form of running moments. */
export interface MomentsJSON {
  readonly kind: "moments";
  readonly version: 1;
  readonly count: number;
  readonly mean: number;
  /** Sum of squared deviations from the mean (M2). */
  readonly m2: number;
  readonly min: number | null;
  readonly max: number | null;
}

/**
 * Count, mean and variance of a number, by Welford's update and Chan, Golub and LeVeque's pairwise merge
 * (stable where Σx² − n·mean² would cancel). Rates are means of 0/1 values.
 */
export interface Moments {
  /** Adds a finite value (`weight` times, default 1). */
  add(value: number, weight?: number): void;
  merge(other: Moments): void;
  readonly count: number;
  /** NaN when empty. */
  readonly mean: number;
  /** Population variance (divide by n); NaN when empty. */
  readonly variance: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  clone(): Moments;
  toJSON(): MomentsJSON;
}

class RunningMoments implements Moments {
  #count = 0;
  #mean = 0;
  #m2 = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = Number.NEGATIVE_INFINITY;

  get count(): number {
    return this.#count;
  }
  get mean(): number {
    return this.#count > 0 ? this.#mean : Number.NaN;
  }
  get variance(): number {
    return this.#count > 0 ? this.#m2 / this.#count : Number.NaN;
  }
  get sum(): number {
    return this.#mean * this.#count;
  }
  get min(): number {
    return this.#count > 0 ? this.#min : Number.NaN;
  }
  get max(): number {
    return this.#count > 0 ? this.#max : Number.NaN;
  }

  add(value: number, weight = 1): void {
    if (!Number.isFinite(value)) throw new RangeError(`values must be finite, got ${value}`);
    if (!(weight > 0 && Number.isFinite(weight)))
      throw new RangeError(`weights must be finite and > 0, got ${weight}`);
    this.#combine(weight, value, 0, value, value);
  }

  merge(other: Moments): void {
    if (!(other instanceof RunningMoments))
      throw new TypeError("can only merge moments made by createMoments");
    if (other.#count === 0) return;
    this.#combine(other.#count, other.#mean, other.#m2, other.#min, other.#max);
  }

  #combine(n: number, mean: number, m2: number, min: number, max: number): void {
    const total = this.#count + n;
    const delta = mean - this.#mean;
    this.#mean += (delta * n) / total;
    this.#m2 += m2 + (delta * delta * this.#count * n) / total;
    this.#count = total;
    if (min < this.#min) this.#min = min;
    if (max > this.#max) this.#max = max;
  }

  clone(): Moments {
    const copy = new RunningMoments();
    if (this.#count > 0) copy.#combine(this.#count, this.#mean, this.#m2, this.#min, this.#max);
    return copy;
  }

  toJSON(): MomentsJSON {
    const empty = this.#count === 0;
    return {
      kind: "moments",
      version: 1,
      count: this.#count,
      mean: this.#mean,
      m2: this.#m2,
      min: empty ? null : this.#min,
      max: empty ? null : this.#max,
    };
  }

  static restore(j: MomentsJSON): RunningMoments {
    const m = new RunningMoments();
    if (j.count > 0) m.#combine(j.count, j.mean, j.m2, j.min ?? j.mean, j.max ?? j.mean);
    return m;
  }
}

/** New, empty moments. */
export function createMoments(): Moments {
  return new RunningMoments();
}

/** Reads moments from their JSON form, checking every field. */
export function momentsFromJSON(json: unknown): Moments {
  const j = json as Record<string, unknown> | null;
  const finite = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);
  if (
    typeof j !== "object" ||
    j === null ||
    j.kind !== "moments" ||
    j.version !== 1 ||
    !finite(j.count) ||
    (j.count as number) < 0 ||
    !finite(j.mean) ||
    !finite(j.m2) ||
    (j.m2 as number) < 0 ||
    !(j.min === null || finite(j.min)) ||
    !(j.max === null || finite(j.max))
  ) {
    throw new TypeError(
      "not a moments JSON: expected {kind: 'moments', version: 1, count, mean, m2, min, max}",
    );
  }
  return RunningMoments.restore(j as unknown as MomentsJSON);
}
