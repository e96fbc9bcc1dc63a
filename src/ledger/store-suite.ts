/**
 * One behavioural test suite for every ledger backend (store-sqlite.test.ts, postgres-store.test.ts): what
 * the rest of Warden relies on, checked the same way against each store.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { LedgerBackend } from "./backend.js";
import { GENESIS_HASH } from "./hash.js";
import { prepareEntry } from "./sqlite-store.js";
import { sampleEntry } from "./testkit.js";
import type { LedgerEntry } from "./types.js";
import type { VerifyResult } from "./verify.js";

/** A fresh, empty ledger of one backend, and how to reopen, verify and remove it. */
export interface StoreFixture {
  readonly store: LedgerBackend;
  /** Open the same ledger again (as a restarted process would). */
  reopen(): Promise<LedgerBackend>;
  verify(): Promise<VerifyResult>;
  dispose(): Promise<void>;
}

const prepared = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => prepareEntry(sampleEntry(from + i)));

/** Register the suite's tests under `name`, each on a fresh ledger from `open`. */
export function storeSuite(name: string, open: () => Promise<StoreFixture>): void {
  const withStore = (title: string, body: (f: StoreFixture) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const fixture = await open();
      try {
        await body(fixture);
      } finally {
        await fixture.dispose();
      }
    });

  withStore("an empty ledger has no records and the genesis head", async ({ store, verify }) => {
    assert.equal(await store.count(), 0);
    assert.equal(await store.lastHash(), GENESIS_HASH);
    assert.equal(await store.get(sampleEntry(1).id), undefined);
    const seen = [];
    for await (const r of store.scan()) seen.push(r);
    assert.deepEqual(seen, []);
    assert.deepEqual(await verify(), { ok: true, count: 0 });
  });

  withStore("appends chain in order, read back exactly, and verify", async ({ store, verify }) => {
    const first = await store.appendPrepared(prepared(1, 3));
    const second = await store.appendPrepared(prepared(4, 2));
    assert.deepEqual(
      [...first, ...second].map((p) => p.seq),
      [1, 2, 3, 4, 5],
    );
    assert.equal(first[0]!.prev_hash, GENESIS_HASH);
    assert.equal(second[0]!.prev_hash, first[2]!.hash);
    assert.equal(await store.count(), 5);
    assert.equal(await store.lastHash(), second[1]!.hash);
    const entry = sampleEntry(4);
    const record = await store.get(entry.id);
    assert.deepEqual(record, { ...entry, seq: 4, prev_hash: first[2]!.hash, hash: second[0]!.hash });
    const scanned = [];
    for await (const r of store.scan({ afterSeq: 1, limit: 3 })) scanned.push(r.seq);
    assert.deepEqual(scanned, [2, 3, 4]);
    assert.deepEqual(await verify(), { ok: true, count: 5 });
  });

  withStore(
    "a transaction is all or nothing: a duplicate id stores none of its batch",
    async ({ store, verify }) => {
      await store.appendPrepared(prepared(1, 2));
      const batch = [...prepared(3, 2), prepareEntry(sampleEntry(1))];
      await assert.rejects(
        store.appendPrepared(batch),
        (e: Error & { code?: string }) => e.code === "WARDEN_ERR_LEDGER",
      );
      assert.equal(await store.count(), 2);
      assert.equal(await store.get(sampleEntry(3).id), undefined);
      const next = await store.appendPrepared(prepared(3, 1));
      assert.equal(next[0]!.seq, 3);
      assert.deepEqual(await verify(), { ok: true, count: 3 });
    },
  );

  withStore("a reopened ledger continues the same chain", async ({ store, reopen, verify }) => {
    const before = await store.appendPrepared(prepared(1, 4));
    await store.close();
    const again = await reopen();
    try {
      assert.equal(await again.count(), 4);
      assert.equal(await again.lastHash(), before[3]!.hash);
      const after = await again.appendPrepared(prepared(5, 1));
      assert.deepEqual(after[0], { seq: 5, prev_hash: before[3]!.hash, hash: after[0]!.hash });
    } finally {
      await again.close();
    }
    assert.deepEqual(await verify(), { ok: true, count: 5 });
  });

  withStore("a scan pages through more records than one page, lazily", async ({ store }) => {
    for (let i = 0; i < 5; i++) await store.appendPrepared(prepared(1 + i * 1000, 1000));
    let n = 0;
    let last = 0;
    for await (const r of store.scan()) {
      assert.equal(r.seq, last + 1);
      last = r.seq;
      n++;
    }
    assert.equal(n, 5000);
  });

  withStore(
    "linked: what points to a decision (outcomes, appeals, reviews), in ledger order, after a sequence number",
    async ({ store }) => {
      const decision = (n: number) => sampleEntry(n);
      const pointing = (
        n: number,
        kind: LedgerEntry["kind"],
        to: number,
        extra: Record<string, unknown> = {},
      ) => sampleEntry(n, { kind, body: { decision_id: decision(to).id, ...extra } });
      await store.appendPrepared(
        [
          decision(1),
          decision(2),
          pointing(3, "outcome", 1, { outcome: "bad" }),
          // A shadow score points to its decision too, but is not part of its history.
          pointing(4, "shadow", 1),
          pointing(5, "appeal", 2),
          pointing(6, "review", 1),
          // Another id in a string that merely contains decision 1's id.
          sampleEntry(7, { kind: "outcome", body: { decision_id: `${decision(1).id}x` } }),
          pointing(8, "appeal", 1),
          // decision_id nested deeper, or not a string: not a link.
          sampleEntry(9, { kind: "outcome", body: { note: { decision_id: decision(1).id } } }),
          sampleEntry(10, { kind: "outcome", body: { decision_id: 1 } }),
        ].map(prepareEntry),
      );
      const kindsAndSeqs = (records: readonly { kind: string; seq: number }[]) =>
        records.map((r) => `${r.kind}@${r.seq}`);
      const first = await store.linked(decision(1).id, 1);
      assert.deepEqual(kindsAndSeqs(first), ["outcome@3", "review@6", "appeal@8"]);
      // The whole record, as get reads it.
      const outcome = pointing(3, "outcome", 1, { outcome: "bad" });
      assert.deepEqual(first[0], await store.get(outcome.id));
      assert.deepEqual(first[0]!.body, outcome.body);
      assert.deepEqual(kindsAndSeqs(await store.linked(decision(1).id, 6)), ["appeal@8"]);
      // A page of them, and the latest of one kind.
      assert.deepEqual(kindsAndSeqs(await store.linked(decision(1).id, 1, 2)), ["outcome@3", "review@6"]);
      assert.deepEqual(kindsAndSeqs(await store.linked(decision(1).id, 6, 2)), ["appeal@8"]);
      assert.equal((await store.latestLinked(decision(1).id, "outcome"))?.seq, 3);
      assert.equal((await store.latestLinked(decision(1).id, "appeal"))?.seq, 8);
      assert.equal(await store.latestLinked(decision(2).id, "outcome"), undefined);
      assert.deepEqual(kindsAndSeqs(await store.linked(decision(2).id)), ["appeal@5"]);
      assert.deepEqual(await store.linked("no-such-decision"), []);
      // Free text with a NUL and a lone surrogate (JSON allows both; PostgreSQL's jsonb refuses them): stored,
      // and found, like any other.
      const odd = pointing(11, "appeal", 2, { reason: "a\u0000b \ud800 c" });
      await store.appendPrepared([prepareEntry(odd)]);
      const found = await store.linked(decision(2).id);
      assert.deepEqual(kindsAndSeqs(found), ["appeal@5", "appeal@11"]);
      assert.equal(found[1]!.body.reason, "a\u0000b \ud800 c");
    },
  );

  withStore(
    "reviewSources: appeals and held decisions of a stretch, picked without parsing the rest, and where the ledger ends",
    async ({ store }) => {
      const held = (n: number) =>
        sampleEntry(n, {
          body: { decision: "bad", review: { reasons: ["borderline"], status: "pending" } },
        });
      await store.appendPrepared(
        [
          sampleEntry(1),
          held(2),
          sampleEntry(3, { kind: "appeal", body: { decision_id: sampleEntry(1).id, reason: "x" } }),
          sampleEntry(4, { kind: "outcome", body: { decision_id: sampleEntry(1).id } }),
          // The word in a string is not the mark: its quotes are escaped in JSON.
          sampleEntry(5, { body: { note: '"review":{' } }),
          held(6),
          sampleEntry(7),
        ].map(prepareEntry),
      );
      const seqs = (r: { records: readonly { seq: number }[]; through: number; end: number }) => ({
        seqs: r.records.map((x) => x.seq),
        through: r.through,
        end: r.end,
      });
      assert.deepEqual(seqs(await store.reviewSources(0, 100)), { seqs: [2, 3, 6], through: 7, end: 7 });
      assert.deepEqual(seqs(await store.reviewSources(0, 3)), { seqs: [2, 3], through: 3, end: 7 });
      assert.deepEqual(seqs(await store.reviewSources(3, 3)), { seqs: [6], through: 6, end: 7 });
      assert.deepEqual(seqs(await store.reviewSources(7, 3)), { seqs: [], through: 7, end: 7 });
      // After the end (a watermark from before a power cut): nothing, and where the ledger ends.
      assert.deepEqual(seqs(await store.reviewSources(9, 3)), { seqs: [], through: 9, end: 7 });
      assert.deepEqual((await store.reviewSources(1, 1)).records[0], await store.get(held(2).id));
      await assert.rejects(store.reviewSources(-1, 5), RangeError);
      await assert.rejects(store.reviewSources(0, -1), RangeError);
      // A stretch of none: where the ledger ends, nothing read.
      assert.deepEqual(seqs(await store.reviewSources(2, 0)), { seqs: [], through: 2, end: 7 });
      // The hash of the record a stretch ends at, to check later that it is still the same record.
      assert.equal((await store.reviewSources(2, 0)).throughHash, (await store.get(held(2).id))!.hash);
      assert.equal((await store.reviewSources(3, 3)).throughHash, (await store.get(held(6).id))!.hash);
      assert.equal((await store.reviewSources(0, 0)).throughHash, undefined);
      assert.equal((await store.reviewSources(9, 3)).throughHash, undefined);
    },
  );

  withStore("a closed store refuses work", async ({ store }) => {
    await store.close();
    await assert.rejects(store.count(), (e: Error & { code?: string }) => e.code === "WARDEN_ERR_LEDGER");
    await store.close(); // idempotent
  });
}
