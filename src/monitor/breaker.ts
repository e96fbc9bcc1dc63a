/**
 * A circuit breaker for one deployed model version, driven by what the monitors observe. It is pure and
 * deterministic: it owns no timer and reads no clock; every call takes `now` (milliseconds since the epoch),
 * and every state change comes back as a {@link BreakerEvent} for the caller to write to the ledger and
 * send as an alert.
 *
 * States: `closed` (the model serves) → `open` (the fallback answers) → `half_open` (a fraction of requests
 * probe the model) → `closed`, or back to `open` when the probes are not healthy. Hysteresis comes from
 * three places: a rule trips at its `trip` threshold but a probe window counts as healthy only at its
 * stricter `reset` threshold; a rule cannot trip before `minObservations`; and an open breaker waits
 * `coolDownS` before probing. An operator's stop opens the breaker and holds it open until the operator
 * resumes it (EU AI Act Art. 14(4)(e)): nothing closes a stopped breaker automatically.
 */

/** Breaker states (closed list). */
export const BREAKER_STATES = ["closed", "open", "half_open"] as const;
export type BreakerState = (typeof BREAKER_STATES)[number];

/**
 * What a rule watches (closed list): `confidence` (mean confidence of the served decisions, trips *below*
 * its floor), `anomaly_rate` (share of anomalous inputs), `error_rate` (share of requests the model failed
 * to answer), `drift` (share of features the drift monitor finds drifted; a dataset verdict is 1 or 0),
 * `fairness` (the live fairness monitor's worst selection-rate ratio between groups, trips *below* its floor).
 * `anomaly_rate`, `error_rate` and `drift` trip *above* their ceiling.
 */
export const BREAKER_SIGNALS = ["confidence", "anomaly_rate", "error_rate", "drift", "fairness"] as const;
export type BreakerSignal = (typeof BREAKER_SIGNALS)[number];

/** What answers a request while the breaker is open (closed list). */
export const BREAKER_FALLBACK_ACTIONS = ["human_review", "fallback_version", "refuse"] as const;
export type BreakerFallbackAction = (typeof BREAKER_FALLBACK_ACTIONS)[number];

/**
 * How half-open picks its probes (closed list): `sequence` (exactly ⌈n·fraction⌉ of the first n requests,
 * the first one included, evenly spread), `hash` (a request probes when a seeded FNV-1a hash of its key
 * falls below the fraction: the same key gets the same answer on every replica).
 */
export const PROBE_SELECTIONS = ["sequence", "hash"] as const;
export type ProbeSelection = (typeof PROBE_SELECTIONS)[number];

/** Why a transition happened: a rule's signal, or an operator's hand, or the probes, or the cool-down. */
export const BREAKER_TRANSITION_CAUSES = [
  "manual_stop",
  "manual_resume",
  "cool_down",
  "probes_healthy",
] as const;
export type BreakerCause = BreakerSignal | (typeof BREAKER_TRANSITION_CAUSES)[number];

/** One rule: a signal with its trip and reset thresholds. */
export interface BreakerRule {
  readonly signal: BreakerSignal;
  /** `confidence`, `fairness`: trips when the value falls below it; the others: when it exceeds it. */
  readonly trip: number;
  /** A probe window is healthy at this level: value ≥ reset (confidence, fairness), value ≤ reset (the others). */
  readonly reset: number;
  /** Observations the signal needs before the rule can trip (`drift`: rows behind the verdict; `fairness`: decisions). */
  readonly minObservations: number;
}

/** Where open requests go. */
export interface BreakerFallback {
  readonly action: BreakerFallbackAction;
  /** The model version that answers instead (only with `fallback_version`). */
  readonly version?: string | undefined;
}

/** A breaker's settings (the manifest's `policy.breaker`, defaults applied). */
export interface BreakerOptions {
  readonly rules: readonly BreakerRule[];
  /** The latest observations each signal is judged on (a count window). */
  readonly window: number;
  /** Seconds an open breaker waits before probing. */
  readonly coolDownS: number;
  /** Share of requests that probe while half-open, in (0, 1]. */
  readonly probeFraction: number;
  readonly probeSelection: ProbeSelection;
  /** Probe observations in one probe window; a healthy window closes the breaker, any other re-opens it. */
  readonly probesToClose: number;
  readonly fallback: BreakerFallback;
  /** Seed of the `hash` probe selection (default 0). */
  readonly seed?: number | undefined;
}

/** What one served request showed; absent fields say nothing about their signal. */
export interface BreakerObservation {
  /** The decision's confidence in [0, 1] (e.g. the probability of the class decided). */
  readonly confidence?: number | undefined;
  /** Whether the anomaly detector flagged the input. */
  readonly anomalous?: boolean | undefined;
  /** Whether the model failed to answer (an inference error or timeout). */
  readonly failed?: boolean | undefined;
}

/** A signal's value and the observations behind it (undefined value: nothing observed yet). */
export interface SignalReading {
  readonly value: number | undefined;
  readonly observations: number;
}

/** A state change, for the ledger and the alert. */
export interface BreakerEvent {
  readonly from: BreakerState;
  readonly to: BreakerState;
  /** The rule that tripped, or what else caused it. */
  readonly rule: BreakerCause;
  /** Every configured signal as it stood (for a trip: the values that tripped it). */
  readonly values: Readonly<Partial<Record<BreakerSignal, SignalReading>>>;
  /** The threshold crossed, when a rule caused it. */
  readonly threshold?: number | undefined;
  /** When (milliseconds since the epoch). */
  readonly at: number;
  /** The operator, for a manual stop or resume. */
  readonly actor?: string | undefined;
  /** The operator's reason, for a manual stop or resume. */
  readonly reason?: string | undefined;
}

/** What to do with one request. */
export type BreakerRoute =
  | { readonly action: "serve" }
  | { readonly action: "probe" }
  | { readonly action: "fallback"; readonly fallback: BreakerFallback };

/** A breaker's state as a reader sees it. */
export interface BreakerSnapshot {
  readonly state: BreakerState;
  /** Set while an operator holds the breaker open. */
  readonly stoppedBy: { readonly actor: string; readonly reason: string; readonly at: number } | undefined;
  /** When the breaker last opened (ms), or undefined. */
  readonly openedAt: number | undefined;
  /** Probe observations in the current probe window (half-open). */
  readonly probeObservations: number;
  readonly values: Readonly<Partial<Record<BreakerSignal, SignalReading>>>;
}

/** A circuit breaker; see the module comment. */
export interface CircuitBreaker {
  /** Routes a request: serve (closed), probe or fall back (half-open), fall back (open). */
  route(requestKey: string, now: number): { readonly route: BreakerRoute; readonly events: BreakerEvent[] };
  /** Records one served (or probed) request; returns the transitions it caused. */
  observe(observation: BreakerObservation, now: number): BreakerEvent[];
  /**
   * Records the fairness monitor's latest worst selection-rate ratio (lowest group over highest, in [0, 1])
   * over `observations` decisions.
   */
  reportFairness(ratio: number, observations: number, now: number): BreakerEvent[];
  /** Records the drift monitor's latest verdict: the drifted share in [0, 1] over `observations` rows. */
  reportDrift(share: number, observations: number, now: number): BreakerEvent[];
  /** Applies the passage of time (the cool-down); `route` and `observe` do this too. */
  tick(now: number): BreakerEvent[];
  /** An operator opens the breaker and holds it open until {@link resume}. */
  stop(actor: string, reason: string, now: number): BreakerEvent[];
  /** An operator lets a stopped breaker go: it probes first (`half_open`), or closes at once with `to: "closed"`. */
  resume(
    actor: string,
    reason: string,
    now: number,
    options?: { readonly to?: "closed" | "half_open" },
  ): BreakerEvent[];
  snapshot(): BreakerSnapshot;
}

/**
 * The latest `size` numbers with their running sum: O(1) per add. The sum is recomputed from the ring every
 * `size` additions so that rounding cannot accumulate (amortised O(1)).
 */
class RollingMean {
  readonly #ring: Float64Array;
  #next = 0;
  #count = 0;
  #sum = 0;
  #sinceExact = 0;

  constructor(size: number) {
    this.#ring = new Float64Array(size);
  }

  add(value: number): void {
    const size = this.#ring.length;
    if (this.#count === size) this.#sum -= this.#ring[this.#next]!;
    else this.#count += 1;
    this.#ring[this.#next] = value;
    this.#sum += value;
    this.#next = (this.#next + 1) % size;
    this.#sinceExact += 1;
    if (this.#sinceExact >= size) {
      let exact = 0;
      for (let i = 0; i < this.#count; i++) exact += this.#ring[i]!;
      this.#sum = exact;
      this.#sinceExact = 0;
    }
  }

  clear(): void {
    this.#next = 0;
    this.#count = 0;
    this.#sum = 0;
    this.#sinceExact = 0;
  }

  get count(): number {
    return this.#count;
  }

  get mean(): number | undefined {
    return this.#count === 0 ? undefined : this.#sum / this.#count;
  }
}

/** Scale of the `sequence` probe selection: fractions are taken to a millionth, then counted exactly. */
const PROBE_SCALE = 1_000_000;

/** FNV-1a (32-bit) of `seed:key`, as an unsigned integer. */
function fnv1a(seed: number, key: string): number {
  const text = `${seed}:${key}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * Whether a request with this key probes under the `hash` selection: its seeded FNV-1a hash, as a fraction
 * of 2^32, is below `fraction`.
 */
export function hashProbes(key: string, fraction: number, seed = 0): boolean {
  return fnv1a(seed, key) < fraction * 2 ** 32;
}

function checkOptions(options: BreakerOptions): void {
  const bad = (what: string) => {
    throw new RangeError(`circuit breaker: ${what}`);
  };
  if (!Number.isInteger(options.window) || options.window < 1) bad("window must be a whole number ≥ 1");
  if (!(options.coolDownS >= 0)) bad("coolDownS must be ≥ 0");
  if (!(options.probeFraction > 0 && options.probeFraction <= 1)) bad("probeFraction must be in (0, 1]");
  if (!Number.isInteger(options.probesToClose) || options.probesToClose < 1)
    bad("probesToClose must be a whole number ≥ 1");
  const seen = new Set<BreakerSignal>();
  for (const rule of options.rules) {
    if (seen.has(rule.signal)) bad(`two rules for ${rule.signal}`);
    seen.add(rule.signal);
    const healthierOrEqual = lowerIsWorse(rule.signal) ? rule.reset >= rule.trip : rule.reset <= rule.trip;
    if (!healthierOrEqual) bad(`${rule.signal}: reset must be on the healthy side of trip`);
    if (!Number.isInteger(rule.minObservations) || rule.minObservations < 1)
      bad(`${rule.signal}: minObservations must be a whole number ≥ 1`);
  }
  if (options.fallback.action === "fallback_version" && !options.fallback.version)
    bad("a fallback_version fallback needs a version");
}

/**
 * A circuit breaker with these settings, closed. Each update is O(rules); nothing is kept per request beyond
 * the count windows (one ring of `window` numbers per signal).
 *
 * @example
 * const breaker = createCircuitBreaker({ rules: [{ signal: "error_rate", trip: 0.2, reset: 0.05,
 *   minObservations: 50 }], window: 100, coolDownS: 60, probeFraction: 0.1, probeSelection: "sequence",
 *   probesToClose: 20, fallback: { action: "refuse" } });
 * const { route, events } = breaker.route(requestId, Date.now());
 */
/** Signals that trip when they fall (confidence, the fairness ratio); the others trip when they rise. */
function lowerIsWorse(signal: BreakerSignal): boolean {
  return signal === "confidence" || signal === "fairness";
}

export function createCircuitBreaker(options: BreakerOptions): CircuitBreaker {
  checkOptions(options);
  const rules = [...options.rules];
  const watches = new Set(rules.map((r) => r.signal));
  const window = options.window;
  const confidence = new RollingMean(window);
  const anomalies = new RollingMean(window);
  const failures = new RollingMean(window);
  let drift: SignalReading = { value: undefined, observations: 0 };
  let fairness: SignalReading = { value: undefined, observations: 0 };
  const probeNumerator = Math.max(1, Math.round(options.probeFraction * PROBE_SCALE));
  const seed = options.seed ?? 0;

  let state: BreakerState = "closed";
  let openedAt: number | undefined;
  let stoppedBy: BreakerSnapshot["stoppedBy"];
  let probeObservations = 0;
  // The `sequence` selection's accumulator: a request probes when adding the fraction carries over a whole.
  let probeCredit = 0;

  function reading(signal: BreakerSignal): SignalReading {
    if (signal === "drift") return drift;
    if (signal === "fairness") return fairness;
    const window = signal === "confidence" ? confidence : signal === "anomaly_rate" ? anomalies : failures;
    return { value: window.mean, observations: window.count };
  }

  function values(): Partial<Record<BreakerSignal, SignalReading>> {
    const out: Partial<Record<BreakerSignal, SignalReading>> = {};
    for (const signal of BREAKER_SIGNALS) if (watches.has(signal)) out[signal] = reading(signal);
    return Object.freeze(out);
  }

  function crossesTrip(rule: BreakerRule, value: number): boolean {
    return lowerIsWorse(rule.signal) ? value < rule.trip : value > rule.trip;
  }

  function healthy(rule: BreakerRule, value: number | undefined): boolean {
    // A signal nothing was said about in the probe window (no anomaly flags, no new drift verdict) does not
    // hold the breaker open; its last value does, if unhealthy.
    if (value === undefined) return true;
    return lowerIsWorse(rule.signal) ? value >= rule.reset : value <= rule.reset;
  }

  function event(
    from: BreakerState,
    to: BreakerState,
    rule: BreakerCause,
    at: number,
    extra = {},
  ): BreakerEvent {
    return Object.freeze({ from, to, rule, values: values(), at, ...extra });
  }

  function enterHalfOpen(): void {
    state = "half_open";
    probeObservations = 0;
    // Starting one short of a whole makes n requests carry ⌈n·fraction⌉ times, the first one included.
    probeCredit = PROBE_SCALE - 1;
    confidence.clear();
    anomalies.clear();
    failures.clear();
  }

  function open(from: BreakerState, rule: BreakerCause, at: number, extra = {}): BreakerEvent {
    const e = event(from, "open", rule, at, extra);
    state = "open";
    openedAt = at;
    probeObservations = 0;
    return e;
  }

  function tick(now: number): BreakerEvent[] {
    if (state !== "open" || stoppedBy !== undefined || openedAt === undefined) return [];
    if (now - openedAt < options.coolDownS * 1000) return [];
    const e = event("open", "half_open", "cool_down", now);
    enterHalfOpen();
    return [e];
  }

  /** Closed: the first rule (in order) past its trip threshold with enough observations opens the breaker. */
  function judgeClosed(now: number): BreakerEvent[] {
    for (const rule of rules) {
      const r = reading(rule.signal);
      if (r.value !== undefined && r.observations >= rule.minObservations && crossesTrip(rule, r.value)) {
        return [open("closed", rule.signal, now, { threshold: rule.trip })];
      }
    }
    return [];
  }

  /** Half-open: at the end of a probe window, healthy on every rule closes, anything else re-opens. */
  function judgeProbeWindow(now: number): BreakerEvent[] {
    if (probeObservations < options.probesToClose) return [];
    for (const rule of rules) {
      const r = reading(rule.signal);
      if (!healthy(rule, r.value)) return [open("half_open", rule.signal, now, { threshold: rule.reset })];
    }
    const e = event("half_open", "closed", "probes_healthy", now);
    state = "closed";
    openedAt = undefined;
    probeObservations = 0;
    return [e];
  }

  function judge(now: number): BreakerEvent[] {
    if (state === "closed") return judgeClosed(now);
    if (state === "half_open") return judgeProbeWindow(now);
    return [];
  }

  return {
    route(requestKey, now) {
      const events = tick(now);
      let route: BreakerRoute;
      if (state === "closed") route = { action: "serve" };
      else if (state === "open") route = { action: "fallback", fallback: options.fallback };
      else {
        let probes: boolean;
        if (options.probeSelection === "hash") probes = hashProbes(requestKey, options.probeFraction, seed);
        else {
          probeCredit += probeNumerator;
          probes = probeCredit >= PROBE_SCALE;
          if (probes) probeCredit -= PROBE_SCALE;
        }
        route = probes ? { action: "probe" } : { action: "fallback", fallback: options.fallback };
      }
      return { route, events };
    },

    observe(observation, now) {
      const events = tick(now);
      // An open breaker's model answers nothing: observations then (a shadow run, a late answer) are not
      // evidence for the probes to come.
      if (state === "open") return events;
      if (observation.confidence !== undefined) confidence.add(observation.confidence);
      if (observation.anomalous !== undefined) anomalies.add(observation.anomalous ? 1 : 0);
      if (observation.failed !== undefined) failures.add(observation.failed ? 1 : 0);
      if (state === "half_open") probeObservations += 1;
      return [...events, ...judge(now)];
    },

    reportDrift(share, observations, now) {
      const events = tick(now);
      drift = Object.freeze({ value: share, observations });
      // Drift is judged in half-open at the end of the probe window, with the rest.
      return state === "closed" ? [...events, ...judgeClosed(now)] : events;
    },

    reportFairness(ratio, observations, now) {
      const events = tick(now);
      fairness = Object.freeze({ value: ratio, observations });
      return state === "closed" ? [...events, ...judgeClosed(now)] : events;
    },

    tick,

    stop(actor, reason, now) {
      if (stoppedBy !== undefined) return [];
      const e = open(state, "manual_stop", now, { actor, reason });
      stoppedBy = Object.freeze({ actor, reason, at: now });
      return [e];
    },

    resume(actor, reason, now, resumeOptions = {}) {
      if (stoppedBy === undefined) return [];
      stoppedBy = undefined;
      const to = resumeOptions.to ?? "half_open";
      const e = event("open", to, "manual_resume", now, { actor, reason });
      if (to === "half_open") enterHalfOpen();
      else {
        state = "closed";
        openedAt = undefined;
        confidence.clear();
        anomalies.clear();
        failures.clear();
      }
      return [e];
    },

    snapshot() {
      return Object.freeze({ state, stoppedBy, openedAt, probeObservations, values: values() });
    },
  };
}
