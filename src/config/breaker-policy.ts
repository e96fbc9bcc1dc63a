import { Type as T } from "@sinclair/typebox";
import { describeValue, type FieldProblem } from "../errors/index.js";
import {
  BREAKER_FALLBACK_ACTIONS,
  BREAKER_SIGNALS,
  type BreakerFallbackAction,
  type BreakerOptions,
  type BreakerRule,
  type BreakerSignal,
  PROBE_SELECTIONS,
  type ProbeSelection,
} from "../monitor/index.js";
import { literalUnion } from "./manifest-schema.js";
import { schemaProblems } from "./schema-errors.js";

/** Observations each signal is judged on, by default. */
export const DEFAULT_BREAKER_WINDOW = 200;
/** Seconds an open breaker waits before probing, by default (five minutes). */
export const DEFAULT_BREAKER_COOL_DOWN_S = 300;
/** Share of requests that probe a half-open breaker, by default. */
export const DEFAULT_BREAKER_PROBE_FRACTION = 0.1;
/** Probe observations in one probe window, by default. */
export const DEFAULT_BREAKER_PROBES_TO_CLOSE = 50;

const Share = (what: string) =>
  T.Number({ minimum: 0, maximum: 1, description: `${what}: a number from 0 to 1` });

const RuleSchema = (trip: string, reset: string) =>
  T.Object(
    {
      trip: Share(trip),
      reset: Share(reset),
      min_observations: T.Optional(
        T.Integer({ minimum: 1, maximum: 10_000_000, description: "a whole number from 1 to 10000000" }),
      ),
    },
    { additionalProperties: false, description: "a mapping of trip, reset and min_observations" },
  );

/** `policy.breaker` as written. */
export const BreakerPolicySchema = T.Object(
  {
    rules: T.Object(
      {
        confidence: T.Optional(
          RuleSchema("the mean confidence that trips", "the mean confidence that is healthy"),
        ),
        anomaly_rate: T.Optional(
          RuleSchema("the anomaly rate that trips", "the anomaly rate that is healthy"),
        ),
        error_rate: T.Optional(RuleSchema("the error rate that trips", "the error rate that is healthy")),
        drift: T.Optional(RuleSchema("the drifted share that trips", "the drifted share that is healthy")),
        fairness: T.Optional(
          RuleSchema(
            "the worst selection-rate ratio between groups that trips",
            "the worst selection-rate ratio that is healthy",
          ),
        ),
      },
      {
        additionalProperties: false,
        minProperties: 1,
        description: "a mapping of one or more of confidence, anomaly_rate, error_rate, drift and fairness",
      },
    ),
    window: T.Optional(
      T.Integer({ minimum: 10, maximum: 100_000, description: "a whole number from 10 to 100000" }),
    ),
    cool_down_s: T.Optional(
      T.Number({ minimum: 0, maximum: 86_400, description: "seconds from 0 to 86400" }),
    ),
    probe_fraction: T.Optional(
      T.Number({ exclusiveMinimum: 0, maximum: 1, description: "a number above 0 and at most 1" }),
    ),
    probe_selection: T.Optional(literalUnion(PROBE_SELECTIONS)),
    probes_to_close: T.Optional(
      T.Integer({ minimum: 1, maximum: 100_000, description: "a whole number from 1 to 100000" }),
    ),
    fallback: T.Optional(
      T.Object(
        {
          action: literalUnion(BREAKER_FALLBACK_ACTIONS),
          version: T.Optional(
            T.String({
              minLength: 1,
              maxLength: 64,
              pattern: "^[A-Za-z0-9][A-Za-z0-9_.+-]*$",
              description: "a model version (letters, digits, _ . + -)",
            }),
          ),
        },
        { additionalProperties: false, description: "a mapping of action and version" },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "a mapping of rules, window, cool_down_s, probe_fraction, probe_selection, probes_to_close and fallback",
  },
);

/** A manifest's circuit breaker, defaults applied; see {@link BreakerOptions}. */
export type BreakerPolicy = BreakerOptions;

type RawRule = { trip: number; reset: number; min_observations?: number };
type RawBreaker = {
  rules: Partial<Record<BreakerSignal, RawRule>>;
  window?: number;
  cool_down_s?: number;
  probe_fraction?: number;
  probe_selection?: ProbeSelection;
  probes_to_close?: number;
  fallback?: { action: BreakerFallbackAction; version?: string };
};

const AT = "/policy/breaker";

/** Problems with `policy.breaker` (field paths from the manifest root). `version` is the manifest's own. */
export function breakerPolicyProblems(
  version: string,
  policy: Readonly<Record<string, unknown>>,
): FieldProblem[] {
  const raw = policy.breaker;
  if (raw === undefined) return [];
  const problems = schemaProblems(BreakerPolicySchema, raw, AT);
  if (problems.length > 0) return problems;
  const b = raw as RawBreaker;
  const window = b.window ?? DEFAULT_BREAKER_WINDOW;
  for (const signal of BREAKER_SIGNALS) {
    const rule = b.rules[signal];
    if (rule === undefined) continue;
    const at = `${AT}/rules/${signal}`;
    const falls = signal === "confidence" || signal === "fairness";
    if (falls ? rule.reset < rule.trip : rule.reset > rule.trip) {
      const side = falls ? "at or above" : "at or below";
      problems.push({
        field: `${at}/reset`,
        expected: `a value ${side} trip (${rule.trip}): the level at which probes count as healthy is on the healthy side of the one that trips`,
        found: describeValue(rule.reset),
        fix: falls
          ? `${signal} trips below trip; write a reset a little above it (e.g. trip + 0.05)`
          : `${signal} trips above trip; write a reset a little below it (e.g. half of trip)`,
      });
    }
    // Drift's and fairness's observations are the decisions behind the monitors' figures, not this window's.
    if (
      signal !== "drift" &&
      signal !== "fairness" &&
      rule.min_observations !== undefined &&
      rule.min_observations > window
    ) {
      problems.push({
        field: `${at}/min_observations`,
        expected: `at most window (${window}): the window never holds more`,
        found: describeValue(rule.min_observations),
        fix: "lower min_observations, or raise window",
      });
    }
  }
  if (b.probes_to_close !== undefined && b.probes_to_close > window) {
    problems.push({
      field: `${AT}/probes_to_close`,
      expected: `at most window (${window}): a probe window is judged within the signal windows`,
      found: describeValue(b.probes_to_close),
      fix: "lower probes_to_close, or raise window",
    });
  }
  const fallback = b.fallback;
  if (fallback?.action === "fallback_version") {
    if (fallback.version === undefined) {
      problems.push({
        field: `${AT}/fallback/version`,
        expected: "the model version that answers while the breaker is open (required with fallback_version)",
        found: "missing",
        fix: "add version: <a deployed version of this model>, or choose action human_review or refuse",
      });
    } else if (fallback.version === version) {
      problems.push({
        field: `${AT}/fallback/version`,
        expected: `another version than this manifest's own (${version})`,
        found: describeValue(fallback.version),
        fix: "name the version to fall back to, e.g. the one deployed before this",
      });
    }
  } else if (fallback?.version !== undefined) {
    problems.push({
      field: `${AT}/fallback/version`,
      expected: `no version with action ${fallback.action} (only fallback_version answers from another version)`,
      found: describeValue(fallback.version),
      fix: "remove version, or write action: fallback_version",
    });
  }
  return problems;
}

/**
 * The breaker with defaults, or undefined when the manifest configures none (call after
 * {@link breakerPolicyProblems} found nothing). Rules come in the order of {@link BREAKER_SIGNALS}.
 */
export function breakerPolicyOf(policy: Readonly<Record<string, unknown>>): BreakerPolicy | undefined {
  const b = policy.breaker as RawBreaker | undefined;
  if (b === undefined) return undefined;
  const window = b.window ?? DEFAULT_BREAKER_WINDOW;
  const rules: BreakerRule[] = [];
  for (const signal of BREAKER_SIGNALS) {
    const rule = b.rules[signal];
    if (rule === undefined) continue;
    rules.push(
      Object.freeze({
        signal,
        trip: rule.trip,
        reset: rule.reset,
        // Drift: its verdict needs the same rows as one full window of the others, by default.
        minObservations: rule.min_observations ?? window,
      }),
    );
  }
  const action = b.fallback?.action ?? "refuse";
  return Object.freeze({
    rules: Object.freeze(rules),
    window,
    coolDownS: b.cool_down_s ?? DEFAULT_BREAKER_COOL_DOWN_S,
    probeFraction: b.probe_fraction ?? DEFAULT_BREAKER_PROBE_FRACTION,
    probeSelection: b.probe_selection ?? "sequence",
    probesToClose: b.probes_to_close ?? Math.min(DEFAULT_BREAKER_PROBES_TO_CLOSE, window),
    fallback: Object.freeze(
      action === "fallback_version" ? { action, version: b.fallback?.version } : { action },
    ),
  });
}
