import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { loadManifest, type Manifest, parseManifest } from "../config/index.js";
import { validateInstance } from "../decision/index.js";
import { xgboostScorer } from "../testing/demo-scorer.js";
import { DEMO_XGB, HOLDOUT_CSV, holdoutInstances } from "../testing/index.js";
import { formatNumber, formatValue, type ReasonCodes, reasonCodes } from "./reasons.js";
import { computeReferenceStats, readReferenceRows } from "./reference-stats.js";

/** A small credit model; `output` replaces the label settings. */
function creditManifest(
  output: Record<string, unknown> = { labels: ["good", "bad"], positive_label: "bad" },
) {
  return parseManifest(
    {
      name: "credit",
      version: "1",
      owner: "t",
      intended_use: "t",
      risk_tier: "high",
      task: "binary",
      artifact: { path: "m.json", format: "xgboost-json", sha256: "0".repeat(64) },
      features: [
        {
          name: "debt",
          type: "number",
          nullable: true,
          description: "Outstanding debt",
          reason: { high: "Outstanding debt too high", missing: "Debt not provided" },
        },
        { name: "income", type: "number", nullable: true, reason: { low: "Income too low" } },
        { name: "years", type: "integer", description: "Years at address" },
        { name: "age", type: "integer", sensitive: true },
        {
          name: "records",
          type: "boolean",
          description: "Previous arrears",
          reason: { high: "Previous arrears on record" },
        },
        { name: "home", type: "category", categories: ["rent", "own", "other"], reason: "Housing" },
        { name: "amount", type: "number", group: "loan size", reason: { high: "Amount too high" } },
        { name: "price", type: "number", group: "loan size", reason: { high: "Price too high" } },
      ],
      output,
    },
    "/models/credit/manifest.yaml",
  );
}

const manifest = creditManifest();
// Five favourable rows (score < 0.5) with round quartiles, one adverse row that must not count:
// debt 100/200/300, income 150/200/250, years 2/3/4, amount 600/700/800; records mostly no, home mostly own.
const rows = [
  [0, 100, 1, 0, 1, 500, 600],
  [100, 150, 2, 0, 1, 600, 700],
  [200, 200, 3, 0, 0, 700, 800],
  [300, 250, 4, 1, 1, 800, 900],
  [400, 300, 5, 0, 2, 900, 1000],
  [5000, 10, 0, 1, 0, 5000, 5000],
];
const stats = computeReferenceStats(
  manifest,
  { input: new Float32Array(rows.flat()), rows: rows.length },
  Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.1, 0.9]),
);

const denied = { debt: 1200, income: 50, years: 3, records: true, home: "rent", amount: 850, price: 650 };
// Class-1 (bad) margin contributions in model order: debt, income, years, records, home, amount, price.
const contributions = [0.9, 0.5, 0.05, 0.7, 0.15, 0.3, -0.1];
const attribution = (values: number[], base = -1) => ({ values: Float64Array.from(values), base });

const codes = (result: ReasonCodes) => result.reasons.map((r) => r.code);

test("the largest contributions toward the adverse outcome come first, capped at max_reasons", () => {
  const result = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "bad" },
    { stats },
  );
  assert.equal(result.adverse, true);
  assert.equal(result.decision, "bad");
  // The manifest's default is 4: debt 0.9, records 0.7, income 0.5, loan size 0.3 − 0.1; then home, years.
  assert.deepEqual(codes(result), ["debt", "records", "income", "loan size"]);
  assert.deepEqual(result.reasons.map((r) => r.contribution).slice(0, 3), [0.9, 0.7, 0.5]);
  assert.ok(Math.abs(result.reasons[3]!.contribution - 0.2) < 1e-12);
  const six = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "bad" },
    { stats, maxReasons: 6 },
  );
  assert.deepEqual(codes(six), ["debt", "records", "income", "loan size", "home", "years"]);
  const two = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "bad" },
    { maxReasons: 2 },
  );
  assert.deepEqual(codes(two), ["debt", "records"]);
  assert.deepEqual(
    codes(
      reasonCodes(
        manifest,
        { attribution: attribution(contributions), values: denied, decision: "bad" },
        { maxReasons: 0 },
      ),
    ),
    [],
  );
});

test("texts quote the value against typical favourable values, in the manifest's words", () => {
  const result = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "bad" },
    { stats, maxReasons: 6 },
  );
  const text = Object.fromEntries(result.reasons.map((r) => [r.code, r.text]));
  assert.equal(text.debt, "Outstanding debt too high (1,200; typically at most 300 when favourable)");
  assert.equal(text.income, "Income too low (50; typically at least 150 when favourable)");
  assert.equal(text.records, "Previous arrears on record (yes; typically no when favourable)");
  assert.equal(text.home, "Housing (rent; typically own when favourable)");
  // 3 is the favourable median: no direction, so the description and the middle half.
  assert.equal(text.years, "Years at address (3; typically 2 to 4 when favourable)");
  // Only the member pushing toward the adverse outcome is spoken of; both are listed.
  assert.equal(text["loan size"], "Loan size: Amount too high (850; typically at most 800 when favourable)");
  const group = result.reasons.find((r) => r.code === "loan size")!;
  assert.equal(group.kind, "group");
  assert.deepEqual(
    group.factors.map((f) => [f.feature, f.value, f.contribution, f.direction]),
    [
      ["amount", 850, 0.3, "high"],
      ["price", 650, -0.1, "low"],
    ],
  );
  const debt = result.reasons[0]!;
  assert.deepEqual(
    { kind: debt.kind, factors: debt.factors.map((f) => [f.feature, f.value, f.direction]) },
    { kind: "feature", factors: [["debt", 1200, "high"]] },
  );
});

test("missing values, values inside the typical range, the typical category, and no statistics", () => {
  const values = {
    debt: null,
    income: 175.5,
    years: 3,
    records: false,
    home: "own",
    amount: 700,
    price: 1234.5,
  };
  const all = attribution([0.6, 0.5, 0, 0.4, 0.3, -0.2, 0.25]);
  const result = reasonCodes(
    manifest,
    { attribution: all, values, decision: "bad" },
    { stats, maxReasons: 10 },
  );
  const text = Object.fromEntries(result.reasons.map((r) => [r.code, r.text]));
  assert.equal(text.debt, "Debt not provided (typically 100 to 300 when favourable)");
  assert.equal(result.reasons[0]!.factors[0]!.direction, "missing");
  assert.equal(text.income, "Income too low (175.5; typically 150 to 250 when favourable)");
  // No `low` text for records: the description. The value is the typical one, so nothing to compare.
  assert.equal(text.records, "Previous arrears (no)");
  assert.equal(text.home, "Housing (own)");
  assert.equal(
    text["loan size"],
    "Loan size: Price too high (1,234.5; typically at most 900 when favourable)",
  );
  assert.ok(!("years" in text), "a zero contribution is not a reason");

  const bare = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "bad" },
    { maxReasons: 10 },
  );
  const plain = Object.fromEntries(bare.reasons.map((r) => [r.code, r.text]));
  // Without statistics a number has no direction, so the description rather than "too high".
  assert.equal(plain.debt, "Outstanding debt (1,200)");
  assert.equal(plain.records, "Previous arrears on record (yes)");
  assert.equal(plain.income, "income (50)");
  assert.equal(plain.home, "Housing (rent)");
  // An absent value reads as not provided.
  const absent = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: { ...denied, income: undefined }, decision: "bad" },
    { maxReasons: 10 },
  );
  assert.equal(absent.reasons.find((r) => r.code === "income")!.text, "income (not provided)");
});

test("numbers are formatted for people, independent of the server's locale", () => {
  assert.equal(formatNumber(1234.5), "1,234.5");
  assert.equal(formatNumber(1234.567), "1,234.57");
  assert.equal(formatNumber(1_000_000), "1,000,000");
  assert.equal(formatNumber(-2500), "-2,500");
  assert.equal(formatNumber(12.5), "12.5");
  assert.equal(formatNumber(7.12345), "7.12");
  assert.equal(formatNumber(0.012345), "0.0123");
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(-0), "0");
  const years = manifest.modelFeatures.find((f) => f.name === "years")!;
  assert.equal(formatValue(years, 7), "7");
  assert.equal(formatValue(years, null), "not provided");
  assert.equal(formatValue(manifest.modelFeatures.find((f) => f.name === "records")!, false), "no");
});

test("contributions turn toward the adverse outcome whichever class it is", () => {
  const reference = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "bad" },
    { stats },
  );
  const summary = (r: ReasonCodes) => r.reasons.map((x) => [x.code, x.contribution, x.text]);
  const negated = contributions.map((c) => -c);
  // Labels the other way round: bad is class 0, so the class-1 margin points toward good.
  const swapped = creditManifest({ labels: ["bad", "good"], positive_label: "bad" });
  assert.equal(swapped.output.favorable_label, "good");
  const swappedStats = computeReferenceStats(
    swapped,
    { input: new Float32Array(rows.flat()), rows: rows.length },
    Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.1, 0.9]),
  );
  const fromSwapped = reasonCodes(
    swapped,
    { attribution: attribution(negated), values: denied, decision: "bad" },
    { stats: swappedStats },
  );
  assert.deepEqual(summary(fromSwapped), summary(reference));
  // The same, told by attributionClass: an attribution of class 0's margin.
  const class0 = reasonCodes(
    manifest,
    { attribution: attribution(negated), values: denied, decision: "bad" },
    { stats, attributionClass: 0 },
  );
  assert.deepEqual(summary(class0), summary(reference));
  // A model scoring the favourable outcome: adverse is class 0 while the margin is class 1's.
  const approval = creditManifest({
    labels: ["declined", "approved"],
    positive_label: "approved",
    favorable_label: "approved",
  });
  const declined = reasonCodes(approval, {
    attribution: attribution(negated),
    values: denied,
    decision: "declined",
  });
  assert.equal(declined.adverse, true);
  assert.deepEqual(codes(declined), ["debt", "records", "income", "loan size"]);
});

test("a favourable decision gets its factors too, marked as not adverse", () => {
  const result = reasonCodes(
    manifest,
    { attribution: attribution(contributions), values: denied, decision: "good" },
    { stats },
  );
  assert.equal(result.adverse, false);
  assert.equal(result.decision, "good");
  assert.deepEqual(codes(result), ["debt", "records", "income", "loan size"]);
  const none = reasonCodes(manifest, {
    attribution: attribution(contributions.map((c) => -Math.abs(c))),
    values: denied,
    decision: "good",
  });
  assert.deepEqual(none.reasons, []);
  assert.ok(
    Object.isFrozen(result) &&
      Object.isFrozen(result.reasons) &&
      Object.isFrozen(result.reasons[0]!.factors[0]),
  );
});

test("mistakes by the caller are refused", () => {
  const input = { attribution: attribution(contributions), values: denied, decision: "bad" };
  assert.throws(() => reasonCodes(manifest, { ...input, decision: "maybe" }), /not one of good, bad/);
  assert.throws(
    () => reasonCodes(manifest, { ...input, attribution: attribution([1, 2]) }),
    /has 2 values; the model has 7/,
  );
  assert.throws(
    () => reasonCodes(manifest, { ...input, attribution: attribution([Number.NaN, 0, 0, 0, 0, 0, 0]) }),
    /attribution of debt is NaN/,
  );
  assert.throws(() => reasonCodes(manifest, input, { maxReasons: 1.5 }), RangeError);
  const regression = parseManifest(
    { ...(manifest.source as object), task: "regression", output: {} },
    manifest.manifestPath,
  );
  assert.throws(() => reasonCodes(regression, input), /need a binary task/);
});

test("the demo model: texts from its manifest and statistics of its holdout", async () => {
  const demo: Manifest = loadManifest(DEMO_XGB);
  const reference = readReferenceRows(demo, HOLDOUT_CSV);
  const scorer = xgboostScorer(demo);
  const demoStats = computeReferenceStats(
    demo,
    reference,
    await scorer.score(reference.input, reference.rows),
  );
  // The native engine splits the holdout as XGBoost's own predictions do (727 of 891 favourable).
  assert.equal(demoStats.favorableRows, 727);
  // Holdout row 451 (P(bad) 0.966): Home rent, Records yes, Income 50, Debt 4000, Amount 1600, Price 1601,
  // Seniority 0. A hand-made attribution: what the texts say does not depend on where it came from.
  const row = holdoutInstances(demo)[451]!;
  const { instance } = validateInstance(demo, row.features, undefined, "");
  const names = demo.modelFeatures.map((f) => f.name);
  const weights: Record<string, number> = {
    Debt: 0.8,
    Records: 0.7,
    Income: 0.6,
    Amount: 0.2,
    Price: 0.1,
    Home: 0.35,
    Seniority: 0.25,
  };
  const values = Float64Array.from(names.map((n) => weights[n] ?? -0.05));
  const result = reasonCodes(
    demo,
    { attribution: { values, base: -1.2 }, values: instance!.inputs, decision: "bad" },
    { stats: demoStats, maxReasons: 10 },
  );
  assert.deepEqual(codes(result), ["Debt", "Records", "Income", "Home", "Loan size", "Seniority"]);
  const text = Object.fromEntries(result.reasons.map((r) => [r.code, r.text]));
  assert.equal(text.Debt, "Outstanding debt too high (4,000; typically at most 0 when favourable)");
  assert.equal(text.Records, "Previous arrears on record (yes; typically no when favourable)");
  assert.equal(text.Income, "Income too low (50; typically at least 100 when favourable)");
  assert.equal(text.Home, "Housing situation (rent; typically owner when favourable)");
  assert.equal(
    text["Loan size"],
    "Loan size: Requested amount too high (1,600; typically at most 1,200 when favourable); Price of the goods too high (1,601; typically 1,111 to 1,655 when favourable)",
  );
  assert.equal(
    text.Seniority,
    "Short time with the current employer (0; typically at least 2 when favourable)",
  );
  // The manifest's default: four reasons.
  assert.equal(
    reasonCodes(demo, { attribution: { values, base: -1.2 }, values: instance!.inputs, decision: "bad" })
      .reasons.length,
    4,
  );
});

test("whole numbers are grouped exactly as Intl's en-US format groups them", () => {
  const intl = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
  const edges = [
    0,
    -0,
    1,
    -1,
    999,
    1000,
    -1000,
    999_999,
    1_000_000,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
  ];
  for (const v of edges) assert.equal(formatNumber(v), intl.format(v === 0 ? 0 : v), String(v));
  fc.assert(
    fc.property(fc.maxSafeInteger(), (v) => {
      assert.equal(formatNumber(v), intl.format(v === 0 ? 0 : v));
    }),
    { numRuns: 2000, seed: 1234 },
  );
});
