import assert from "node:assert/strict";
import { test } from "node:test";
import { attachmentLine, journalLine, parseJournalText } from "./journal.js";
import { prepareEntry } from "./sqlite-store.js";
import { sampleEntry } from "./testkit.js";

test("journal text parsed append by append gives the batch the joined text gives, in order", () => {
  const entries = Array.from({ length: 12 }, (_, i) =>
    prepareEntry(sampleEntry(i + 1, { model: i % 2 === 0 ? "crédit-中" : "credit" })),
  );
  // Three appends (one per event-loop turn), each whole lines, with vault rows before some entries.
  const appends = [entries.slice(0, 5), entries.slice(5, 6), entries.slice(6)].map((group) =>
    group
      .map(
        (e, i) => (i % 2 === 0 ? attachmentLine(JSON.stringify({ decision_id: e.id })) : "") + journalLine(e),
      )
      .join(""),
  );
  const joined = parseJournalText(appends.join(""));
  const batch = { entries: [], vaultRows: [] };
  for (const text of appends) assert.equal(parseJournalText(text, batch), batch);
  assert.deepEqual(batch, joined);
  assert.deepEqual(joined.entries, entries);
  assert.deepEqual(
    joined.vaultRows,
    [entries[0], entries[2], entries[4], entries[5], entries[6], entries[8], entries[10]].map((e) => ({
      decision_id: e!.id,
    })),
  );
});
