/**
 * Defences against model extraction and membership inference, per caller (an identity, else an address) and
 * model:
 *
 * - a **query budget**: at most `perDay` decided instances in any 24 hours (hourly buckets; a request that
 *   would pass it is refused whole), with an alert episode from `alertShare` of it;
 * - **probing detection**: of the caller's latest `window` rows, the share that differ from an earlier one in
 *   at most one feature (a sweep over one input, the usual way to map a decision boundary), with an alert
 *   episode from `share` (once `minObservations` rows are in).
 *
 * Pure and clock-injected; O(1) per admitted request and O(window · features) per observed row. The state of
 * at most `maxCallers` caller and model pairs is kept, the least recently seen forgotten first.
 */
import { LruMap } from "./lru.js";

const HOUR_MS = 3_600_000;
const HOURS = 24;
/** Caller and model pairs kept by default (each kind apart). */
const DEFAULT_MAX_CALLERS = 10_000;

/** A feature's scale for "the same value": numbers differ when apart by more than `tolerance` of it. */
export interface FeatureScale {
  /** max − min of the feature (manifest bounds or reference data); 0 or absent: any difference counts. */
  readonly range?: number | undefined;
}

export interface ExtractionOptions {
  /** Instances per caller and model in any 24 hours; 0: no budget. */
  readonly perDay: number;
  /** Share of the budget at which the budget alert fires. */
  readonly alertShare: number;
  readonly probing: {
    readonly enabled: boolean;
    readonly window: number;
    readonly share: number;
    readonly minObservations: number;
    /** Two values of a numeric feature are the same when closer than this share of its range. */
    readonly tolerance: number;
  };
  /**
   * Caller and model pairs whose budget and probing window are kept (each kind apart; default 10,000): past it,
   * the least recently seen pair is forgotten (its budget starts afresh if it comes back, and an alert episode
   * it had open is resolved).
   */
  readonly maxCallers?: number;
  readonly now?: () => number;
}

/** An alert episode's change, for the alert sink (`name` is fixed by the kind). */
export interface ExtractionAlert {
  readonly kind: "budget" | "probing";
  readonly caller: string;
  readonly model: string;
  readonly status: "firing" | "resolved";
  /** Budget: used / limit; probing: the near-duplicate share. */
  readonly value: number;
  readonly startsAt: string;
}

export interface Extraction {
  /**
   * Count `n` instances against the caller's budget for the model; refused (nothing counted) when they would
   * pass it, with the seconds until enough of the window expires.
   */
  admit(
    caller: string,
    model: string,
    n: number,
  ): { allowed: true } | { allowed: false; retryAfterSeconds: number; used: number; limit: number };
  /** One decided row (encoded model features). */
  observe(caller: string, model: string, row: ArrayLike<number>, scales: readonly FeatureScale[]): void;
  /** The caller's figures for a model (for reports and tests). */
  state(caller: string, model: string): { used: number; limit: number; nearShare: number; rows: number };
}

interface Budget {
  readonly caller: string;
  readonly model: string;
  /** Per hour slot: its epoch hour and count. */
  readonly hours: Float64Array;
  readonly counts: Float64Array;
}

interface Probe {
  readonly caller: string;
  readonly model: string;
  readonly rows: Float64Array;
  readonly near: Uint8Array;
  next: number;
  filled: number;
  width: number;
}

export function createExtractionDefences(
  options: ExtractionOptions,
  onAlert: (alert: ExtractionAlert) => void,
): Extraction {
  const now = options.now ?? Date.now;
  const maxCallers = options.maxCallers ?? DEFAULT_MAX_CALLERS;
  const budgets = new LruMap<Budget>();
  const probes = new LruMap<Probe>();
  const firing = new Map<string, ExtractionAlert>();
  const keyOf = (caller: string, model: string) => `${caller}\u0000${model}`;

  const episode = (
    kind: ExtractionAlert["kind"],
    caller: string,
    model: string,
    active: boolean,
    value: number,
  ) => {
    const key = `${kind}\u0000${keyOf(caller, model)}`;
    const open = firing.get(key);
    if (active && open === undefined) {
      const alert: ExtractionAlert = {
        kind,
        caller,
        model,
        status: "firing",
        value,
        startsAt: new Date(now()).toISOString(),
      };
      firing.set(key, alert);
      onAlert(alert);
    } else if (!active && open !== undefined) {
      firing.delete(key);
      onAlert({ ...open, status: "resolved", value });
    }
  };

  const used = (b: Budget, hour: number): number => {
    let total = 0;
    for (let i = 0; i < HOURS; i++) if (b.hours[i]! > hour - HOURS) total += b.counts[i]!;
    return total;
  };

  /** Forget the least recently seen pairs past `maxCallers`, ending the episodes they had open. */
  const bound = <T extends { readonly caller: string; readonly model: string }>(
    map: LruMap<T>,
    kind: ExtractionAlert["kind"],
  ) => {
    while (map.size > maxCallers) {
      const { value } = map.dropOldest()!;
      episode(kind, value.caller, value.model, false, 0);
    }
  };

  const budgetOf = (caller: string, model: string): Budget => {
    const key = keyOf(caller, model);
    let b = budgets.use(key);
    if (b === undefined) {
      b = {
        caller,
        model,
        hours: new Float64Array(HOURS).fill(Number.NEGATIVE_INFINITY),
        counts: new Float64Array(HOURS),
      };
      budgets.set(key, b);
      bound(budgets, "budget");
    }
    return b;
  };

  return {
    admit(caller, model, n) {
      const limit = options.perDay;
      if (limit <= 0) return { allowed: true };
      const hour = Math.floor(now() / HOUR_MS);
      const b = budgetOf(caller, model);
      const total = used(b, hour);
      if (total + n > limit) {
        // Enough of the window expires when its oldest hours leave it: at the latest, the next hour.
        const retry = Math.max(1, Math.ceil(((hour + 1) * HOUR_MS - now()) / 1000));
        episode("budget", caller, model, true, total / limit);
        return { allowed: false, retryAfterSeconds: retry, used: total, limit };
      }
      const slot = hour % HOURS;
      if (b.hours[slot] !== hour) {
        b.hours[slot] = hour;
        b.counts[slot] = 0;
      }
      b.counts[slot]! += n;
      const share = (total + n) / limit;
      episode("budget", caller, model, share >= options.alertShare, share);
      return { allowed: true };
    },

    observe(caller, model, row, scales) {
      const p = options.probing;
      if (!p.enabled) return;
      const key = keyOf(caller, model);
      const width = row.length;
      let probe = probes.use(key);
      if (probe === undefined || probe.width !== width) {
        probe = {
          caller,
          model,
          rows: new Float64Array(p.window * width),
          near: new Uint8Array(p.window),
          next: 0,
          filled: 0,
          width,
        };
        probes.set(key, probe);
        bound(probes, "probing");
      }
      // Near-identical: differs from one of the window's rows in at most one feature.
      let near = 0;
      for (let i = 0; i < probe.filled && near === 0; i++) {
        const at = i * width;
        let differing = 0;
        for (let j = 0; j < width && differing <= 1; j++) {
          const a = row[j]!;
          const b = probe.rows[at + j]!;
          if (Number.isNaN(a) && Number.isNaN(b)) continue;
          const range = scales[j]?.range;
          const tolerance = range !== undefined && range > 0 ? p.tolerance * range : 0;
          if (!(Math.abs(a - b) <= tolerance)) differing++;
        }
        if (differing <= 1) near = 1;
      }
      for (let j = 0; j < width; j++) probe.rows[probe.next * width + j] = row[j]!;
      probe.near[probe.next] = near;
      probe.next = (probe.next + 1) % p.window;
      if (probe.filled < p.window) probe.filled++;
      if (probe.filled < p.minObservations) return;
      let count = 0;
      for (let i = 0; i < probe.filled; i++) count += probe.near[i]!;
      const share = count / probe.filled;
      episode("probing", caller, model, share >= p.share, share);
    },

    state(caller, model) {
      const key = keyOf(caller, model);
      const b = budgets.peek(key);
      const probe = probes.peek(key);
      let near = 0;
      if (probe !== undefined) for (let i = 0; i < probe.filled; i++) near += probe.near[i]!;
      return {
        used: b === undefined ? 0 : used(b, Math.floor(now() / HOUR_MS)),
        limit: options.perDay,
        nearShare: probe === undefined || probe.filled === 0 ? 0 : near / probe.filled,
        rows: probe?.filled ?? 0,
      };
    },
  };
}
