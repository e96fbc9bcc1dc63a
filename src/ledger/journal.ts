/**
 * The ledger's write-ahead journal: what makes a decision durable before its answer is sent, without waiting
 * for the hash-chained SQLite commit.
 *
 * The serving thread appends each event-loop turn's entries to `<dataDir>/ledger-journal/<generation>.log`
 * with one write (and, when the ledger is `synchronous: full`, one fdatasync) and acknowledges them; the
 * ledger thread then commits the same entries, in the same order, to the ledger. A segment is deleted once
 * every entry in it is committed. After a crash, the next start replays what the segments still hold: entries
 * whose id is not yet in the ledger are appended, in journal order, before anything new.
 *
 * A line is `id TAB kind TAB time TAB model TAB version TAB canonical-json LF`. The five leading fields are
 * the indexed columns, repeated so the ledger thread need not parse the JSON; replay checks that they agree
 * with the JSON. Canonical JSON never holds a raw tab or line feed, and the fields are refused if they do.
 */
import {
  closeSync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { WardenError } from "../errors/index.js";
import { canonicalJson } from "./hash.js";
import type { PreparedEntry } from "./sqlite-store.js";

/** The journal's folder inside a data directory. */
export function journalDir(dataDir: string): string {
  return join(dataDir, "ledger-journal");
}

const SEGMENT_NAME = /^(\d{10})\.log$/;
/** A segment is closed and a new one begun once it holds this many bytes. */
const SEGMENT_BYTES = 8 * 1024 * 1024;
const FIELD_BREAK = /[\t\n\r]/;

function segmentName(generation: number): string {
  return `${String(generation).padStart(10, "0")}.log`;
}

/**
 * One entry as a journal line (with its line feed).
 *
 * @throws WardenError WARDEN_ERR_LEDGER when an indexed field holds a tab or line break.
 */
export function journalLine(entry: PreparedEntry): string {
  const { id, kind, time, model, version } = entry;
  for (const [field, value] of [
    ["id", id],
    ["time", time],
    ["model", model],
    ["version", version],
  ] as const) {
    if (FIELD_BREAK.test(value)) {
      throw new WardenError("WARDEN_ERR_LEDGER", `invalid ledger entry ${JSON.stringify(id)}`, {
        details: [{ field, expected: "text without tabs or line breaks", found: JSON.stringify(value) }],
      });
    }
  }
  return `${id}\t${kind}\t${time}\t${model}\t${version}\t${entry.canonical}\n`;
}

/** Split one line (without its line feed) into an entry, or undefined when it does not have six fields. */
function splitLine(line: string): PreparedEntry | undefined {
  const cuts: number[] = [];
  let at = -1;
  for (let i = 0; i < 5; i++) {
    at = line.indexOf("\t", at + 1);
    if (at < 0) return undefined;
    cuts.push(at);
  }
  return {
    id: line.slice(0, cuts[0]),
    kind: line.slice(cuts[0]! + 1, cuts[1]),
    time: line.slice(cuts[1]! + 1, cuts[2]),
    model: line.slice(cuts[2]! + 1, cuts[3]),
    version: line.slice(cuts[3]! + 1, cuts[4]),
    canonical: line.slice(cuts[4]! + 1),
  };
}

/**
 * An attachment line: `V TAB json LF`, written just before its entry's line. It carries a protected subject's
 * vault row (privacy/), which the ledger thread stores before it commits the entry. Entry lines start with
 * their id (a UUID), never with `V\t`.
 */
export function attachmentLine(vaultJson: string): string {
  // One line: JSON text never holds a raw line feed, unless it is not JSON text at all.
  if (vaultJson.includes("\n")) throw new Error("a vault row must be one line of JSON text");
  return `V\t${vaultJson}\n`;
}

/** Journal text parsed: the entries, and the vault rows that travel with them. */
export interface JournalBatch {
  readonly entries: PreparedEntry[];
  readonly vaultRows: unknown[];
}

/**
 * The entries of journal text written by this process (trusted: the ledger thread reads what the serving
 * thread just wrote), appended to `into` when given (several appends' texts parsed one after another).
 */
export function parseJournalText(
  text: string,
  into: JournalBatch = { entries: [], vaultRows: [] },
): JournalBatch {
  const { entries, vaultRows } = into;
  let start = 0;
  for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
    if (text.startsWith("V\t", start)) vaultRows.push(JSON.parse(text.slice(start + 2, end)));
    else {
      const entry = splitLine(text.slice(start, end));
      if (entry === undefined) throw new WardenError("WARDEN_ERR_LEDGER", "malformed journal text");
      entries.push(entry);
    }
    start = end + 1;
  }
  return into;
}

/** What a journal folder holds after a stop: the entries to replay, in order. */
export interface JournalContents {
  /** Segment files, oldest first (absolute paths). */
  readonly segments: readonly string[];
  readonly entries: readonly PreparedEntry[];
  /** Vault rows that travelled with the entries (see {@link attachmentLine}). */
  readonly vaultRows: readonly unknown[];
  /**
   * Lines that are not a valid entry (fields disagree with the JSON, or the JSON is not canonical): they were
   * damaged on disk, and are skipped. A final line without its line feed (a write cut short by a power loss) is
   * not counted: it was never acknowledged.
   */
  readonly damaged: number;
}

/** Read every segment in `dir` (a missing folder holds nothing), checking each line. */
export function readJournal(dir: string): JournalContents {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => SEGMENT_NAME.test(n));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return { segments: [], entries: [], vaultRows: [], damaged: 0 };
    }
    throw error;
  }
  names.sort();
  const entries: PreparedEntry[] = [];
  const vaultRows: unknown[] = [];
  let damaged = 0;
  for (const name of names) {
    const text = readFileSync(join(dir, name), "utf8");
    const lines = text.split("\n");
    lines.pop(); // after the last line feed: empty, or a torn last write
    for (const line of lines) {
      if (line.startsWith("V\t")) {
        try {
          vaultRows.push(JSON.parse(line.slice(2)));
        } catch {
          damaged += 1;
        }
        continue;
      }
      const entry = splitLine(line);
      if (entry !== undefined && agrees(entry)) entries.push(entry);
      else damaged += 1;
    }
  }
  return { segments: names.map((n) => join(dir, n)), entries, vaultRows, damaged };
}

/** Whether a line's fields agree with its JSON, and the JSON is canonical (so replay stores what was hashed). */
function agrees(entry: PreparedEntry): boolean {
  try {
    const parsed = JSON.parse(entry.canonical) as Record<string, unknown>;
    return (
      typeof parsed === "object" &&
      parsed !== null &&
      parsed.id === entry.id &&
      parsed.kind === entry.kind &&
      parsed.time === entry.time &&
      parsed.model === entry.model &&
      parsed.version === entry.version &&
      canonicalJson(parsed) === entry.canonical
    );
  } catch {
    return false;
  }
}

/**
 * The serving thread's end of the journal: appends whole turns, rotates segments, and deletes a segment once
 * the ledger thread reports its last batch committed.
 */
export class JournalWriter {
  readonly #dir: string;
  readonly #sync: boolean;
  #generation: number;
  #fd: number;
  #bytes = 0;
  /** Closed segments and the last batch each holds. */
  readonly #retired: { path: string; lastBatch: number }[] = [];

  /**
   * Start a new segment after any that exist (those belong to a replay that has finished, or are deleted by
   * the caller).
   *
   * @param sync fdatasync after every append (the ledger's `synchronous: full`).
   */
  constructor(dir: string, sync: boolean) {
    this.#dir = dir;
    this.#sync = sync;
    mkdirSync(dir, { recursive: true });
    const existing = readdirSync(dir)
      .map((n) => SEGMENT_NAME.exec(n)?.[1])
      .filter((g): g is string => g !== undefined)
      .map(Number);
    this.#generation = existing.length === 0 ? 1 : Math.max(...existing) + 1;
    this.#fd = this.#open();
  }

  #open(): number {
    return openSync(join(this.#dir, segmentName(this.#generation)), "a");
  }

  /**
   * Append one batch's lines. When this returns, the lines are in the operating system's hands (and on the
   * disk, with `sync`): they survive a crash of this process. Returns the bytes written, in a buffer of their
   * own (never a slice of a shared pool), so that the caller may hand them to another thread and transfer them.
   *
   * @throws Error from the file system (disk full, I/O error); nothing is acknowledged then.
   */
  append(text: string, batch: number): Uint8Array {
    const encoded = Buffer.from(text, "utf8");
    // Short texts land in Node's shared buffer pool: copy those into a buffer of their own.
    const bytes =
      encoded.byteOffset === 0 && encoded.byteLength === encoded.buffer.byteLength
        ? encoded
        : new Uint8Array(encoded);
    let written = 0;
    while (written < bytes.length) written += writeSync(this.#fd, bytes, written, bytes.length - written);
    if (this.#sync) fdatasyncSync(this.#fd);
    this.#bytes += bytes.length;
    if (this.#bytes >= SEGMENT_BYTES) {
      closeSync(this.#fd);
      this.#retired.push({ path: join(this.#dir, segmentName(this.#generation)), lastBatch: batch });
      this.#generation += 1;
      this.#bytes = 0;
      this.#fd = this.#open();
    }
    return bytes;
  }

  /** Every batch up to `batch` is committed: delete the segments that hold nothing later. */
  committed(batch: number): void {
    while (this.#retired.length > 0 && this.#retired[0]!.lastBatch <= batch) {
      const { path } = this.#retired.shift()!;
      unlinkSync(path);
    }
  }

  /**
   * Close the current segment. With `everythingCommitted`, delete every segment (the ledger holds all of it);
   * otherwise keep them for the next start to replay.
   */
  close(everythingCommitted: boolean): void {
    closeSync(this.#fd);
    if (!everythingCommitted) return;
    for (const { path } of this.#retired.splice(0)) unlinkSync(path);
    unlinkSync(join(this.#dir, segmentName(this.#generation)));
  }
}

/** Delete replayed segments (every entry in them is now in the ledger). */
export function removeSegments(segments: readonly string[]): void {
  for (const path of segments) unlinkSync(path);
}

/**
 * How many journaled entries of `dataDir` are not in its ledger yet (left by a run that stopped without
 * committing them; the next start commits them). Reads the journal and looks each id up with `has`.
 */
export function uncommittedJournalEntries(dataDir: string, has: (id: string) => boolean): number {
  return readJournal(journalDir(dataDir)).entries.filter((e) => !has(e.id)).length;
}

/**
 * Claim the journal folder for this process: `<dir>/LOCK` holds the owner's pid. Two processes sharing a data
 * folder would interleave one journal and replay each other's entries; the second is refused instead. A lock
 * left by a process that no longer runs (a crash) is taken over. Returns the release function.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when a running process holds the folder.
 */
export function lockJournal(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "LOCK");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: "wx" });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // Already gone.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(readFileSync(path, "utf8"), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
      throw new WardenError("WARDEN_ERR_LEDGER", `the data folder ${dir} is in use by process ${owner}`, {
        details: [
          {
            field: "data_dir",
            expected: "a data folder no other running Warden uses (each process keeps its own journal)",
            found: `${path} held by process ${owner}`,
            fix: "stop the other server, or give this one its own --data-dir",
          },
        ],
      });
    }
    // Left by a process that is gone (or by this one, not released): take it over.
    unlinkSync(path);
  }
  throw new WardenError("WARDEN_ERR_LEDGER", `cannot lock the ledger journal in ${dir}`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
