import assert from "node:assert/strict";
import { test } from "node:test";
import { v7 as uuidv7 } from "uuid";
import { seededRandom } from "../explain/random.js";
import { DecisionMemory } from "./memory.js";

/** The obvious implementation, to hold the typed one to: a Map in insertion order, the oldest forgotten first. */
class Reference {
  readonly entries = new Map<string, { codes: number[]; selected: 0 | 1; counted: boolean }>();
  constructor(readonly capacity: number) {}
  remember(id: string, codes: number[], selected: 0 | 1): void {
    const known = this.entries.has(id);
    this.entries.set(id, { codes, selected, counted: false });
    if (!known && this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }
}

test("the decision memory agrees with a plain map, first in first out, through long random runs", () => {
  for (const capacity of [1, 2, 7, 64, 1000]) {
    const rng = seededRandom(capacity);
    const random = () => rng.next();
    const memory = new DecisionMemory(capacity, 2);
    const reference = new Reference(capacity);
    const ids: string[] = [];
    const upper = (id: string) => id.toUpperCase();
    for (let step = 0; step < 20_000; step++) {
      const roll = random();
      // Mostly new UUIDs (as Warden makes them), some ids seen before, some ids of other forms.
      const id =
        roll < 0.6 || ids.length === 0
          ? uuidv7()
          : roll < 0.8
            ? ids[Math.floor(random() * ids.length)]!
            : roll < 0.9
              ? upper(ids[Math.floor(random() * ids.length)]!)
              : `client-${Math.floor(random() * 3 * capacity)}`;
      if (random() < 0.7) {
        const codes = [Math.floor(random() * 5), Math.floor(random() * 3)];
        const selected = random() < 0.5 ? 1 : 0;
        memory.remember(id, codes, selected);
        reference.remember(id, codes, selected);
        ids.push(id);
        if (ids.length > 4 * capacity + 10) ids.splice(0, ids.length - (4 * capacity + 10));
      } else {
        const expected = reference.entries.get(id);
        const recalled = memory.recall(id);
        if (expected === undefined) {
          assert.equal(recalled, undefined, `capacity ${capacity}, step ${step}: ${id} is forgotten`);
          continue;
        }
        assert.ok(recalled !== undefined, `capacity ${capacity}, step ${step}: ${id} is remembered`);
        assert.equal(recalled.selected, expected.selected);
        assert.equal(recalled.counted, expected.counted);
        assert.deepEqual(memory.codes(recalled.slot), expected.codes);
        if (random() < 0.5) {
          memory.markCounted(recalled.slot);
          expected.counted = true;
        }
      }
      assert.equal(memory.size, reference.entries.size);
    }
    // In the end, every id the reference holds is recalled as it holds it.
    for (const [id, expected] of reference.entries) {
      const recalled = memory.recall(id);
      assert.ok(recalled !== undefined, id);
      assert.deepEqual(
        { selected: recalled.selected, counted: recalled.counted, codes: memory.codes(recalled.slot) },
        expected,
      );
    }
  }
});

test("a UUID and the same letters in upper case are two ids; any string is an id", () => {
  const memory = new DecisionMemory(10, 1);
  const id = uuidv7();
  memory.remember(id, [1], 1);
  assert.equal(memory.recall(id.toUpperCase()), undefined);
  memory.remember(id.toUpperCase(), [2], 0);
  memory.remember("", [3], 0);
  memory.remember("d1", [4], 1);
  assert.deepEqual(memory.codes(memory.recall(id)!.slot), [1]);
  assert.deepEqual(memory.codes(memory.recall(id.toUpperCase())!.slot), [2]);
  assert.deepEqual(memory.codes(memory.recall("")!.slot), [3]);
  assert.equal(memory.recall("d1")!.selected, 1);
  assert.equal(memory.size, 4);
  assert.throws(() => new DecisionMemory(0, 1), RangeError);
});
