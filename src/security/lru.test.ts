import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../explain/random.js";
import { LruMap } from "./lru.js";

test("the LRU map agrees with a Map kept in use order by re-insertion, through long random runs", () => {
  const rng = seededRandom(7);
  const lru = new LruMap<number>();
  const reference = new Map<string, number>();
  for (let step = 0; step < 50_000; step++) {
    const key = `k${rng.int(300)}`;
    const roll = rng.next();
    if (roll < 0.4) {
      lru.set(key, step);
      reference.delete(key);
      reference.set(key, step);
    } else if (roll < 0.6) {
      const expected = reference.get(key);
      assert.equal(lru.use(key), expected);
      if (expected !== undefined) {
        reference.delete(key);
        reference.set(key, expected);
      }
    } else if (roll < 0.8) {
      assert.equal(lru.peek(key), reference.get(key));
    } else if (roll < 0.9) {
      const first = reference.entries().next();
      const dropped = lru.dropOldest();
      if (first.done) assert.equal(dropped, undefined);
      else {
        assert.deepEqual(dropped && { key: dropped.key, value: dropped.value }, {
          key: first.value[0],
          value: first.value[1],
        });
        reference.delete(first.value[0]);
      }
    } else {
      const first = reference.entries().next();
      const oldest = lru.oldest();
      assert.deepEqual(
        oldest && { key: oldest.key, value: oldest.value },
        first.done ? undefined : { key: first.value[0], value: first.value[1] },
      );
    }
    assert.equal(lru.size, reference.size);
  }
  lru.clear();
  assert.equal(lru.size, 0);
  assert.equal(lru.oldest(), undefined);
  assert.equal(lru.dropOldest(), undefined);
  lru.set("a", 1);
  assert.deepEqual(lru.oldest()?.key, "a");
});
