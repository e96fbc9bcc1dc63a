/**
 * ISO-8601 times as the feedback routes and the export commands accept them: a date (`2025-03-01`, read as
 * midnight UTC) or a date-time with a zone (`2025-03-01T12:30:00Z`, `2025-03-01T14:30:00.250+02:00`).
 * A date-time without a zone is refused: it would mean a different instant on every machine.
 */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** What an accepted time looks like, for error messages. */
export const ISO_TIME_EXPECTED =
  "an ISO-8601 date (2025-03-01) or date-time with a zone (2025-03-01T12:30:00Z, 2025-03-01T14:30:00+02:00)";

/** Milliseconds since the epoch, or undefined when `text` is not such a time (or not a real calendar day). */
export function parseIsoTime(text: string): number | undefined {
  const m = ISO.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  // Date.parse rolls 2025-02-30 over to March 2; a real day is one that survives the round trip.
  const midnight = new Date(Date.UTC(year, month - 1, day));
  if (
    midnight.getUTCFullYear() !== year ||
    midnight.getUTCMonth() !== month - 1 ||
    midnight.getUTCDate() !== day
  ) {
    return undefined;
  }
  if (h === undefined) return midnight.getTime();
  if (Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 59) return undefined;
  if (zone !== "Z") {
    const [zh, zm] = zone!.slice(1).split(":").map(Number) as [number, number];
    if (zh > 23 || zm > 59) return undefined;
  }
  const ms = fraction === undefined ? "" : `.${fraction.slice(0, 3).padEnd(3, "0")}`;
  const value = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s ?? "00"}${ms}${zone}`);
  return Number.isFinite(value) ? value : undefined;
}
