/**
 * The published examples of Fairlearn, Aequitas and AI Fairness 360, reproduced exactly.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fairnessAudit } from "./audit.js";
import { theilIndex } from "./individual.js";
import { RATE_METRICS } from "./metrics.js";

const EXACT = 1e-12;

function close(actual: number, expected: number, tolerance: number, label: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${label}: got ${actual}, expected ${expected}`);
}

test("Fairlearn's user-guide example: TPR, FPR and selection rate by group, demographic parity and equalized odds", () => {
  // fairlearn.org, "Common fairness metrics" / MetricFrame examples.
  const yTrue = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1];
  const yPred = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
  const groups = ["b", "b", "a", "b", "b", "c", "c", "c", "a", "a", "c", "a", "b", "c", "c", "b", "c", "c"];
  const audit = fairnessAudit(
    { groups: [{ name: "group", values: groups }], yTrue, yPred },
    { bootstrap: false },
  );
  const expected = {
    a: { tpr: 0.5, fpr: 1.0, selection_rate: 0.75 },
    b: { tpr: 0.6, fpr: 0.0, selection_rate: 0.5 },
    c: { tpr: 0.4, fpr: 2 / 3, selection_rate: 0.5 },
  };
  assert.deepEqual(
    audit.groups.map((g) => g.group.label),
    ["a", "b", "c"],
  );
  for (const g of audit.groups) {
    const want = expected[g.group.label as keyof typeof expected];
    for (const metric of ["tpr", "fpr", "selection_rate"] as const) {
      close(g.metrics[metric].value, want[metric], EXACT, `${g.group.label} ${metric}`);
    }
  }
  // Fairlearn prints 0.666667 for FPR of c and for the ratio: 2/3 to six decimals.
  close(audit.groups[2]!.metrics.fpr.value, 0.666667, 5e-7, "c fpr as printed");
  close(audit.criteria.demographicParity.difference.value, 0.25, EXACT, "demographic_parity_difference");
  close(audit.criteria.demographicParity.ratio.value, 0.666667, 5e-7, "demographic_parity_ratio as printed");
  close(audit.criteria.demographicParity.ratio.value, 2 / 3, EXACT, "demographic_parity_ratio");
  close(audit.criteria.equalizedOdds.difference.value, 1.0, EXACT, "equalized_odds_difference");
  assert.equal(audit.criteria.equalizedOdds.aggregate, "worst");
});

test("Aequitas's bias report example: with High as reference, Low's FNR, FPR and FDR disparities are 1.5, 1.3333 and 2", () => {
  // The smallest confusion counts that give exactly Aequitas's published disparities (a search over all
  // tables with at most 8 rows per cell; total 9 rows):
  //   High: TP 1, FN 2, FP 1, TN 1 → FNR 2/3, FPR 1/2, FDR 1/2
  //   Low:  TP 0, FN 1, FP 2, TN 1 → FNR 1,   FPR 2/3, FDR 1
  // Aequitas: disparity = group metric / reference group metric → 1.5, 4/3 (printed 1.3333), 2.
  const rows: { group: string; y: number; p: number }[] = [];
  const add = (group: string, y: number, p: number, count: number) => {
    for (let i = 0; i < count; i++) rows.push({ group, y, p });
  };
  add("High", 1, 1, 1);
  add("High", 1, 0, 2);
  add("High", 0, 1, 1);
  add("High", 0, 0, 1);
  add("Low", 1, 0, 1);
  add("Low", 0, 1, 2);
  add("Low", 0, 0, 1);
  const input = {
    groups: [{ name: "income", values: rows.map((r) => r.group) }],
    yTrue: rows.map((r) => r.y),
    yPred: rows.map((r) => r.p),
  };
  for (const reference of [{ group: "High" }, "largest"] as const) {
    const audit = fairnessAudit(input, { reference, bootstrap: false });
    const disparity = (metric: string) => {
      const d = audit.disparities.find((x) => x.metric === metric)!;
      assert.equal(d.reference, "High");
      return d.toReference.find((x) => x.group === "Low")!.ratio.value;
    };
    close(disparity("fnr"), 1.5, EXACT, "FNR disparity");
    close(disparity("fpr"), 4 / 3, EXACT, "FPR disparity");
    close(disparity("fpr"), 1.3333, 5e-5, "FPR disparity as printed");
    close(disparity("fdr"), 2, EXACT, "FDR disparity");
    // Aequitas's definition, for every metric defined in both groups: group metric / reference metric.
    const high = audit.groups.find((g) => g.group.label === "High")!;
    const low = audit.groups.find((g) => g.group.label === "Low")!;
    for (const metric of RATE_METRICS) {
      const d = audit.disparities.find((x) => x.metric === metric)!;
      const ratio = d.toReference.find((x) => x.group === "Low")!.ratio;
      const expected = low.metrics[metric].value / high.metrics[metric].value;
      if (Number.isFinite(expected)) close(ratio.value, expected, EXACT, `${metric} disparity`);
      else
        assert.ok(
          Number.isNaN(ratio.value) && ratio.reason !== undefined,
          `${metric} undefined with a reason`,
        );
      close(
        d.toReference.find((x) => x.group === "High")!.ratio.value,
        1,
        0,
        `${metric} reference to itself`,
      );
    }
  }
});

test("AI Fairness 360's Theil index example: 4·ln(2)/10", () => {
  const yTrue = [1, 0, 0, 1, 0, 0, 1, 0, 1, 1];
  const yPred = [1, 0, 0, 0, 1, 1, 1, 0, 1, 0];
  close(theilIndex(yTrue, yPred), (4 * Math.log(2)) / 10, EXACT, "theil_index");
  const audit = fairnessAudit(
    { groups: [{ name: "all", values: yTrue.map(() => "everyone") }], yTrue, yPred },
    { bootstrap: false },
  );
  close(audit.individual.theil.value, (4 * Math.log(2)) / 10, EXACT, "theil from cell counts");
});
