/**
 * Sensitive attributes encoded once into integer group codes: one code per row for the intersection of every
 * attribute given (the Cartesian product of their levels, so an empty intersection is a group of size 0 that the
 * audit flags, not one that silently disappears).
 */

/** A raw attribute value; null and undefined become the level {@link MISSING_LEVEL}. */
export type AttributeValue = string | number | boolean | null | undefined;

/** A sensitive attribute given as one value per row. Levels are sorted (numbers in numeric order). */
export interface AttributeColumn {
  readonly name: string;
  readonly values: ArrayLike<AttributeValue>;
}

/** A sensitive attribute already encoded: `codes[i]` indexes `levels` (kept in the order given). */
export interface EncodedAttribute {
  readonly name: string;
  readonly codes: ArrayLike<number>;
  readonly levels: readonly string[];
}

export type SensitiveAttribute = AttributeColumn | EncodedAttribute;

/** The level that stands for a missing value (null or undefined). */
export const MISSING_LEVEL = "(missing)";

/** One group: an intersection of one level per attribute. */
export interface GroupKey {
  /** The level itself for one attribute; `name=level, name=level` for several. */
  readonly label: string;
  /** Level per attribute name. */
  readonly values: Readonly<Record<string, string>>;
}

/** Rows encoded as group codes. */
export interface GroupEncoding {
  readonly attributes: readonly string[];
  readonly levels: readonly (readonly string[])[];
  /** Every combination of levels, first attribute varying slowest; `codes` index it. */
  readonly groups: readonly GroupKey[];
  /** Group code of each row. */
  readonly codes: Uint32Array;
}

/** Most groups an intersection may have: the product of the attributes' level counts. */
export const MAX_GROUPS = 1 << 16;

const collator = new Intl.Collator("en", { numeric: true });

function encodeColumn(column: AttributeColumn): { codes: Uint32Array; levels: string[] } {
  const n = column.values.length;
  const firstSeen = new Map<string, number>();
  const raw = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const value = column.values[i];
    const level = value === null || value === undefined ? MISSING_LEVEL : String(value);
    let code = firstSeen.get(level);
    if (code === undefined) {
      code = firstSeen.size;
      firstSeen.set(level, code);
    }
    raw[i] = code;
  }
  const levels = [...firstSeen.keys()].sort(collator.compare);
  const remap = new Uint32Array(levels.length);
  levels.forEach((level, sorted) => {
    remap[firstSeen.get(level)!] = sorted;
  });
  for (let i = 0; i < n; i++) raw[i] = remap[raw[i]!]!;
  return { codes: raw, levels };
}

function checkEncoded(attribute: EncodedAttribute): void {
  const k = attribute.levels.length;
  if (new Set(attribute.levels).size !== k) {
    throw new RangeError(`attribute ${JSON.stringify(attribute.name)}: levels must be distinct`);
  }
  for (let i = 0; i < attribute.codes.length; i++) {
    const c = attribute.codes[i]!;
    if (!(Number.isInteger(c) && c >= 0 && c < k)) {
      throw new RangeError(
        `attribute ${JSON.stringify(attribute.name)}: code ${c} at row ${i} is not an index into its ${k} levels`,
      );
    }
  }
}

/**
 * Encode the rows' sensitive attributes into intersectional group codes, in one pass per attribute.
 *
 * @example encodeGroups([{ name: "sex", values: ["F", "M", "F"] }]).codes // Uint32Array [0, 1, 0]
 * @throws RangeError when there is no attribute, lengths differ, names repeat, or the product of the level
 *   counts exceeds {@link MAX_GROUPS}.
 */
export function encodeGroups(attributes: readonly SensitiveAttribute[]): GroupEncoding {
  if (attributes.length === 0) throw new RangeError("encodeGroups: at least one sensitive attribute");
  const names = attributes.map((a) => a.name);
  if (new Set(names).size !== names.length) throw new RangeError("encodeGroups: attribute names repeat");
  const n = "codes" in attributes[0]! ? attributes[0].codes.length : attributes[0]!.values.length;
  const columns = attributes.map((attribute) => {
    const length = "codes" in attribute ? attribute.codes.length : attribute.values.length;
    if (length !== n) {
      throw new RangeError(`attribute ${JSON.stringify(attribute.name)} has ${length} rows, expected ${n}`);
    }
    if ("codes" in attribute) {
      checkEncoded(attribute);
      return { codes: attribute.codes, levels: [...attribute.levels] };
    }
    return encodeColumn(attribute);
  });
  const groupCount = columns.reduce((product, c) => product * c.levels.length, 1);
  if (groupCount > MAX_GROUPS) {
    throw new RangeError(`encodeGroups: ${groupCount} intersectional groups, more than ${MAX_GROUPS}`);
  }
  const codes = new Uint32Array(n);
  for (const column of columns) {
    const radix = column.levels.length;
    const c = column.codes;
    for (let i = 0; i < n; i++) codes[i] = codes[i]! * radix + c[i]!;
  }
  const groups: GroupKey[] = [];
  for (let g = 0; g < groupCount; g++) {
    const values: Record<string, string> = {};
    let rest = g;
    for (let a = columns.length - 1; a >= 0; a--) {
      const radix = columns[a]!.levels.length;
      values[names[a]!] = columns[a]!.levels[rest % radix]!;
      rest = Math.floor(rest / radix);
    }
    const ordered: Record<string, string> = {};
    for (const name of names) ordered[name] = values[name]!;
    const label =
      names.length === 1 ? ordered[names[0]!]! : names.map((a) => `${a}=${ordered[a]}`).join(", ");
    groups.push(Object.freeze({ label, values: Object.freeze(ordered) }));
  }
  return Object.freeze({
    attributes: Object.freeze(names),
    levels: Object.freeze(columns.map((c) => Object.freeze(c.levels))),
    groups: Object.freeze(groups),
    codes,
  });
}
