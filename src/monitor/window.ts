/**
 * Sliding windows made of a ring of buckets, each bucket a mergeable summary. One observation updates only
 * the newest bucket (O(1) in the window's length); a window's summary is the merge of its live buckets, so it
 * costs O(buckets × summary size) and never touches individual observations again. Old buckets expire by
 * count (a count window) or by time (a time window, buckets aligned on the epoch so that the windows of
 * several replicas cover the same spans and their summaries merge into one).
 */

import { createQuantileSketch, type QuantileSketch, type QuantileSketchOptions } from "./sketch.js";
import {
  type CategoryCounts,
  type CategoryCountsOptions,
  createCategoryCounts,
  createMoments,
  type Moments,
} from "./sketch-counts.js";

/** How to make, update and merge one kind of summary S from observations O. */
export interface SummaryKind<S, O> {
  /** A new, empty summary. */
  create(): S;
  /** Folds one observation into `summary`. */
  add(summary: S, observation: O): void;
  /** Folds `from` into `into` (`from` is left as it was). */
  merge(into: S, from: S): void;
}

/** A sliding window over observations O, summarised as S. */
export interface SlidingWindow<S, O> {
  /** Adds one observation to the newest bucket; false when a time window found it too old to keep. */
  add(observation: O): boolean;
  /** A new summary: the merge of the live buckets (the window's own buckets are not shared). */
  summary(): S;
  /** Observations in the live buckets. */
  count(): number;
}

/** Options of {@link countWindow}. */
export interface CountWindowOptions {
  /** Observations per bucket (≥ 1). */
  readonly bucketSize: number;
  /** Buckets in the ring (≥ 1). */
  readonly buckets: number;
}

/**
 * A window over the latest observations by count: `buckets` buckets of `bucketSize` observations. It holds
 * between (buckets − 1)·bucketSize + 1 and buckets·bucketSize observations once full: when the newest bucket
 * is full, the next observation starts a fresh bucket in place of the oldest.
 */
export function countWindow<S, O>(kind: SummaryKind<S, O>, options: CountWindowOptions): SlidingWindow<S, O> {
  const { bucketSize, buckets } = options;
  checkPositiveInteger("bucketSize", bucketSize);
  checkPositiveInteger("buckets", buckets);
  const ring: (S | undefined)[] = new Array(buckets).fill(undefined);
  const counts = new Array<number>(buckets).fill(0);
  let newest = 0;
  ring[0] = kind.create();
  return {
    add(observation) {
      if (counts[newest]! >= bucketSize) {
        newest = (newest + 1) % buckets;
        ring[newest] = kind.create();
        counts[newest] = 0;
      }
      kind.add(ring[newest]!, observation);
      counts[newest]! += 1;
      return true;
    },
    summary() {
      return mergeAll(kind, ring);
    },
    count() {
      return counts.reduce((a, b) => a + b, 0);
    },
  };
}

/** Options of {@link timeWindow}. */
export interface TimeWindowOptions {
  /** Width of one bucket in milliseconds (≥ 1, an integer). */
  readonly bucketMs: number;
  /** Buckets in the ring (≥ 1): the window spans buckets·bucketMs. */
  readonly buckets: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/** One live bucket of a time window. */
export interface TimeBucket<S> {
  /** Start of the bucket, ms since the epoch (inclusive); it ends at start + bucketMs (exclusive). */
  readonly start: number;
  readonly count: number;
  readonly summary: S;
}

/** A time window also lists its live buckets, oldest first. */
export interface TimeWindow<S, O> extends SlidingWindow<S, O> {
  buckets(): readonly TimeBucket<S>[];
}

/**
 * A window over the last `buckets`·`bucketMs` milliseconds, in buckets aligned on multiples of `bucketMs`
 * since the epoch. At time t it holds the buckets that start after t − buckets·bucketMs, i.e. between
 * (buckets − 1)·bucketMs and buckets·bucketMs of history. Buckets expire by the clock alone, with or without
 * new observations; an observation the clock places in an expired bucket (a clock stepped back) is dropped.
 */
export function timeWindow<S, O>(kind: SummaryKind<S, O>, options: TimeWindowOptions): TimeWindow<S, O> {
  const { bucketMs, buckets } = options;
  const now = options.now ?? Date.now;
  checkPositiveInteger("bucketMs", bucketMs);
  checkPositiveInteger("buckets", buckets);
  // Slot i holds the bucket of epoch number e with e mod buckets = i, or nothing yet.
  const epochs = new Array<number>(buckets).fill(Number.NEGATIVE_INFINITY);
  const ring: (S | undefined)[] = new Array(buckets).fill(undefined);
  const counts = new Array<number>(buckets).fill(0);
  let latest = Number.NEGATIVE_INFINITY;
  const slotOf = (epoch: number): number => ((epoch % buckets) + buckets) % buckets;
  const live = (): number[] => {
    const current = Math.floor(now() / bucketMs);
    const slots: number[] = [];
    for (let e = current - buckets + 1; e <= current; e++) {
      const slot = slotOf(e);
      if (epochs[slot] === e) slots.push(slot);
    }
    return slots;
  };
  return {
    add(observation) {
      const epoch = Math.floor(now() / bucketMs);
      const slot = slotOf(epoch);
      const held = epochs[slot]!;
      if (epoch <= latest - buckets) return false; // the clock stepped back past the window
      if (held > epoch) return false; // a newer bucket already owns the slot: this one has expired
      if (epoch > latest) latest = epoch;
      if (held < epoch) {
        epochs[slot] = epoch;
        ring[slot] = kind.create();
        counts[slot] = 0;
      }
      kind.add(ring[slot]!, observation);
      counts[slot]! += 1;
      return true;
    },
    summary() {
      return mergeAll(
        kind,
        live().map((slot) => ring[slot]),
      );
    },
    count() {
      return live().reduce((total, slot) => total + counts[slot]!, 0);
    },
    buckets() {
      return live().map((slot) =>
        Object.freeze({ start: epochs[slot]! * bucketMs, count: counts[slot]!, summary: ring[slot]! }),
      );
    },
  };
}

function mergeAll<S, O>(kind: SummaryKind<S, O>, parts: readonly (S | undefined)[]): S {
  const merged = kind.create();
  for (const part of parts) if (part !== undefined) kind.merge(merged, part);
  return merged;
}

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
}

/** Quantile sketches of a number (see {@link createQuantileSketch}). */
export function sketchKind(options: QuantileSketchOptions = {}): SummaryKind<QuantileSketch, number> {
  return {
    create: () => createQuantileSketch(options),
    add: (sketch, value) => sketch.add(value),
    merge: (into, from) => into.merge(from),
  };
}

/** Category counts (see {@link createCategoryCounts}); null and undefined count as missing. */
export function categoryKind(
  options: CategoryCountsOptions = {},
): SummaryKind<CategoryCounts, string | null | undefined> {
  return {
    create: () => createCategoryCounts(options),
    add: (counts, category) => counts.add(category),
    merge: (into, from) => into.merge(from),
  };
}

/** Running moments (count, mean, variance) of a number; a rate is the mean of 0/1 values. */
export function momentsKind(): SummaryKind<Moments, number> {
  return {
    create: () => createMoments(),
    add: (moments, value) => moments.add(value),
    merge: (into, from) => into.merge(from),
  };
}

/**
 * Several summaries side by side in one bucket, one per named part. An observation is a record with the
 * same names; a part whose entry is absent (undefined) is left alone.
 * Example: `recordKind({ age: sketchKind(), country: categoryKind() })` over `{ age: 41, country: "FR" }`.
 */
export function recordKind<K extends string, S extends Record<K, unknown>, O extends Record<K, unknown>>(
  parts: {
    readonly [P in K]: SummaryKind<S[P], O[P]>;
  },
): SummaryKind<S, Partial<O>> {
  const names = Object.keys(parts) as K[];
  return {
    create() {
      const summary = {} as S;
      for (const name of names) summary[name] = parts[name].create();
      return summary;
    },
    add(summary, observation) {
      for (const name of names) {
        const value = observation[name];
        if (value !== undefined) parts[name].add(summary[name], value as O[K]);
      }
    },
    merge(into, from) {
      for (const name of names) parts[name].merge(into[name], from[name]);
    },
  };
}
