/**
 * The "fairness" suite: a fairness audit at the size the product will run it, 1,000,000 decisions with three
 * sensitive attributes (2 × 4 × 5 = 40 intersectional groups, some of them small) and 200 bootstrap resamples.
 * Synthetic, seeded data. Timed: encoding the attributes (strings → group codes), the audit on labels and
 * decisions (bootstrap by multinomial cell counts), and the audit with scores (mean score and calibration need
 * the rows, so the bootstrap draws rows one by one); the baseline is one counting pass over the rows. Then
 * the ledger case (fairness-ledger.ts): the same size of audit run by `warden audit fairness --ledger` over a
 * real SQLite ledger, timed by phase.
 */
import { seededRandom } from "../explain/index.js";
import { countOutcomes, encodeGroups, fairnessAudit } from "../fairness/index.js";
import { ledgerAuditBench } from "./fairness-ledger.js";
import { type BenchSuite, benchRounds, describeMachine, formatTable, median, progress } from "./suite.js";

const ROWS = 1_000_000;
const RESAMPLES = 200;
const SEX = ["F", "M"];
const AGE = ["18-25", "26-40", "41-60", "61+"];
const REGION = ["north", "south", "east", "west", "islands"];

function syntheticRows() {
  const random = seededRandom(2024);
  const sex = new Array<string>(ROWS);
  const age = new Array<string>(ROWS);
  const region = new Array<string>(ROWS);
  const yTrue = new Uint8Array(ROWS);
  const yPred = new Uint8Array(ROWS);
  const scores = new Float64Array(ROWS);
  for (let i = 0; i < ROWS; i++) {
    const s = random.next() < 0.48 ? 0 : 1;
    const u = random.next();
    const a = u < 0.2 ? 0 : u < 0.55 ? 1 : u < 0.97 ? 2 : 3;
    const v = random.next();
    const r = v < 0.3 ? 0 : v < 0.6 ? 1 : v < 0.8 ? 2 : v < 0.9995 ? 3 : 4; // "islands": about 500 rows
    sex[i] = SEX[s]!;
    age[i] = AGE[a]!;
    region[i] = REGION[r]!;
    const score = Math.min(1, Math.max(0, 0.35 + 0.1 * s - 0.05 * a + 0.2 * random.normal() * 0.5));
    scores[i] = score;
    yTrue[i] = random.next() < score ? 1 : 0;
    yPred[i] = score >= 0.4 ? 1 : 0;
  }
  return { sex, age, region, yTrue, yPred, scores };
}

export const fairnessSuite: BenchSuite = {
  async run() {
    const rounds = benchRounds(3);
    progress(`fairness: generating ${ROWS.toLocaleString("en")} synthetic decisions`);
    const data = syntheticRows();
    const attributes = [
      { name: "sex", values: data.sex },
      { name: "age", values: data.age },
      { name: "region", values: data.region },
    ];
    const times = {
      encode: [] as number[],
      count: [] as number[],
      cells: [] as number[],
      rows: [] as number[],
    };
    let groupCount = 0;
    let smallGroups = 0;
    let check = 0;
    for (let round = 0; round < rounds; round++) {
      progress(`fairness: round ${round + 1}/${rounds}`);
      let started = performance.now();
      const encoding = encodeGroups(attributes);
      times.encode.push(performance.now() - started);
      started = performance.now();
      countOutcomes(encoding, data.yTrue, data.yPred);
      times.count.push(performance.now() - started);
      started = performance.now();
      const audit = fairnessAudit(
        { groups: encoding, yTrue: data.yTrue, yPred: data.yPred },
        { bootstrap: { resamples: RESAMPLES, seed: round } },
      );
      times.cells.push(performance.now() - started);
      started = performance.now();
      const withScores = fairnessAudit(
        { groups: encoding, yTrue: data.yTrue, yPred: data.yPred, scores: data.scores },
        { bootstrap: { resamples: RESAMPLES, seed: round } },
      );
      times.rows.push(performance.now() - started);
      groupCount = audit.groups.length;
      smallGroups = audit.groups.filter((g) => g.flags.includes("small")).length;
      // The two schemes estimate the same figures: their point estimates must agree exactly.
      check = Math.abs(
        audit.criteria.demographicParity.difference.value -
          withScores.criteria.demographicParity.difference.value,
      );
    }
    const count = median(times.count);
    const row = (what: string, ms: number) => [
      what,
      `${(ms / 1000).toFixed(2)} s`,
      `${(ms / count).toFixed(1)} ×`,
    ];
    console.log("Warden benchmark: fairness");
    console.log(`machine: ${describeMachine()}`);
    console.log(
      `${ROWS.toLocaleString("en")} decisions, 3 sensitive attributes (${groupCount} intersectional groups, ${smallGroups} small), ${RESAMPLES} bootstrap resamples, median of ${rounds} rounds\n`,
    );
    console.log(
      formatTable(
        ["what", "time", "vs one counting pass"],
        [
          row("one counting pass over the rows (baseline)", count),
          row("encode 3 attributes (strings → group codes)", median(times.encode)),
          row(`audit, ${RESAMPLES} resamples by cell counts`, median(times.cells)),
          row(`audit with scores, ${RESAMPLES} resamples by rows`, median(times.rows)),
        ],
      ),
    );
    if (check !== 0) {
      console.log(`\nFAILED: the two audits disagree on demographic parity by ${check}`);
      return 1;
    }
    const ledger = await ledgerAuditBench();
    console.log(ledger.lines.join("\n"));
    return ledger.ok ? 0 : 1;
  },
};
