import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { reviewPolicyOf } from "../config/index.js";
import { seededRandom } from "../explain/random.js";
import { labelFromReview, preferLabel } from "../feedback/index.js";
import type { LedgerRecord } from "../ledger/index.js";
import { createLiveMonitor } from "../monitor/index.js";
import type { LoadedModel } from "../registry/index.js";
import { DEMO_XGB, loadManifest, tempDir } from "../testing/index.js";
import {
  createReviewService,
  nearestCases,
  openReviewStore,
  REVIEW_STATUSES,
  reviewReasons,
} from "./index.js";

/** A ledger record as a review test's ledger double hands it out (chain fields made up: not checked here). */
function ledgerRecord(
  id: string,
  seq: number,
  kind: "decision" | "appeal",
  body: Record<string, unknown>,
  model: string,
): LedgerRecord {
  return {
    id,
    kind,
    time: new Date(1000 + seq).toISOString(),
    model,
    version: "1",
    artifact_sha256: "0".repeat(64),
    body,
    seq,
    prev_hash: "",
    hash: `hash-of-${id}`,
  } as LedgerRecord;
}

const manifest = loadManifest(DEMO_XGB);
const model = { manifest } as unknown as LoadedModel;
const row = new Float32Array(manifest.modelFeatures.length);

test("routing rules: all, the borderline band (inclusive), anomalies and open breakers, in that order", () => {
  const policy = reviewPolicyOf({
    review: { all: true, borderline: { low: 0.4, high: 0.6 }, anomalies: true },
  });
  const context = { anomalous: () => true, breakerOpen: (m: string) => m === "credit-demo" };
  assert.deepEqual(reviewReasons(policy, model, row, 0.5, context), [
    "all",
    "borderline",
    "anomaly",
    "breaker_open",
  ]);
  assert.deepEqual(reviewReasons(policy, model, row, 0.6, {}), ["all", "borderline"]);
  const band = reviewPolicyOf({ review: { borderline: { low: 0.4, high: 0.6 } } });
  assert.deepEqual(reviewReasons(band, model, row, 0.61, context), ["breaker_open"]);
  assert.deepEqual(reviewReasons(band, model, row, 0.4, {}), ["borderline"]);
  assert.deepEqual(reviewReasons(band, model, row, 0.39, {}), []);
  // Anomalies only where the policy asks; open breakers unless it says breaker_open: false.
  assert.deepEqual(reviewReasons(band, model, row, 0.1, { anomalous: () => true }), []);
  const quiet = reviewPolicyOf({ review: { breaker_open: false } });
  assert.deepEqual(reviewReasons(quiet, model, row, 0.5, context), []);
});

test("the live monitor has no anomaly flag without a reference profile", () => {
  const monitor = createLiveMonitor(manifest.modelFeatures);
  assert.equal(monitor.isAnomalous(row), undefined);
});

const decision = (seq: number, inputs: Record<string, unknown>, decided = "good"): LedgerRecord => ({
  id: `d${seq}`,
  seq,
  kind: "decision",
  time: new Date(Date.UTC(2030, 0, 1, 0, seq)).toISOString(),
  model: "m",
  version: "1",
  artifact_sha256: "0".repeat(64),
  body: { inputs, decision: decided, outputs: { score: seq / 10 } },
  prev_hash: "",
  hash: "",
});

test("nearest cases: standardised numeric distance, category mismatch and missing values count 1", () => {
  const features = [
    { name: "income", type: "number" as const },
    { name: "job", type: "category" as const },
  ];
  const query = decision(1, { income: 100, job: "fixed" });
  const cases = [
    decision(2, { income: 100, job: "fixed" }, "bad"),
    decision(3, { income: 300, job: "fixed" }),
    decision(4, { income: 100, job: "freelance" }),
    decision(5, { income: null, job: "fixed" }),
  ];
  const near = nearestCases(query, cases, features, new Map([["d2", "good"]]), 3);
  assert.deepEqual(
    near.map((c) => c.decision_id),
    ["d2", "d5", "d4"],
  );
  assert.equal(near[0]!.distance, 0);
  assert.equal(near[0]!.reviewed, true);
  assert.equal(near[0]!.model_decision, "bad");
  assert.equal(near[0]!.final_decision, "good");
  // sd of income over {100, 100, 300, 100} (missing left out) = 100; d3 is 2 sd away, beyond the mismatches at 1.
  const all = nearestCases(query, cases, features, new Map(), 10);
  assert.equal(all.find((c) => c.decision_id === "d3")!.distance, 2);
  assert.equal(all.find((c) => c.decision_id === "d4")!.distance, 1);
  assert.equal(all.length, 4);
});

const review = (seq: number, extra: Record<string, unknown>): LedgerRecord => ({
  ...decision(seq, {}),
  id: `r${seq}`,
  kind: "review",
  body: {
    decision: "bad",
    decision_id: "d1",
    final: true,
    reviewer: "alice",
    reviewers: ["alice"],
    ...extra,
  },
});

test("training labels: a final review labels the decision until a later outcome corrects it", () => {
  assert.equal(
    labelFromReview(review(5, { final: false })),
    undefined,
    "a first of two judgements is no label",
  );
  const label = labelFromReview(review(5, { reviewers: ["alice", "bob"] }))!;
  assert.equal(label.value, "bad");
  assert.equal(label.kind, "review");
  assert.equal(label.source, "human_review:alice+bob");
  const earlier = {
    value: "good",
    kind: "outcome" as const,
    source: "s",
    record_id: "o",
    observed_at: "",
    seq: 3,
  };
  const later = { ...earlier, seq: 9 };
  assert.equal(preferLabel(earlier, label), label);
  assert.equal(preferLabel(label, later), later);
  assert.equal(preferLabel(label, earlier), label);
});

test("the store: one open item per decision, sources taken in once, survives reopening", () => {
  const dir = tempDir("review-store");
  try {
    const store = openReviewStore(dir.path);
    const item = {
      id: "i1",
      decision_id: "d1",
      model: "m",
      version: "1",
      reasons: ["borderline"],
      created_at: 1000,
      due_at: 2000,
      four_eyes: false,
      model_decision: "good",
      score: 0.5,
      appeal_id: null,
    };
    assert.equal(store.enqueue(item, "d1").created, true);
    assert.equal(store.enqueue(item, "d1").created, false);
    const joined = store.enqueue({ ...item, id: "i2", reasons: ["appeal"], appeal_id: "a1" }, "a1");
    assert.equal(joined.item.id, "i1");
    assert.deepEqual(joined.item.reasons, ["borderline", "appeal"]);
    assert.deepEqual(
      store.overdue(2000).map((i) => i.id),
      ["i1"],
    );
    assert.equal(store.markEscalated("i1", 2000), true);
    assert.equal(store.markEscalated("i1", 2001), false);
    store.close();
    const reopened = openReviewStore(dir.path);
    assert.equal(reopened.get("i1")!.escalated_at, 2000);
    assert.equal(reopened.hasSource("a1"), true);
    assert.deepEqual(reopened.overdue(5000), []);
    reopened.close();
  } finally {
    dir.remove();
  }
});

test("the store's status counts and lists by status agree with every item's status, through random changes and a reopening", () => {
  const dir = tempDir("review-counts");
  try {
    let store = openReviewStore(dir.path);
    const rng = seededRandom(12345);
    const random = () => rng.next();
    const models = ["a", "b", "c"];
    const now = 50_000;
    let decisions = 0;
    /** Every item (of a model), read decision by decision, in queue order. */
    const all = (model?: string) => {
      const items = [];
      for (let d = 1; d <= decisions; d++) {
        for (const item of store.ofDecision(`d${d}`))
          if (model === undefined || item.model === model) items.push(item);
      }
      return items.sort((x, y) => x.seq - y.seq);
    };
    const shown = (item: { status: string; claimed_by: string | null; claim_expires_at: number | null }) =>
      item.status === "resolved"
        ? "resolved"
        : item.claimed_by !== null && (item.claim_expires_at ?? 0) > now
          ? "claimed"
          : item.status;
    /** Every item's status as the API shows it, read item by item (the reference). */
    const reference = (model?: string) => {
      const counts: Record<string, number> = { pending: 0, claimed: 0, awaiting_second: 0, resolved: 0 };
      const ids: Record<string, number[]> = { pending: [], claimed: [], awaiting_second: [], resolved: [] };
      for (let d = 1; d <= decisions; d++) {
        for (const item of store.ofDecision(`d${d}`)) {
          if (model !== undefined && item.model !== model) continue;
          const status =
            item.status === "resolved"
              ? "resolved"
              : item.claimed_by !== null && (item.claim_expires_at ?? 0) > now
                ? "claimed"
                : item.status;
          counts[status]! += 1;
          ids[status]!.push(item.seq);
        }
      }
      for (const list of Object.values(ids)) list.sort((x, y) => x - y);
      return { counts, ids };
    };
    const check = (step: string) => {
      for (const model of [undefined, ...models]) {
        const want = reference(model);
        assert.deepEqual(store.statusCounts(now, model), want.counts, `${step}: counts of ${model ?? "all"}`);
        for (const status of REVIEW_STATUSES) {
          const listed = store.list({ status, limit: 100_000, now, ...(model ? { model } : {}) });
          assert.deepEqual(
            listed.map((i) => i.seq),
            want.ids[status],
            `${step}: list of ${model ?? "all"} ${status}`,
          );
        }
        // By reason, alone and with each status, in pages of 7 (the cursor as the API passes it).
        for (const reason of ["borderline", "appeal", "anomaly"]) {
          for (const status of [undefined, ...REVIEW_STATUSES]) {
            const want = [...all(model)]
              .filter((i) => i.reasons.includes(reason) && (status === undefined || shown(i) === status))
              .map((i) => i.seq);
            const got: number[] = [];
            for (let after = 0; ; ) {
              const page = store.list({
                limit: 7,
                now,
                reason,
                afterSeq: after,
                ...(status ? { status } : {}),
                ...(model ? { model } : {}),
              });
              got.push(...page.map((i) => i.seq));
              if (page.length < 7) break;
              after = page.at(-1)!.seq;
            }
            assert.deepEqual(
              got,
              want,
              `${step}: list of ${model ?? "all"} by ${reason}, ${status ?? "any status"}`,
            );
          }
        }
      }
    };
    for (let step = 0; step < 400; step++) {
      const open = () => {
        const d = 1 + Math.floor(random() * decisions);
        return store.openOf(`d${d}`);
      };
      const r = random();
      if (r < 0.4 || decisions === 0) {
        decisions += 1;
        const model = models[Math.floor(random() * models.length)]!;
        store.enqueue(
          {
            id: `i${decisions}`,
            decision_id: `d${decisions}`,
            model,
            version: "1",
            reasons: ["borderline"],
            created_at: step,
            due_at: step + 100,
            four_eyes: random() < 0.5,
            model_decision: "good",
            score: 0.5,
            appeal_id: null,
          },
          `d${decisions}`,
        );
      } else if (r < 0.6) {
        const item = open();
        // A claim that is live, or one that has expired.
        if (item)
          store.update(item.id, {
            claimed_by: "alice",
            claim_expires_at: random() < 0.7 ? now + 1 : now - 1,
          });
      } else if (r < 0.7) {
        const item = open();
        if (item) store.update(item.id, { status: "awaiting_second" });
      } else if (r < 0.95) {
        const item = open();
        if (item) store.update(item.id, { status: "resolved", final_decision: "bad", claimed_by: null });
      } else {
        // An appeal re-opens a resolved decision (a new item of the same decision), or joins its open item
        // (the item's reasons grow).
        const d = 1 + Math.floor(random() * decisions);
        const last = store.ofDecision(`d${d}`).at(-1)!;
        store.enqueue(
          {
            id: `i${d}-appeal-${step}`,
            decision_id: `d${d}`,
            model: last.model,
            version: "1",
            reasons: ["appeal"],
            created_at: step,
            due_at: step + 100,
            four_eyes: false,
            model_decision: "good",
            score: 0.5,
            appeal_id: `a${step}`,
          },
          `a${step}`,
        );
      }
      if (step % 50 === 49) check(`step ${step}`);
    }
    assert.ok(
      reference().counts.resolved! > 50 && reference().counts.pending! > 5,
      "the run reached every status",
    );
    store.close();
    store = openReviewStore(dir.path);
    check("reopened");
    // A store made before the counts were kept: they are filled from the items when it is next opened.
    store.close();
    const db = new Database(join(dir.path, "review.sqlite"));
    db.exec(
      `DROP TRIGGER resolved_count_insert; DROP TRIGGER resolved_count_delete; DROP TRIGGER resolved_count_update;
       DROP TABLE resolved_counts;
       DROP TRIGGER open_count_insert; DROP TRIGGER open_count_delete; DROP TRIGGER open_count_update;
       DROP TABLE open_counts`,
    );
    db.close();
    store = openReviewStore(dir.path);
    check("counts rebuilt");
    store.close();
    // Reasons kept in an earlier form (no model column, and stale): rebuilt from the items when next opened.
    const old = new Database(join(dir.path, "review.sqlite"));
    old.exec(`
      DROP TRIGGER item_reasons_insert; DROP TRIGGER item_reasons_update; DROP TRIGGER item_reasons_delete;
      DROP TABLE item_reasons;
      CREATE TABLE item_reasons (reason TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (reason, seq)) WITHOUT ROWID;
      INSERT INTO item_reasons VALUES ('anomaly', 1);
    `);
    old.close();
    store = openReviewStore(dir.path);
    check("reasons rebuilt");
    store.close();
  } finally {
    dir.remove();
  }
});

test("the review watermark: read at start from where it stood, moved to the ledger's end at each tick while every offer succeeded, and a failed offer retried by reading", async () => {
  const dir = tempDir("review-watermark");
  const records: LedgerRecord[] = [];
  let ids = 0;
  const append = (kind: "decision" | "appeal", body: Record<string, unknown>, model = "m"): LedgerRecord => {
    const record = ledgerRecord(`r${++ids}`, records.length + 1, kind, body, model);
    records.push(record);
    return record;
  };
  const held = (model = "m") =>
    append("decision", { decision: "good", review: { reasons: ["borderline"], status: "pending" } }, model);
  /** Records the catch-up was handed (what it parsed), by sequence number. */
  let read: number[] = [];
  const ledger = {
    write: async () => undefined,
    get: async (id: string) => records.find((r) => r.id === id),
    async *scan() {},
    committed: async () => undefined,
    async reviewSources(afterSeq: number, limit: number) {
      const end = records.length;
      const through = Math.max(afterSeq, Math.min(afterSeq + limit, end));
      const picked = records
        .slice(afterSeq, through)
        .filter((r) => r.kind === "appeal" || r.body.review !== undefined);
      read.push(...picked.map((r) => r.seq));
      return { records: picked, through, end, throughHash: records[through - 1]?.hash };
    },
  };
  /** The service; offering a decision of model `broken` to the queue fails (its policy cannot be read). */
  const open = (broken?: string, catchUpMargin = 0) =>
    createReviewService({
      dataDir: dir.path,
      ledger,
      manifestOf: (model: string) => {
        if (model === broken) throw new Error("no policy");
        return undefined;
      },
      now: () => 5000,
      catchUpMargin,
    });
  try {
    held();
    for (let i = 0; i < 6000; i++) append("decision", { decision: "bad" });
    held();
    let service = open("broken");
    const problems: unknown[] = [];
    service.events.on("problem", (e: unknown) => problems.push(e));
    // The start's catch-up reads the whole ledger (two stretches) and takes in both.
    assert.equal(await service.catchUp(), 2);
    assert.deepEqual(read, [1, 6002]);
    // During the run: decisions held and offered as the pipeline does. A tick moves the watermark to the
    // ledger's end without reading.
    const routing = service.routing();
    read = [];
    routing.held([{ entry: held(), reasons: ["borderline"] }]);
    for (let i = 0; i < 100; i++) append("decision", { decision: "good" });
    await service.advance();
    assert.deepEqual(read, []);
    // An offer fails: the next tick reads from the watermark and tries it again (failing again here).
    routing.held([{ entry: held("broken"), reasons: ["borderline"] }]);
    assert.equal(problems.length, 1);
    held(); // journaled, and the process stops before it is offered
    await assert.rejects(service.advance(), /no policy/);
    assert.deepEqual(read, [6104, 6105]);
    assert.equal(service.queueCounts().pending, 3);
    await service.close();
    // Restarted, the policy readable again: read from the watermark, which the failure held back.
    service = open();
    read = [];
    assert.equal(await service.catchUp(), 2);
    assert.deepEqual(read, [6104, 6105]);
    assert.equal(service.queueCounts().pending, 5);
    // The ledger lost its tail in a power cut (the watermark, 6105, had been written after it): a decision
    // held since is offered as usual, and the watermark goes back to the ledger's end.
    records.splice(6102);
    const again = service.routing();
    again.held([{ entry: held(), reasons: ["borderline"] }]);
    read = [];
    assert.equal(await service.catchUp(), 0);
    assert.deepEqual(read, [], "from the ledger's end: the decision offered since is not read again");
    held(); // 6104, never offered
    assert.equal(await service.catchUp(), 1);
    assert.deepEqual(read, [6104]);
    assert.equal(service.queueCounts().pending, 7);
    await service.close();
    // With a margin, a tick leaves the last records for the next start to read again.
    service = open(undefined, 50);
    assert.equal(await service.catchUp(), 0);
    for (let i = 0; i < 200; i++) append("decision", { decision: "good" });
    held();
    await service.advance();
    await service.close();
    service = open(undefined, 50);
    read = [];
    assert.equal(await service.catchUp(), 1);
    assert.deepEqual(read, [records.length]);
    await service.close();
    // A power cut lost the tail, and the ledger grew past the watermark again before the next start: the record
    // at the watermark is another one (its hash says so), so the whole ledger is read, once.
    const watermark = records.length;
    records.splice(watermark - 300);
    for (let i = 0; i < 200; i++) append("decision", { decision: "good" });
    held(); // never offered
    for (let i = 0; i < 200; i++) append("decision", { decision: "good" });
    service = open(undefined, 50);
    const renumbered: Error[] = [];
    service.events.on("problem", (e: Error) => renumbered.push(e));
    read = [];
    assert.equal(await service.catchUp(), 1);
    assert.match(renumbered[0]?.message ?? "", /is not the one the review queue last read up to/);
    assert.equal(read[0], 1, "read from the start");
    read = [];
    assert.equal(await service.catchUp(), 0);
    assert.deepEqual(read, [], "once");
    await service.close();
  } finally {
    dir.remove();
  }
});

test("the review watermark: a failed offer whose record is not yet committed is still retried, and a failed start's catch-up is retried by the next tick", async () => {
  const dir = tempDir("review-retry");
  const records: LedgerRecord[] = [];
  /** Journaled, not yet committed: the ledger shows them once committed() is awaited. */
  const pending: LedgerRecord[] = [];
  let ids = 0;
  const held = (model: string): LedgerRecord => {
    // Its place in the ledger is given when it is committed.
    const body = { decision: "good", review: { reasons: ["borderline"], status: "pending" } };
    const record = ledgerRecord(`h${++ids}`, 0, "decision", body, model);
    pending.push(record);
    return record;
  };
  const commit = () => {
    for (const r of pending.splice(0)) records.push({ ...r, seq: records.length + 1 });
  };
  let failReads = 0;
  const ledger = {
    write: async () => undefined,
    get: async (id: string) => records.find((r) => r.id === id),
    async *scan() {},
    committed: async () => commit(),
    async reviewSources(afterSeq: number, limit: number) {
      if (failReads > 0) {
        failReads--;
        throw new Error("ledger unavailable");
      }
      const end = records.length;
      const through = Math.max(afterSeq, Math.min(afterSeq + limit, end));
      const picked = records.slice(afterSeq, through).filter((r) => r.body.review !== undefined);
      return { records: picked, through, end, throughHash: records[through - 1]?.hash };
    },
  };
  let broken: string | undefined;
  const service = createReviewService({
    dataDir: dir.path,
    ledger,
    manifestOf: (model: string) => {
      if (model === broken) throw new Error("no policy");
      return undefined;
    },
    now: () => 5000,
    catchUpMargin: 0,
  });
  service.events.on("problem", () => {});
  try {
    // The start's catch-up fails: the next tick catches up instead of moving the watermark.
    held("m");
    failReads = 1;
    await assert.rejects(service.catchUp(), /ledger unavailable/);
    await service.advance();
    assert.equal(service.queueCounts().pending, 1);
    // An offer fails while its record is journaled and not yet committed; the tick's catch-up waits for the
    // commit, reads it, tries again (failing again), and keeps the flag for the tick after.
    broken = "x";
    const routing = service.routing();
    routing.held([{ entry: held("x"), reasons: ["borderline"] }]);
    await assert.rejects(service.advance(), /no policy/);
    commit();
    for (let i = 0; i < 3; i++) routing.held([{ entry: held("m"), reasons: ["borderline"] }]);
    commit();
    broken = undefined;
    await service.advance();
    assert.equal(service.queueCounts().pending, 5, "the failed one taken in at last");
  } finally {
    await service.close();
    dir.remove();
  }
});

test("the override counts kept as judgements come in agree with grouping every judgement, through random judgements and a rebuild", () => {
  const dir = tempDir("review-overrides");
  try {
    let store = openReviewStore(dir.path);
    const rng = seededRandom(777);
    const random = () => rng.next();
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    /** What the summary reported before the counts were kept: every judgement grouped. */
    const reference = (model?: string) => {
      const db = new Database(join(dir.path, "review.sqlite"), { readonly: true });
      try {
        const filter = model === undefined ? "" : "WHERE model = @model";
        return {
          models: db
            .prepare(
              `SELECT model, COUNT(*) AS resolved, SUM(override) AS overrides FROM
                 (SELECT item_id, model, MAX(override) AS override FROM judgements ${filter} GROUP BY item_id, model)
               GROUP BY model ORDER BY model`,
            )
            .all({ model }),
          reviewers: db
            .prepare(
              `SELECT reviewer, model, COUNT(*) AS resolved, SUM(override) AS overrides FROM judgements ${filter}
               GROUP BY reviewer, model ORDER BY reviewer, model`,
            )
            .all({ model }),
        };
      } finally {
        db.close();
      }
    };
    const check = (step: string) => {
      for (const model of [undefined, "a", "b", "c"]) {
        assert.deepEqual(store.overrideCounts(model), reference(model), `${step}: ${model ?? "all"}`);
      }
    };
    for (let step = 0; step < 300; step++) {
      // One resolution: one or two reviewers (four-eyes) of one item; an item may be judged again (re-opened).
      const item = `i${Math.floor(random() * 120)}`;
      const model = pick(["a", "b", "c"]);
      const override = random() < 0.3;
      const reviewers = random() < 0.4 ? ["ann", "bob"] : [pick(["ann", "bob", "cy"])];
      store.addJudgements(
        reviewers.map((reviewer) => ({
          item_id: item,
          reviewer,
          model,
          version: "1",
          decision: override ? "bad" : "good",
          override,
          time: step,
        })),
      );
      if (step % 60 === 59) check(`step ${step}`);
    }
    store.close();
    const db = new Database(join(dir.path, "review.sqlite"));
    db.exec(
      "DROP TRIGGER override_counts; DROP TABLE override_counts_model; DROP TABLE override_counts_reviewer; DROP TABLE judgement_items",
    );
    db.close();
    store = openReviewStore(dir.path);
    check("rebuilt");
    store.close();
  } finally {
    dir.remove();
  }
});
