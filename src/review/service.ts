import { EventEmitter } from "node:events";
import { v7 as uuidv7 } from "uuid";
import { type Manifest, type ReviewPolicy, reviewPolicyOf } from "../config/index.js";
import type { LedgerSink, ReviewRouting } from "../decision/index.js";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";
import type { LedgerEntry, LedgerRecord, ReviewSources } from "../ledger/index.js";
import { createReviewRouting, type ReviewRoutingContext } from "./router.js";
import { nearestCases, type SimilarCase } from "./similar.js";
import {
  effectiveStatus,
  type ListFilter,
  type NewItem,
  type OverrideCounts,
  openReviewStore,
  type ReviewItem,
  type ReviewStatus,
  type ReviewStore,
  type Verdict,
} from "./store.js";

/** The ledger as the review queue uses it. */
export interface ReviewLedger extends LedgerSink {
  get(id: string): Promise<LedgerRecord | undefined>;
  scan(options?: { afterSeq?: number; limit?: number }): AsyncIterable<LedgerRecord>;
  /** Resolves once every entry written so far is committed. */
  committed(): Promise<void>;
  /** What may have put a decision in the queue, a stretch at a time (LedgerBackend.reviewSources). */
  reviewSources(afterSeq: number, limit: number): Promise<ReviewSources>;
}

/**
 * An escalation, as an alert: a plain object an alert sink (a webhook) can forward as it is, in the shape
 * Alertmanager takes (`labels`, `annotations`, `startsAt`).
 */
export interface ReviewAlert {
  /** `WardenReviewOverdue` (an item passed its SLA) or `WardenReviewDisagreement` (four-eyes reviewers differ). */
  readonly name: string;
  readonly severity: "warning" | "critical";
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** ISO-8601 UTC. */
  readonly startsAt: string;
  /** `resolved` (with `endsAt`) when the item is resolved; absent: firing. */
  readonly status?: "resolved";
  readonly endsAt?: string;
}

/** A reviewer's part in a final decision, as the metrics count it. */
export interface ReviewJudged {
  readonly model: string;
  readonly version: string;
  readonly reviewer: string;
  readonly override: boolean;
}

/** What a reviewer sends to resolve an item. */
export interface Resolution {
  readonly decision?: unknown;
  readonly reason_code?: unknown;
  readonly note?: unknown;
}

/** Defaults of the queue's reading options. */
export const REVIEW_LIST_DEFAULT = 50;
export const REVIEW_LIST_MAX = 500;
export const SIMILAR_DEFAULT = 5;
export const SIMILAR_MAX = 50;
/** Ledger records read on each side of a decision for similar cases, by default. */
export const SIMILAR_WINDOW = 2000;
const NOTE_MAX = 1000;
const REASON_CODE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface ReviewServiceOptions {
  readonly dataDir: string;
  readonly ledger: ReviewLedger;
  /** The manifest of a loaded model version (its review policy and labels), or undefined. */
  readonly manifestOf: (model: string, version: string) => Manifest | undefined;
  /** The clock (milliseconds since the epoch); tests inject one. */
  readonly now?: () => number;
  readonly similarWindow?: number;
  /**
   * Records a tick leaves the watermark behind the ledger's end (default {@link CATCH_UP_MARGIN}), so that the
   * next start reads them again: a cheap guard for any record committed but not yet offered when the tick
   * looked (see `advance`).
   */
  readonly catchUpMargin?: number;
}

/** The human review queue: routing, claims, resolutions, escalations and what reviewers see. */
export interface ReviewService {
  /**
   * `alert` (a {@link ReviewAlert}), `judged` (a {@link ReviewJudged} per reviewer of a final decision) and
   * `problem` (an Error the queue could not act on: logged by the server).
   */
  readonly events: EventEmitter;
  /** The pipeline's hook: held decisions enter the queue. */
  routing(context?: ReviewRoutingContext): ReviewRouting;
  /** An appeal enters the queue (joining the decision's open item, if it has one). */
  enqueueAppeal(decision: LedgerRecord, appealId: string): Record<string, unknown>;
  /**
   * Take in held decisions and appeals the ledger has and the queue lacks (after a crash, or an offer that
   * failed), reading the ledger from the watermark; returns how many. Run at start.
   */
  catchUp(): Promise<number>;
  /**
   * Move the watermark near the ledger's end when a catch-up has finished and no offer to the queue has failed
   * since (nothing to read); otherwise catch up. Run at every SLA tick.
   */
  advance(): Promise<void>;
  list(filter: Omit<ListFilter, "now">): { items: Record<string, unknown>[]; next_cursor: string | null };
  /** One item with the decision's score, recorded explanation and the `k` most similar past cases. */
  detail(id: string, k?: number): Promise<Record<string, unknown>>;
  claim(id: string, reviewer: string): Record<string, unknown>;
  resolve(id: string, reviewer: string, resolution: unknown): Promise<Record<string, unknown>>;
  /** Escalate items past their SLA (each once); returns the alerts emitted. */
  tick(): ReviewAlert[];
  summary(model?: string): { queue: Record<ReviewStatus, number> } & OverrideCounts;
  /** Items by status only (the queue gauge, read at every scrape). */
  queueCounts(model?: string): Record<ReviewStatus, number>;
  /** The review state of a decision for `GET /v1/decisions/{id}`, or undefined when it was never reviewed. */
  decisionView(record: LedgerRecord): Record<string, unknown> | undefined;
  /** Check SLAs, and catch up with the ledger, every `intervalMs` (an unreferenced timer). */
  start(intervalMs: number): void;
  /** Stop the timer, wait for a catch-up under way, close the store. */
  close(): Promise<void>;
}

/** Ledger records per stretch of the catch-up (each stretch one query picking the review sources among them). */
const CATCH_UP_STRETCH = 5000;
/** Records a tick leaves the watermark behind the ledger's end, by default (four requests of 1,000 instances). */
export const CATCH_UP_MARGIN = 4096;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function notFound(id: string): WardenError {
  const shown = JSON.stringify(id.slice(0, 80));
  return new WardenError("WARDEN_ERR_REVIEW_NOT_FOUND", `no review item with id ${shown}`, {
    details: [{ field: "id", expected: "an item_id listed by GET /v1/review/items", found: shown }],
  });
}

function outputScore(body: Readonly<Record<string, unknown>>): number | null {
  const outputs = body.outputs as { score?: unknown } | undefined;
  return typeof outputs?.score === "number" ? outputs.score : null;
}

/** Open the queue (`<dataDir>/review.sqlite`). */
export function createReviewService(options: ReviewServiceOptions): ReviewService {
  const store: ReviewStore = openReviewStore(options.dataDir);
  const now = options.now ?? Date.now;
  const ledger = options.ledger;
  const events = new EventEmitter();
  const window = options.similarWindow ?? SIMILAR_WINDOW;
  /** Items being resolved right now (a ledger write in flight): a second resolve is refused. */
  const busy = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const margin = options.catchUpMargin ?? CATCH_UP_MARGIN;
  /** The catch-up running now, if any; whether one has finished (the first drains the ledger's journal first). */
  let catching: Promise<number> | undefined;
  let caughtUpOnce = false;
  /** An offer to the queue (a held decision, an appeal) failed since the last catch-up began. */
  let offerFailed = false;
  let closed = false;

  const policyOf = (model: string, version: string): ReviewPolicy =>
    options.manifestOf(model, version)?.review ?? reviewPolicyOf({});

  const view = (item: ReviewItem): Record<string, unknown> => {
    const t = now();
    const status = effectiveStatus(item, t);
    return {
      item_id: item.id,
      decision_id: item.decision_id,
      model: item.model,
      version: item.version,
      status,
      reasons: item.reasons,
      created_at: iso(item.created_at),
      due_at: iso(item.due_at),
      overdue: status !== "resolved" && item.due_at <= t,
      escalated_at: iso(item.escalated_at),
      four_eyes: item.four_eyes,
      claimed_by: status === "claimed" ? item.claimed_by : null,
      claim_expires_at: status === "claimed" ? iso(item.claim_expires_at) : null,
      first_review:
        item.first === null
          ? null
          : {
              reviewer: item.first.reviewer,
              decision: item.first.decision,
              reason_code: item.first.reason_code,
              at: iso(item.first.at),
            },
      disagreements: item.disagreements,
      score: item.score,
      model_decision: item.model_decision,
      final_decision: item.status === "resolved" ? item.final_decision : null,
      reason_code: item.reason_code,
      resolved_by: item.resolved_by,
      resolved_at: iso(item.resolved_at),
      review_record_id: item.review_record_id,
      appeal_id: item.appeal_id,
    };
  };

  const newItem = (
    decision: { id: string; model: string; version: string; body: Readonly<Record<string, unknown>> },
    reasons: readonly string[],
    createdAt: number,
    appealId: string | null,
  ): NewItem => {
    const policy = policyOf(decision.model, decision.version);
    return {
      id: uuidv7(),
      decision_id: decision.id,
      model: decision.model,
      version: decision.version,
      reasons,
      created_at: createdAt,
      due_at: createdAt + policy.slaMinutes * 60_000,
      four_eyes: policy.fourEyes,
      model_decision: (decision.body.decision ?? null) as Verdict,
      score: outputScore(decision.body),
      appeal_id: appealId,
    };
  };

  /**
   * Read the ledger's review sources from the watermark to its end, a stretch at a time (picked in SQL: only
   * they are parsed), taking in whatever the queue lacks, and move the watermark over each stretch once it is
   * done, with the hash of the record it stands at. A ledger shorter than the watermark (its tail lost in a
   * power cut) is read from its end; one whose record at the watermark is no longer that record (lost, then
   * written again past it) is read from its start, once.
   */
  const readSources = async (): Promise<number> => {
    let after = store.watermark();
    const known = store.watermarkHash();
    if (after > 0 && known !== undefined) {
      const here = await ledger.reviewSources(after, 0);
      if (here.end >= after && here.throughHash !== known) {
        events.emit(
          "problem",
          new WardenError(
            "WARDEN_ERR_LEDGER",
            `the ledger's record ${after} is not the one the review queue last read up to (a power cut lost the ledger's tail, and it was written again); reading the whole ledger for held decisions and appeals`,
          ),
        );
        after = 0;
        store.setWatermark(0);
      }
    }
    let added = 0;
    for (;;) {
      const { records, through, end, throughHash } = await ledger.reviewSources(after, CATCH_UP_STRETCH);
      if (end < after) {
        after = end;
        store.setWatermark(end, (await ledger.reviewSources(end, 0)).throughHash);
        continue;
      }
      for (const record of records) {
        if (store.hasSource(record.id)) continue;
        const held = record.body.review as { reasons?: unknown; status?: unknown } | undefined;
        if (record.kind === "decision" && held?.status === "pending" && Array.isArray(held.reasons)) {
          store.enqueue(newItem(record, held.reasons as string[], Date.parse(record.time), null), record.id);
          added++;
        } else if (record.kind === "appeal" && typeof record.body.decision_id === "string") {
          const decision = await ledger.get(record.body.decision_id);
          if (decision === undefined) continue;
          store.enqueue(newItem(decision, ["appeal"], Date.parse(record.time), record.id), record.id);
          added++;
        }
      }
      if (through <= after) return added;
      after = through;
      store.setWatermark(after, throughHash);
      // It runs while the server serves: let other work in between stretches.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  };

  const itemOf = (id: string): ReviewItem => {
    const item = store.get(id);
    if (item === undefined) throw notFound(id);
    return item;
  };

  const alreadyResolved = (item: ReviewItem): WardenError =>
    new WardenError(
      "WARDEN_ERR_REVIEW_CONFLICT",
      `review item ${item.id} was resolved at ${iso(item.resolved_at)} by ${item.resolved_by.join(" and ")}: final decision ${JSON.stringify(item.final_decision)}`,
      {
        details: [
          {
            field: "id",
            expected: "an item that is not resolved",
            found: "resolved",
            fix: "a resolved decision is reviewed again only through a new appeal (POST /v1/decisions/{id}/appeals)",
          },
        ],
      },
    );

  const sameReviewer = (item: ReviewItem, reviewer: string): WardenError =>
    new WardenError(
      "WARDEN_ERR_REVIEW_FOUR_EYES",
      `review item ${item.id} needs two distinct reviewers, and ${reviewer} gave its first judgement`,
      {
        details: [
          {
            field: "x-warden-actor",
            expected: `a reviewer other than ${item.first!.reviewer} (policy.review.four_eyes)`,
            found: JSON.stringify(reviewer),
            fix: "another reviewer must claim and resolve it",
          },
        ],
      },
    );

  /** Labels (classification) or any finite number (regression) for a decision of `record`'s model version. */
  const checkVerdict = (record: LedgerRecord, value: unknown, problems: FieldProblem[]): void => {
    const manifest = options.manifestOf(record.model, record.version);
    const probabilities = (record.body.outputs as { probabilities?: Record<string, number> } | undefined)
      ?.probabilities;
    const regression = manifest !== undefined ? manifest.task === "regression" : probabilities === undefined;
    if (regression) {
      if (typeof value === "number" && Number.isFinite(value)) return;
      problems.push({
        field: "decision",
        expected: `a finite number (${record.model} is a regression model)`,
        found: describeValue(value),
      });
      return;
    }
    const labels = manifest?.output.labels ?? Object.keys(probabilities ?? {});
    if (typeof value === "string" && labels.includes(value)) return;
    const caseMatch =
      typeof value === "string" ? labels.find((l) => l.toLowerCase() === value.toLowerCase()) : undefined;
    problems.push({
      field: "decision",
      expected: `one of the labels of ${record.model} ${record.version}: ${labels.map((l) => JSON.stringify(l)).join(", ")}`,
      found: describeValue(value),
      ...(caseMatch !== undefined
        ? { fix: `labels are case-sensitive: send ${JSON.stringify(caseMatch)}` }
        : {}),
    });
  };

  const checkResolution = (
    record: LedgerRecord,
    policy: ReviewPolicy,
    resolution: unknown,
  ): { decision: Verdict; reason_code: string; note: string | undefined } => {
    const problems: FieldProblem[] = [];
    const allowed = ["decision", "reason_code", "note"];
    const body =
      typeof resolution === "object" && resolution !== null && !Array.isArray(resolution)
        ? (resolution as Record<string, unknown>)
        : undefined;
    if (body === undefined) {
      problems.push({
        field: "body",
        expected: "a JSON object with decision, reason_code and note",
        found: describeValue(resolution),
      });
    } else {
      for (const key of Object.keys(body)) {
        if (!allowed.includes(key)) {
          problems.push({
            field: key,
            expected: "no such field",
            found: "present",
            fix: `remove it or check its spelling (fields: ${allowed.join(", ")})`,
          });
        }
      }
      if (body.decision === undefined) {
        problems.push({
          field: "decision",
          expected: "the final decision: a label of the model",
          found: "missing",
        });
      } else {
        checkVerdict(record, body.decision, problems);
      }
      const code = body.reason_code;
      if (policy.reasonCodes !== undefined) {
        if (typeof code !== "string" || !policy.reasonCodes.includes(code)) {
          problems.push({
            field: "reason_code",
            expected: `one of the reason codes of policy.review.reason_codes: ${policy.reasonCodes.map((c) => JSON.stringify(c)).join(", ")}`,
            found: describeValue(code),
          });
        }
      } else if (typeof code !== "string" || !REASON_CODE.test(code)) {
        problems.push({
          field: "reason_code",
          expected: "a reason code: 1 to 64 letters, digits, _ . - (starting with a letter or digit)",
          found: describeValue(code),
          fix: 'for example "income_verified"',
        });
      }
      const note = body.note;
      if (note !== undefined && (typeof note !== "string" || [...note].length > NOTE_MAX)) {
        problems.push({
          field: "note",
          expected: `a string of at most ${NOTE_MAX} characters`,
          found: typeof note === "string" ? `${[...note].length} characters` : describeValue(note),
        });
      }
    }
    if (problems.length > 0) {
      throw new WardenError(
        "WARDEN_ERR_VALIDATION",
        `${problems.length} invalid field${problems.length === 1 ? "" : "s"} in the resolution: ${problems
          .slice(0, 3)
          .map((p) => p.field)
          .join(", ")}`,
        { details: problems },
      );
    }
    return {
      decision: body!.decision as Verdict,
      reason_code: body!.reason_code as string,
      note: body!.note as string | undefined,
    };
  };

  const emit = (alert: ReviewAlert) => {
    events.emit("alert", alert);
    return alert;
  };

  const decisionRecord = async (id: string): Promise<LedgerRecord> => {
    let record = await ledger.get(id);
    if (record === undefined) {
      await ledger.committed();
      record = await ledger.get(id);
    }
    if (record === undefined) {
      throw new WardenError("WARDEN_ERR_LEDGER", `the decision ${id} of a review item is not in the ledger`);
    }
    return record;
  };

  const service: ReviewService = {
    events,
    routing(context = {}) {
      return createReviewRouting((entries) => {
        for (const { entry, reasons } of entries) {
          try {
            store.enqueue(newItem(entry, reasons, now(), null), entry.id);
          } catch (error) {
            offerFailed = true;
            // The decision is recorded as held; the next tick's catch-up tries again (or the next start's).
            events.emit("problem", error);
          }
        }
      }, context);
    },

    enqueueAppeal(decision, appealId) {
      try {
        const { item } = store.enqueue(newItem(decision, ["appeal"], now(), appealId), appealId);
        return view(item);
      } catch (error) {
        // Recorded and not queued: the next catch-up reads the ledger for it.
        offerFailed = true;
        throw error;
      }
    },

    catchUp() {
      // One at a time: the one at start and the ticks' share the watermark.
      catching ??= (async () => {
        // Cleared first: an offer that fails from here on sets it again, for the next tick. Then everything
        // journaled so far (a failed offer's record included) is committed before the read.
        offerFailed = false;
        try {
          await ledger.committed();
          const added = await readSources();
          caughtUpOnce = true;
          return added;
        } catch (error) {
          offerFailed = true;
          throw error;
        }
      })().finally(() => {
        catching = undefined;
      });
      return catching;
    },

    async advance() {
      if (catching !== undefined) return;
      // Until a catch-up has finished (the start's may have failed), and after a failed offer: read.
      if (!caughtUpOnce || offerFailed) {
        await service.catchUp();
        return;
      }
      // Every record committed now was offered to the queue, and no offer failed: nothing to read. (A held
      // decision or an appeal is offered in the turn its journal write is answered, each on its own, so before
      // any later turn, this one included, can see it committed; a failed offer sets offerFailed in that same
      // turn. The margin is a cheap guard should that reasoning ever miss a record.)
      const { end } = await ledger.reviewSources(store.watermark(), 0);
      const target = end - margin;
      if (target <= store.watermark()) return;
      const { throughHash } = await ledger.reviewSources(target, 0);
      if (!offerFailed && catching === undefined && !closed && target > store.watermark()) {
        store.setWatermark(target, throughHash);
      }
    },

    list(filter) {
      const items = store.list({ ...filter, now: now() });
      return {
        items: items.map(view),
        next_cursor: items.length === filter.limit && items.length > 0 ? String(items.at(-1)!.seq) : null,
      };
    },

    async detail(id, k = SIMILAR_DEFAULT) {
      const item = itemOf(id);
      const record = await decisionRecord(item.decision_id);
      const manifest = options.manifestOf(record.model, record.version);
      const inputs = (record.body.inputs ?? {}) as Record<string, unknown>;
      const features =
        manifest?.modelFeatures ??
        Object.entries(inputs).map(([name, value]) => ({
          name,
          type: typeof value === "number" ? ("number" as const) : ("category" as const),
        }));
      const candidates: LedgerRecord[] = [];
      const seen = new Set<string>();
      const take = (r: LedgerRecord) => {
        if (r.kind !== "decision" || r.model !== record.model || seen.has(r.id)) return;
        seen.add(r.id);
        candidates.push(r);
      };
      for await (const r of ledger.scan({
        afterSeq: Math.max(0, record.seq - window - 1),
        limit: 2 * window + 1,
      })) {
        take(r);
      }
      for (const resolved of store.resolvedOf(record.model, 200)) {
        if (seen.has(resolved.decision_id)) continue;
        const r = await ledger.get(resolved.decision_id);
        if (r !== undefined) take(r);
      }
      const finals = store.finals(candidates.map((c) => c.id));
      // Cases still waiting for a reviewer have no final decision yet: not shown.
      const decided = candidates.filter((c) => c.body.review === undefined || finals.has(c.id));
      const similar: SimilarCase[] = nearestCases(record, decided, features, finals, k);
      return {
        ...view(item),
        decision: {
          decision_id: record.id,
          time: record.time,
          inputs: record.body.inputs ?? {},
          outputs: record.body.outputs ?? {},
          threshold: record.body.threshold ?? null,
          model_decision: record.body.decision ?? null,
        },
        explanation: record.body.explanation ?? null,
        similar_cases: similar,
      };
    },

    claim(id, reviewer) {
      const item = itemOf(id);
      const t = now();
      if (item.status === "resolved") throw alreadyResolved(item);
      if (item.first !== null && item.first.reviewer === reviewer) throw sameReviewer(item, reviewer);
      if (effectiveStatus(item, t) === "claimed" && item.claimed_by !== reviewer) {
        throw new WardenError(
          "WARDEN_ERR_REVIEW_CONFLICT",
          `review item ${item.id} is claimed by ${item.claimed_by} until ${iso(item.claim_expires_at)}`,
          {
            details: [
              {
                field: "id",
                expected: "an item nobody else has claimed",
                found: `claimed by ${item.claimed_by}`,
                fix: `take another item, or wait until the claim expires (${iso(item.claim_expires_at)})`,
              },
            ],
          },
        );
      }
      const minutes = policyOf(item.model, item.version).claimMinutes;
      return view(store.update(id, { claimed_by: reviewer, claim_expires_at: t + minutes * 60_000 }));
    },

    async resolve(id, reviewer, resolution) {
      const item = itemOf(id);
      if (item.status === "resolved") throw alreadyResolved(item);
      if (item.first !== null && item.first.reviewer === reviewer) throw sameReviewer(item, reviewer);
      const t = now();
      if (effectiveStatus(item, t) !== "claimed" || item.claimed_by !== reviewer || busy.has(id)) {
        const other = effectiveStatus(item, t) === "claimed" && item.claimed_by !== reviewer;
        throw new WardenError(
          "WARDEN_ERR_REVIEW_CONFLICT",
          other
            ? `review item ${item.id} is claimed by ${item.claimed_by}, not by ${reviewer}`
            : busy.has(id)
              ? `review item ${item.id} is being resolved`
              : `review item ${item.id} is not claimed by ${reviewer}${item.claimed_by === reviewer ? " any more: the claim expired" : ""}`,
          {
            details: [
              {
                field: "id",
                expected: `an item claimed by ${reviewer} (a live claim)`,
                found: other
                  ? `claimed by ${item.claimed_by}`
                  : item.claimed_by === reviewer
                    ? `a claim that expired at ${iso(item.claim_expires_at)}`
                    : "not claimed",
                fix: `claim it first: POST /v1/review/items/${item.id}/claim`,
              },
            ],
          },
        );
      }
      const record = await decisionRecord(item.decision_id);
      const policy = policyOf(item.model, item.version);
      const judged = checkResolution(record, policy, resolution);
      const override = judged.decision !== item.model_decision;
      const stage: "single" | "first" | "second" | "disagreement" = !item.four_eyes
        ? "single"
        : item.first === null
          ? "first"
          : item.first.decision === judged.decision
            ? "second"
            : "disagreement";
      const final = stage === "single" || stage === "second";
      const reviewers = stage === "second" ? [item.first!.reviewer, reviewer] : [reviewer];
      const time = new Date(t).toISOString();
      const entry: LedgerEntry = {
        id: uuidv7(),
        kind: "review",
        time,
        model: record.model,
        version: record.version,
        artifact_sha256: record.artifact_sha256,
        body: {
          decision: judged.decision,
          decision_id: record.id,
          ...(stage === "disagreement" || stage === "second"
            ? {
                earlier: {
                  decision: item.first!.decision,
                  reason_code: item.first!.reason_code,
                  reviewer: item.first!.reviewer,
                },
              }
            : {}),
          final,
          item_id: item.id,
          model_decision: item.model_decision,
          ...(judged.note !== undefined ? { note: judged.note } : {}),
          override,
          reason_code: judged.reason_code,
          reasons: [...item.reasons],
          reviewer,
          reviewers,
          stage,
        },
      };
      busy.add(id);
      try {
        await ledger.write(entry);
      } finally {
        busy.delete(id);
      }
      let updated: ReviewItem;
      if (stage === "first") {
        updated = store.update(id, {
          status: "awaiting_second",
          first: { reviewer, decision: judged.decision, reason_code: judged.reason_code, at: t },
          claimed_by: null,
          claim_expires_at: null,
        });
      } else if (stage === "disagreement") {
        updated = store.update(id, {
          status: "pending",
          first: null,
          claimed_by: null,
          claim_expires_at: null,
          disagreements: item.disagreements + 1,
        });
        emit({
          name: "WardenReviewDisagreement",
          severity: "warning",
          labels: { model: item.model, version: item.version, item_id: item.id },
          annotations: {
            summary: `four-eyes reviewers disagree on review item ${item.id} of ${item.model}`,
            description: `${item.first!.reviewer} decided ${JSON.stringify(item.first!.decision)}, ${reviewer} ${JSON.stringify(judged.decision)}; the item is back in the queue for two reviewers who agree`,
            decision_id: item.decision_id,
            ledger_record_id: entry.id,
          },
          startsAt: time,
        });
      } else {
        updated = store.update(id, {
          status: "resolved",
          claimed_by: null,
          claim_expires_at: null,
          final_decision: judged.decision,
          reason_code: judged.reason_code,
          resolved_by: reviewers,
          resolved_at: t,
          review_record_id: entry.id,
        });
        store.addJudgements(
          reviewers.map((r) => ({
            item_id: id,
            reviewer: r,
            model: item.model,
            version: item.version,
            decision: judged.decision,
            override,
            time: t,
          })),
        );
        // The item's escalations, if any fired, end with it (the alert sink ignores those that never fired).
        const ended = { startsAt: time, endsAt: time, status: "resolved" as const };
        emit({
          name: "WardenReviewOverdue",
          severity: item.reasons.includes("appeal") ? "critical" : "warning",
          labels: {
            model: item.model,
            version: item.version,
            reason: item.reasons[0] ?? "",
            item_id: item.id,
          },
          annotations: { summary: `review item ${item.id} of ${item.model} is resolved` },
          ...ended,
        });
        emit({
          name: "WardenReviewDisagreement",
          severity: "warning",
          labels: { model: item.model, version: item.version, item_id: item.id },
          annotations: { summary: `review item ${item.id} of ${item.model} is resolved` },
          ...ended,
        });
        for (const r of reviewers) {
          events.emit("judged", {
            model: item.model,
            version: item.version,
            reviewer: r,
            override,
          } satisfies ReviewJudged);
        }
      }
      return { ...view(updated), stage, review_record_id: entry.id, override };
    },

    tick() {
      const t = now();
      const alerts: ReviewAlert[] = [];
      for (const item of store.overdue(t)) {
        if (!store.markEscalated(item.id, t)) continue;
        const appeal = item.reasons.includes("appeal");
        alerts.push(
          emit({
            name: "WardenReviewOverdue",
            severity: appeal ? "critical" : "warning",
            labels: {
              model: item.model,
              version: item.version,
              reason: item.reasons[0] ?? "",
              item_id: item.id,
            },
            annotations: {
              summary: `review item ${item.id} of ${item.model} is past its SLA`,
              description: `decision ${item.decision_id} (${item.reasons.join(", ")}) has waited since ${iso(item.created_at)}; it was due at ${iso(item.due_at)} (policy.review.sla_minutes)`,
              decision_id: item.decision_id,
              due_at: iso(item.due_at)!,
            },
            startsAt: iso(item.due_at)!,
          }),
        );
      }
      return alerts;
    },

    queueCounts(model) {
      return store.statusCounts(now(), model);
    },
    summary(model) {
      return { queue: store.statusCounts(now(), model), ...store.overrideCounts(model) };
    },

    decisionView(record) {
      if (record.kind !== "decision") return undefined;
      const items = store.ofDecision(record.id);
      const held = record.body.review as { reasons?: unknown } | undefined;
      if (items.length === 0 && held === undefined) return undefined;
      let final: Verdict = held === undefined ? ((record.body.decision ?? null) as Verdict) : null;
      for (const item of items) if (item.status === "resolved") final = item.final_decision;
      const latest = items.at(-1);
      const pending = latest !== undefined ? latest.status !== "resolved" : held !== undefined;
      return {
        status: pending ? "pending_review" : "decided",
        final_decision: final,
        review:
          latest !== undefined
            ? view(latest)
            : { status: "pending", reasons: held?.reasons ?? [], item_id: null },
        ...(items.length > 1 ? { review_items: items.map((i) => i.id) } : {}),
      };
    },

    start(intervalMs) {
      if (timer !== undefined) return;
      timer = setInterval(() => {
        try {
          service.tick();
        } catch (error) {
          events.emit("problem", error);
        }
        // Keeps the watermark near the ledger's end, so a restart reads seconds of ledger, not everything since
        // the previous start; and retries offers that failed.
        service.advance().catch((error: unknown) => events.emit("problem", error));
      }, intervalMs);
      timer.unref();
    },

    async close() {
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await catching?.catch(() => undefined);
      store.close();
    },
  };
  return service;
}
