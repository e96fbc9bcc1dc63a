import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { verifyLedgerAt } from "../ledger/index.js";
import type { ReviewAlert } from "../review/index.js";
import {
  DEMO_XGB,
  demoCopy,
  holdoutInstances,
  loadManifest,
  startTestServer,
  tempDir,
  xgboostHoldoutReference,
} from "../testing/index.js";

type Server = Awaited<ReturnType<typeof startTestServer>>;
const manifest = loadManifest(DEMO_XGB);
const holdout = holdoutInstances(manifest);
const reference = xgboostHoldoutReference();
const dir = tempDir("review-routes");
const dataDir = tempDir("review-data");
/** The injected clock: tests move it, nothing sleeps. */
let clock = Date.parse("2030-01-01T00:00:00.000Z");
let breakerOpen = false;
let server: Server;
const alerts: ReviewAlert[] = [];

/** Rows of the holdout inside and outside the band [0.3, 0.7] (XGBoost's own predictions). */
const inBand = reference.flatMap((p, i) => (p >= 0.31 && p <= 0.69 ? [i] : []));
const outOfBand = reference.flatMap((p, i) => (p < 0.29 || p > 0.71 ? [i] : []));

const models = [
  DEMO_XGB,
  demoCopy(dir.path, {
    name: "credit-review",
    version: "1.0.0",
    policy: {
      review: {
        borderline: { low: 0.3, high: 0.7 },
        sla_minutes: 60,
        claim_minutes: 10,
        reason_codes: ["income_verified", "documents_missing", "policy_exception"],
      },
    },
  }),
  demoCopy(dir.path, {
    name: "credit-4eyes",
    version: "1.0.0",
    policy: { review: { all: true, four_eyes: true } },
  }),
];

async function start(): Promise<Server> {
  const s = await startTestServer({
    models,
    config: { data_dir: dataDir.path },
    review: {
      now: () => clock,
      catchUpMargin: 0,
      breakerOpen: (model) => breakerOpen && model === "credit-demo",
    },
  });
  s.app.wardenReview.events.on("alert", (alert: ReviewAlert) => alerts.push(alert));
  return s;
}

before(async () => {
  server = await start();
});
after(async () => {
  await server.stop();
  dir.remove();
  dataDir.remove();
});

const post = (url: string, payload?: unknown, actor?: string) =>
  server.app.inject({
    method: "POST",
    url,
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
    headers: {
      ...(payload === undefined ? {} : { "content-type": "application/json" }),
      ...(actor !== undefined ? { "x-warden-actor": actor } : {}),
    },
  });
const get = (url: string) => server.app.inject({ method: "GET", url });

async function decide(model: string, row: number) {
  const { features, subject } = holdout[row]!;
  const response = await post(`/v1/models/${model}/decisions`, { features, subject });
  assert.equal(response.statusCode, 200, response.body);
  return response.json();
}

/** The open review item of a decision, from the queue listing. */
async function itemOf(
  decisionId: string,
  model: string,
): Promise<Record<string, unknown> & { item_id: string; reasons: string[] }> {
  const list = await get(`/v1/review/items?model=${model}&limit=500`);
  assert.equal(list.statusCode, 200, list.body);
  const item = list.json().items.findLast((i: { decision_id: string }) => i.decision_id === decisionId);
  assert.ok(item, `decision ${decisionId} is in the queue`);
  return item;
}

describe("routing", () => {
  test("a score inside the borderline band is held; outside it the decision is final", async () => {
    assert.ok(inBand.length >= 2 && outOfBand.length >= 2);
    const held = await decide("credit-review", inBand[0]!);
    assert.equal(held.status, "pending_review");
    assert.equal(held.decision, null);
    assert.deepEqual(held.review_reasons, ["borderline"]);
    assert.ok(held.score >= 0.3 && held.score <= 0.7, String(held.score));
    assert.ok(held.probabilities.bad > 0);

    const final = await decide("credit-review", outOfBand[0]!);
    assert.equal(final.status, undefined);
    assert.ok(final.decision === "good" || final.decision === "bad");

    // The ledger keeps the model's provisional decision and why it is held, inside the hash chain.
    await server.writer.drain();
    const record = (await server.ledger.get(held.decision_id))!;
    assert.equal(record.body.decision, held.score >= 0.5 ? "bad" : "good");
    assert.deepEqual(record.body.review, { reasons: ["borderline"], status: "pending" });
    assert.equal((await server.ledger.get(final.decision_id))!.body.review, undefined);

    const shown = (await get(`/v1/decisions/${held.decision_id}`)).json();
    assert.equal(shown.status, "pending_review");
    assert.equal(shown.final_decision, null);
    assert.equal(shown.decision, record.body.decision);
    assert.equal(shown.review.status, "pending");
    assert.deepEqual(shown.review.reasons, ["borderline"]);
    // A decision never held shows no review state.
    const plain = (await get(`/v1/decisions/${final.decision_id}`)).json();
    assert.equal(plain.final_decision, undefined);
    assert.equal(plain.review, undefined);
  });

  test("an open circuit breaker (injected predicate) holds the model's decisions", async () => {
    breakerOpen = true;
    try {
      const held = await decide("credit-demo", outOfBand[1]!);
      assert.equal(held.status, "pending_review");
      assert.deepEqual(held.review_reasons, ["breaker_open"]);
      const item = await itemOf(held.decision_id, "credit-demo");
      assert.deepEqual(item.reasons, ["breaker_open"]);
    } finally {
      breakerOpen = false;
    }
    const after = await decide("credit-demo", outOfBand[1]!);
    assert.equal(after.status, undefined);
  });

  test("an appeal enters the queue; the decision stands until a reviewer resolves it", async () => {
    const decision = await decide("credit-demo", outOfBand[2]!);
    const appeal = await post(`/v1/decisions/${decision.decision_id}/appeals`, {
      reason: "my income is wrong",
    });
    assert.equal(appeal.statusCode, 202, appeal.body);
    const itemId = appeal.json().review_item_id;
    assert.match(itemId, /^[0-9a-f-]{36}$/);
    const listed = (await get("/v1/review/items?reason=appeal")).json().items;
    const item = listed.find((i: { item_id: string }) => i.item_id === itemId);
    assert.ok(item);
    assert.deepEqual(item.reasons, ["appeal"]);
    assert.equal(item.appeal_id, appeal.json().appeal_id);
    const shown = (await get(`/v1/decisions/${decision.decision_id}`)).json();
    assert.equal(shown.status, "pending_review");
    assert.equal(shown.final_decision, decision.decision);
    assert.equal(shown.review.item_id, itemId);

    // An appeal of a decision already in the queue joins its open item.
    const held = await decide("credit-review", inBand[1]!);
    const again = await post(`/v1/decisions/${held.decision_id}/appeals`, { reason: "please look" });
    const open = await itemOf(held.decision_id, "credit-review");
    assert.equal(again.json().review_item_id, open.item_id);
    assert.deepEqual(open.reasons, ["borderline", "appeal"]);
  });
});

describe("reviewing", () => {
  test("list filters by model, status and reason, oldest first, with a cursor", async () => {
    for (const row of inBand.slice(0, 3)) await decide("credit-review", row);
    const all = (await get("/v1/review/items?model=credit-review&status=pending&reason=borderline")).json();
    assert.ok(all.items.length >= 3);
    for (const item of all.items) {
      assert.equal(item.model, "credit-review");
      assert.equal(item.status, "pending");
      assert.ok(item.reasons.includes("borderline"));
    }
    const times = all.items.map((i: { created_at: string }) => i.created_at);
    assert.deepEqual(times, [...times].sort());
    const page1 = (await get("/v1/review/items?model=credit-review&limit=2")).json();
    assert.equal(page1.items.length, 2);
    assert.ok(page1.next_cursor);
    const page2 = (
      await get(`/v1/review/items?model=credit-review&limit=2&cursor=${page1.next_cursor}`)
    ).json();
    assert.ok(page2.items.length >= 1);
    const ids = new Set(page1.items.map((i: { item_id: string }) => i.item_id));
    assert.ok(page2.items.every((i: { item_id: string }) => !ids.has(i.item_id)));

    const bad = await get("/v1/review/items?status=done&limit=0&colour=red");
    assert.equal(bad.statusCode, 400);
    const fields = bad
      .json()
      .details.map((d: { field: string }) => d.field)
      .sort();
    assert.deepEqual(fields, ["colour", "limit", "status"]);
    const status = bad.json().details.find((d: { field: string }) => d.field === "status");
    assert.match(status.expected, /"pending", "claimed", "awaiting_second", "resolved"/);
    assert.equal(status.found, '"done" (string)');
  });

  test("claim, refuse another reviewer, validate and resolve; the final decision is shown and recorded", async () => {
    const held = await decide("credit-review", inBand[0]!);
    const item = await itemOf(held.decision_id, "credit-review");
    const url = `/v1/review/items/${item.item_id}`;

    const anonymous = await post(`${url}/claim`);
    assert.equal(anonymous.statusCode, 400);
    assert.equal(anonymous.json().details[0].field, "x-warden-actor");
    assert.equal(anonymous.json().details[0].found, "missing");
    assert.equal((await post(`${url}/claim`, undefined, " bad name")).statusCode, 400);

    const claimed = await post(`${url}/claim`, undefined, "alice");
    assert.equal(claimed.statusCode, 200, claimed.body);
    assert.equal(claimed.json().status, "claimed");
    assert.equal(claimed.json().claimed_by, "alice");
    assert.equal(claimed.json().claim_expires_at, new Date(clock + 10 * 60_000).toISOString());

    const taken = await post(`${url}/claim`, undefined, "bob");
    assert.equal(taken.statusCode, 409);
    assert.equal(taken.json().code, "WARDEN_ERR_REVIEW_CONFLICT");
    assert.match(taken.json().error, /claimed by alice/);
    const notYours = await post(
      `${url}/resolve`,
      { decision: "good", reason_code: "income_verified" },
      "bob",
    );
    assert.equal(notYours.statusCode, 409);

    const invalid = await post(
      `${url}/resolve`,
      { decision: "Good", reason_code: "because", extra: 1 },
      "alice",
    );
    assert.equal(invalid.statusCode, 400);
    const details = invalid.json().details as {
      field: string;
      expected: string;
      found: string;
      fix?: string;
    }[];
    const decision = details.find((d) => d.field === "decision")!;
    assert.match(decision.expected, /one of the labels of credit-review 1.0.0: "good", "bad"/);
    assert.equal(decision.found, '"Good" (string)');
    assert.match(decision.fix!, /send "good"/);
    const code = details.find((d) => d.field === "reason_code")!;
    assert.match(code.expected, /"income_verified", "documents_missing", "policy_exception"/);
    assert.ok(details.some((d) => d.field === "extra" && d.expected === "no such field"));

    const model = (await server.ledger.get(held.decision_id))!.body.decision as string;
    const overruled = model === "good" ? "bad" : "good";
    const resolved = await post(
      `${url}/resolve`,
      { decision: overruled, reason_code: "income_verified", note: "payslips checked" },
      "alice",
    );
    assert.equal(resolved.statusCode, 200, resolved.body);
    const r = resolved.json();
    assert.equal(r.status, "resolved");
    assert.equal(r.final_decision, overruled);
    assert.equal(r.override, true);
    assert.deepEqual(r.resolved_by, ["alice"]);

    const twice = await post(`${url}/claim`, undefined, "bob");
    assert.equal(twice.statusCode, 409);
    assert.match(twice.json().error, /resolved/);

    const shown = (await get(`/v1/decisions/${held.decision_id}`)).json();
    assert.equal(shown.status, "decided");
    assert.equal(shown.final_decision, overruled);
    assert.equal(shown.decision, model, "the model's own decision is never changed");
    assert.equal(shown.review.review_record_id, r.review_record_id);

    // The review record points to the decision, in the hash chain; the ledger still verifies.
    await server.writer.drain();
    const record = (await server.ledger.get(r.review_record_id))!;
    assert.equal(record.kind, "review");
    assert.equal(record.body.decision_id, held.decision_id);
    assert.equal(record.body.decision, overruled);
    assert.equal(record.body.model_decision, model);
    assert.equal(record.body.final, true);
    assert.equal(record.body.reviewer, "alice");
    assert.equal(record.body.note, "payslips checked");
    const previous = (await server.ledger.get(held.decision_id))!;
    assert.ok(record.seq > previous.seq);
    const report = await verifyLedgerAt(server.location);
    assert.equal(report.ok, true, JSON.stringify(report));
    const history = (await get(`/v1/decisions/${held.decision_id}/history`)).json();
    assert.ok(
      history.history.some((h: { kind: string; id: string }) => h.kind === "review" && h.id === record.id),
    );
  });

  test("a claim expires after policy.review.claim_minutes and another reviewer may take the item", async () => {
    const held = await decide("credit-review", inBand[1]!);
    const item = await itemOf(held.decision_id, "credit-review");
    const url = `/v1/review/items/${item.item_id}`;
    assert.equal((await post(`${url}/claim`, undefined, "carol")).statusCode, 200);
    clock += 9 * 60_000;
    assert.equal((await post(`${url}/claim`, undefined, "dave")).statusCode, 409);
    clock += 2 * 60_000;
    const listed = await itemOf(held.decision_id, "credit-review");
    assert.equal(listed.status, "pending");
    assert.equal(listed.claimed_by, null);
    const expired = await post(
      `${url}/resolve`,
      { decision: "good", reason_code: "income_verified" },
      "carol",
    );
    assert.equal(expired.statusCode, 409);
    assert.match(expired.json().details[0].found, /expired/);
    assert.equal((await post(`${url}/claim`, undefined, "dave")).json().claimed_by, "dave");
    const late = await post(`${url}/resolve`, { decision: "good", reason_code: "income_verified" }, "carol");
    assert.equal(late.statusCode, 409);
    assert.match(late.json().error, /claimed by dave/);
  });

  test("four-eyes: two distinct reviewers must agree; the same reviewer twice is refused", async () => {
    const held = await decide("credit-4eyes", outOfBand[0]!);
    assert.deepEqual(held.review_reasons, ["all"]);
    const item = await itemOf(held.decision_id, "credit-4eyes");
    assert.equal(item.four_eyes, true);
    const url = `/v1/review/items/${item.item_id}`;
    await post(`${url}/claim`, undefined, "alice");
    const first = (
      await post(`${url}/resolve`, { decision: "bad", reason_code: "documents_missing" }, "alice")
    ).json();
    assert.equal(first.stage, "first");
    assert.equal(first.status, "awaiting_second");
    assert.equal(first.first_review.reviewer, "alice");
    assert.equal((await get(`/v1/decisions/${held.decision_id}`)).json().final_decision, null);

    const same = await post(`${url}/claim`, undefined, "alice");
    assert.equal(same.statusCode, 409);
    assert.equal(same.json().code, "WARDEN_ERR_REVIEW_FOUR_EYES");
    assert.equal(same.json().details[0].field, "x-warden-actor");
    assert.match(same.json().details[0].expected, /a reviewer other than alice/);

    await post(`${url}/claim`, undefined, "bob");
    const second = (
      await post(`${url}/resolve`, { decision: "bad", reason_code: "documents_missing" }, "bob")
    ).json();
    assert.equal(second.stage, "second");
    assert.equal(second.status, "resolved");
    assert.deepEqual(second.resolved_by, ["alice", "bob"]);
    assert.equal((await get(`/v1/decisions/${held.decision_id}`)).json().final_decision, "bad");
  });

  test("four-eyes disagreement: the item goes back to the queue, both judgements recorded, an alert raised", async () => {
    const held = await decide("credit-4eyes", outOfBand[1]!);
    const item = await itemOf(held.decision_id, "credit-4eyes");
    const url = `/v1/review/items/${item.item_id}`;
    await post(`${url}/claim`, undefined, "alice");
    await post(`${url}/resolve`, { decision: "good", reason_code: "income_verified" }, "alice");
    await post(`${url}/claim`, undefined, "bob");
    const before = alerts.length;
    const disagreed = (
      await post(`${url}/resolve`, { decision: "bad", reason_code: "documents_missing" }, "bob")
    ).json();
    assert.equal(disagreed.stage, "disagreement");
    assert.equal(disagreed.status, "pending");
    assert.equal(disagreed.disagreements, 1);
    assert.equal(disagreed.first_review, null);
    assert.equal(alerts.length, before + 1);
    assert.equal(alerts.at(-1)!.name, "WardenReviewDisagreement");
    await server.writer.drain();
    const record = (await server.ledger.get(disagreed.review_record_id))!;
    assert.equal(record.body.final, false);
    assert.deepEqual(record.body.earlier, {
      decision: "good",
      reason_code: "income_verified",
      reviewer: "alice",
    });
    // Alice may now review again (the first judgement was cleared).
    assert.equal((await post(`${url}/claim`, undefined, "alice")).statusCode, 200);
  });

  test("an overdue item is escalated once, as an alert-shaped event", async () => {
    const held = await decide("credit-review", inBand[2]!);
    const item = await itemOf(held.decision_id, "credit-review");
    const mine = (list: ReviewAlert[]) => list.filter((a) => a.labels.item_id === item.item_id);
    assert.deepEqual(mine(server.app.wardenReview.tick()), []);
    clock += 59 * 60_000;
    assert.deepEqual(mine(server.app.wardenReview.tick()), []);
    clock += 2 * 60_000;
    const fired = mine(server.app.wardenReview.tick());
    assert.equal(fired.length, 1);
    const alert = fired[0]!;
    assert.equal(alert.name, "WardenReviewOverdue");
    assert.equal(alert.severity, "warning");
    assert.deepEqual(alert.labels, {
      model: "credit-review",
      version: "1.0.0",
      reason: "borderline",
      item_id: item.item_id,
    });
    assert.equal(alert.startsAt, item.due_at);
    assert.equal(alert.annotations.decision_id, held.decision_id);
    assert.equal(mine(alerts).length, 1, "emitted to listeners once");
    clock += 60 * 60_000;
    assert.deepEqual(mine(server.app.wardenReview.tick()), [], "never twice");
    const shown = await itemOf(held.decision_id, "credit-review");
    assert.equal(shown.overdue, true);
    assert.equal(shown.escalated_at, new Date(clock - 60 * 60_000).toISOString());
    // The server's alert sink holds it as firing until a reviewer resolves the item; then it resolves.
    const firing = () => server.app.wardenAlerts.firing().filter((a) => a.labels.item_id === item.item_id);
    assert.equal(firing().length, 1);
    const url = `/v1/review/items/${item.item_id}`;
    assert.equal((await post(`${url}/claim`, undefined, "alice")).statusCode, 200);
    const resolved = await post(
      `${url}/resolve`,
      { decision: "good", reason_code: "income_verified" },
      "alice",
    );
    assert.equal(resolved.statusCode, 200, resolved.body);
    const ended = mine(alerts).findLast((a) => a.name === "WardenReviewOverdue")!;
    assert.equal(ended.status, "resolved");
    assert.deepEqual(ended.labels, alert.labels);
    assert.deepEqual(firing(), []);
  });

  test("reviewers see the score, the recorded reasons and the nearest past cases", async () => {
    const row = inBand[0]!;
    const first = await decide("credit-review", row);
    const twin = await decide("credit-review", row);
    for (const r of outOfBand.slice(0, 4)) await decide("credit-review", r);
    const item = await itemOf(twin.decision_id, "credit-review");
    const detail = await get(`/v1/review/items/${item.item_id}?k=3`);
    assert.equal(detail.statusCode, 200, detail.body);
    const d = detail.json();
    assert.equal(d.score, twin.score);
    assert.ok(d.explanation, "the demo is high-risk: every decision is explained");
    assert.ok(Array.isArray(d.explanation.reasons) && d.explanation.reasons.length > 0);
    assert.equal(d.similar_cases.length, 3);
    const distances = d.similar_cases.map((c: { distance: number }) => c.distance);
    assert.deepEqual(
      distances,
      [...distances].sort((a, b) => a - b),
    );
    // Cases still waiting for review are left out; resolved ones carry the reviewer's decision.
    assert.ok(d.similar_cases.every((c: { decision_id: string }) => c.decision_id !== first.decision_id));
    const reviewedTwin = d.similar_cases.find((c: { reviewed: boolean }) => c.reviewed);
    assert.ok(reviewedTwin, "the resolved copy of the same row is among the nearest");
    assert.equal(reviewedTwin.distance, 0);
    const bad = await get(`/v1/review/items/${item.item_id}?k=0`);
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().details[0].field, "k");
    assert.equal((await get("/v1/review/items/nope")).json().code, "WARDEN_ERR_REVIEW_NOT_FOUND");
  });

  test("overrides are counted per reviewer and per model, on /metrics and in the summary", async () => {
    const summary = (await get("/v1/review/summary?model=credit-review")).json();
    const model = summary.models.find((m: { model: string }) => m.model === "credit-review");
    assert.ok(model.resolved >= 1);
    assert.ok(model.overrides >= 1);
    const alice = summary.reviewers.find((r: { reviewer: string }) => r.reviewer === "alice");
    assert.equal(alice.model, "credit-review");
    assert.ok(alice.overrides >= 1);
    assert.ok(summary.queue.pending >= 1);
    const text = (await get("/metrics")).body;
    assert.match(
      text,
      /warden_review_overrides_total\{model="credit-review",version="1.0.0",reviewer="alice"\} [1-9]/,
    );
    assert.match(
      text,
      /warden_review_resolved_total\{model="credit-4eyes",version="1.0.0",reviewer="bob"\} 1/,
    );
    // Four-eyes: both reviewers stand behind the final decision (the model said good for this row, they bad).
    assert.match(
      text,
      /warden_review_overrides_total\{model="credit-4eyes",version="1.0.0",reviewer="alice"\} 1/,
    );
    assert.match(text, /warden_review_queue_items\{status="resolved"\} [1-9]/);
  });
});

describe("persistence", () => {
  test("a held decision whose queue item was lost (as in a power cut) is taken back in from the ledger at the next start", async () => {
    const held = await decide("credit-review", inBand[0]!);
    const item = await itemOf(held.decision_id, "credit-review");
    await server.stop();
    const db = new Database(join(dataDir.path, "review.sqlite"));
    db.prepare("DELETE FROM items WHERE id = ?").run(item.item_id);
    db.prepare("DELETE FROM sources WHERE source_id = ?").run(held.decision_id);
    db.close();
    server = await start();
    // The catch-up runs in the background at start.
    let back: { decision_id: string; reasons: string[] } | undefined;
    for (let i = 0; i < 100 && back === undefined; i++) {
      back = (await get("/v1/review/items?limit=500"))
        .json()
        .items.find((i: { decision_id: string }) => i.decision_id === held.decision_id);
      if (back === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(back, "the held decision is in the queue again");
    assert.deepEqual(back.reasons, ["borderline"]);
  });

  test("a tick moves the review watermark to the ledger's end (read from the ledger thread's commits)", async () => {
    const held = await decide("credit-review", inBand[2]!);
    await itemOf(held.decision_id, "credit-review");
    await server.writer.drain();
    const watermark = () => {
      const db = new Database(join(dataDir.path, "review.sqlite"), { readonly: true });
      try {
        return Number(
          (db.prepare("SELECT value FROM meta WHERE key = 'ledger_seq'").get() as { value: string }).value,
        );
      } finally {
        db.close();
      }
    };
    const decision = (await get(`/v1/decisions/${held.decision_id}`)).json();
    assert.ok(watermark() < decision.ledger.seq, "the start's catch-up was before this decision");
    await server.app.wardenReview.advance();
    assert.ok(
      watermark() >= decision.ledger.seq,
      `the watermark ${watermark()} passed ${decision.ledger.seq}`,
    );
  });

  test("the queue, claims and resolutions survive a restart", async () => {
    const held = await decide("credit-review", inBand[1]!);
    const item = await itemOf(held.decision_id, "credit-review");
    await post(`/v1/review/items/${item.item_id}/claim`, undefined, "erin");
    const before = (await get("/v1/review/items?limit=500")).json().items.length;
    await server.stop();
    server = await start();
    const after = (await get("/v1/review/items?limit=500")).json().items;
    assert.equal(after.length, before, "nothing lost, nothing taken in twice");
    const again = after.find((i: { item_id: string }) => i.item_id === item.item_id);
    assert.equal(again.status, "claimed");
    assert.equal(again.claimed_by, "erin");
    const resolved = await post(
      `/v1/review/items/${item.item_id}/resolve`,
      { decision: "good", reason_code: "policy_exception" },
      "erin",
    );
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.equal((await get(`/v1/decisions/${held.decision_id}`)).json().final_decision, "good");
    await server.writer.drain();
    assert.equal((await verifyLedgerAt(server.location)).ok, true);
  });
});
