import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { seededRandom } from "../explain/random.js";
import {
  categoryCountsFromJSON,
  createCategoryCounts,
  createMoments,
  momentsFromJSON,
} from "./sketch-counts.js";

describe("category counts", () => {
  test("count categories and missing values; merges add up; JSON round trip", () => {
    const a = createCategoryCounts();
    const b = createCategoryCounts();
    for (const v of ["FR", "DE", "FR", null, "", undefined]) a.add(v);
    for (const v of ["DE", "IT", null]) b.add(v);
    a.merge(b);
    assert.deepEqual(
      [...a.entries()],
      [
        ["FR", 2],
        ["DE", 2],
        ["IT", 1],
      ],
    );
    assert.equal(a.missing, 4);
    assert.equal(a.total, 9);
    const back = categoryCountsFromJSON(JSON.parse(JSON.stringify(a)));
    assert.deepEqual(back.toJSON(), a.toJSON());
    assert.equal(b.total, 3, "merge leaves its argument alone");
  });

  test("beyond maxCategories new categories count as overflow, in adds and merges", () => {
    const a = createCategoryCounts({ maxCategories: 2 });
    for (const v of ["x", "y", "z", "x", "w"]) a.add(v);
    assert.equal(a.overflow, 2);
    assert.equal(a.countOf("x"), 2);
    const b = createCategoryCounts({ maxCategories: 2 });
    b.add("q", 3);
    a.merge(b);
    assert.equal(a.overflow, 5);
    assert.equal(a.total, 8);
    const back = categoryCountsFromJSON(JSON.parse(JSON.stringify(a)));
    assert.equal(back.total, 8);
    assert.equal(back.overflow, 5);
  });

  test("malformed JSON is refused", () => {
    const json = createCategoryCounts().toJSON();
    assert.throws(() => categoryCountsFromJSON({ ...json, missing: -1 }), /missing/);
    assert.throws(() => categoryCountsFromJSON({ ...json, counts: { a: "2" } }), /counts/);
    assert.throws(() => categoryCountsFromJSON({ ...json, counts: { "": 1 } }), /counts/);
  });
});

describe("moments", () => {
  test("mean and variance match the two-pass formulas, merged in pieces", () => {
    const r = seededRandom(5);
    const values = Array.from({ length: 5000 }, () => 1e6 + r.normal());
    const parts = [createMoments(), createMoments(), createMoments()];
    values.forEach((v, i) => {
      parts[i % 3]!.add(v);
    });
    const all = parts[0]!.clone();
    all.merge(parts[1]!);
    all.merge(parts[2]!);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
    assert.equal(all.count, 5000);
    assert.ok(Math.abs(all.mean - mean) < 1e-11 * mean, `${all.mean} vs ${mean}`);
    assert.ok(Math.abs(all.variance - variance) < 1e-9 * variance + 1e-9);
    assert.equal(all.min, Math.min(...values));
    assert.equal(all.max, Math.max(...values));
    const back = momentsFromJSON(JSON.parse(JSON.stringify(all)));
    assert.deepEqual(back.toJSON(), all.toJSON());
    assert.ok(Number.isNaN(createMoments().mean));
    assert.throws(() => momentsFromJSON({ kind: "moments" }), TypeError);
  });
});
