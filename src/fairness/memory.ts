/**
 * The decisions a live fairness monitor remembers so that a later outcome can join its decision's groups: the
 * latest `capacity` decisions by id, each with its group codes, whether it was selected, and whether an outcome
 * was already counted for it.
 *
 * Everything lives in typed arrays: an id in Warden's form (a lower-case UUID, 128 bits) is kept as four 32-bit
 * words and found through an open-addressing hash table with linear probing, so remembering a decision makes no
 * object that lives on. At thousands of decisions a second, a Map of id strings to small objects made the
 * collector copy every one of them twice into the old generation (they live for minutes), then sweep them when
 * they were forgotten. Other ids (any string) are kept exactly too, in a Map beside the table.
 *
 * Forgetting is first in, first out: the slots are a ring, and the slot a new decision takes holds the oldest.
 */

/** Slot flags. */
const USED = 1;
const SELECTED = 2;
const COUNTED = 4;

/** A decision found in the memory. */
export interface Recalled {
  /** Its slot (valid until the next {@link DecisionMemory.remember}). */
  readonly slot: number;
  readonly selected: 0 | 1;
  readonly counted: boolean;
}

/** The four 32-bit words of a canonical lower-case UUID, or undefined for any other text. */
function uuidWords(id: string, into: Uint32Array): boolean {
  if (id.length !== 36) return false;
  let word = 0;
  let digits = 0;
  let w = 0;
  for (let i = 0; i < 36; i++) {
    const c = id.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false; // "-"
      continue;
    }
    let v: number;
    if (c >= 48 && c <= 57) v = c - 48;
    else if (c >= 97 && c <= 102) v = c - 87;
    else return false; // upper case or not hex: kept as text, exactly
    word = (word << 4) | v;
    if (++digits === 8) {
      into[w++] = word >>> 0;
      word = 0;
      digits = 0;
    }
  }
  return true;
}

function mix(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ b ^ (h >>> 13), 0xc2b2ae35);
  h = Math.imul(h ^ c ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ d ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class DecisionMemory {
  readonly capacity: number;
  /** Group codes per slot: `width` each. */
  readonly #width: number;
  readonly #codes: Int32Array;
  readonly #flags: Uint8Array;
  /** Per slot, the id's four words (UUID ids), or the id itself (any other text). */
  readonly #words: Uint32Array;
  readonly #texts: (string | undefined)[];
  /** Slot + 1 for each UUID id, by hash; 0 is empty. Twice the capacity at least, a power of two. */
  readonly #table: Int32Array;
  readonly #mask: number;
  /** Slots of the ids that are not UUIDs. */
  readonly #other = new Map<string, number>();
  /** The slot the next new decision takes (the oldest when full). */
  #next = 0;
  #size = 0;
  readonly #scratch = new Uint32Array(4);

  /** @param width group codes per decision (one per attribute). */
  constructor(capacity: number, width: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be >= 1, got ${capacity}`);
    this.capacity = capacity;
    this.#width = width;
    this.#codes = new Int32Array(capacity * width);
    this.#flags = new Uint8Array(capacity);
    this.#words = new Uint32Array(capacity * 4);
    this.#texts = new Array<string | undefined>(capacity);
    let size = 4;
    while (size < capacity * 2) size *= 2;
    this.#table = new Int32Array(size);
    this.#mask = size - 1;
  }

  /** Decisions remembered now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Remember a decision (forgetting the oldest when full). An id already remembered keeps its place and takes the
   * new codes and selection, its outcome not yet counted.
   */
  remember(id: string, codes: ArrayLike<number>, selected: 0 | 1): void {
    let slot = this.#find(id);
    if (slot < 0) {
      slot = this.#next;
      this.#next = (slot + 1) % this.capacity;
      if ((this.#flags[slot]! & USED) !== 0) this.#forget(slot);
      else this.#size++;
      this.#place(id, slot);
    }
    this.#codes.set(codes, slot * this.#width);
    this.#flags[slot] = USED | (selected === 1 ? SELECTED : 0);
  }

  /** The decision with this id, or undefined when it is not (or no longer) remembered. */
  recall(id: string): Recalled | undefined {
    const slot = this.#find(id);
    if (slot < 0) return undefined;
    const flags = this.#flags[slot]!;
    return { slot, selected: (flags & SELECTED) !== 0 ? 1 : 0, counted: (flags & COUNTED) !== 0 };
  }

  /** Mark a recalled decision's outcome as counted. */
  markCounted(slot: number): void {
    this.#flags[slot]! |= COUNTED;
  }

  /** A recalled decision's group codes (a copy). */
  codes(slot: number): number[] {
    return Array.from(this.#codes.subarray(slot * this.#width, (slot + 1) * this.#width));
  }

  #find(id: string): number {
    if (!uuidWords(id, this.#scratch)) return this.#other.get(id) ?? -1;
    const [a, b, c, d] = this.#scratch as unknown as [number, number, number, number];
    const words = this.#words;
    for (let i = mix(a, b, c, d) & this.#mask; ; i = (i + 1) & this.#mask) {
      const entry = this.#table[i]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      const at = slot * 4;
      if (words[at] === a && words[at + 1] === b && words[at + 2] === c && words[at + 3] === d) return slot;
    }
  }

  /** Put a new id in `slot` (whose previous id, if any, is forgotten). */
  #place(id: string, slot: number): void {
    if (!uuidWords(id, this.#scratch)) {
      this.#texts[slot] = id;
      this.#other.set(id, slot);
      return;
    }
    this.#texts[slot] = undefined;
    const [a, b, c, d] = this.#scratch as unknown as [number, number, number, number];
    this.#words.set(this.#scratch, slot * 4);
    let i = mix(a, b, c, d) & this.#mask;
    while (this.#table[i] !== 0) i = (i + 1) & this.#mask;
    this.#table[i] = slot + 1;
  }

  /** Remove `slot`'s id from the lookup (its slot is about to be reused). */
  #forget(slot: number): void {
    const text = this.#texts[slot];
    if (text !== undefined) {
      this.#other.delete(text);
      this.#texts[slot] = undefined;
      return;
    }
    const words = this.#words;
    const at = slot * 4;
    const mask = this.#mask;
    const table = this.#table;
    let i = mix(words[at]!, words[at + 1]!, words[at + 2]!, words[at + 3]!) & mask;
    while (table[i] !== slot + 1) i = (i + 1) & mask;
    // Backward-shift deletion: move up every later entry of the run that may now sit nearer its home position,
    // so lookups never need a tombstone.
    let hole = i;
    for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const other = (table[j]! - 1) * 4;
      const home = mix(words[other]!, words[other + 1]!, words[other + 2]!, words[other + 3]!) & mask;
      // The entry at j may move to the hole unless its home lies cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        table[hole] = table[j]!;
        hole = j;
      }
    }
    table[hole] = 0;
  }
}
