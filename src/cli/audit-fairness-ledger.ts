/**
 * `warden audit fairness <manifest> --ledger`: the fairness audit of the decisions a model version recorded in
 * the ledger. Three steps, timed apart by the bench: {@link readLedgerDecisions} (one pass over a snapshot of
 * the ledger: each decision's recorded decision and score, its subject's sensitive attributes — in clear, or
 * read back from the subject vault — and the final label of each decision), {@link groupLedgerDecisions}
 * (attributes into the policy's groups, labels joined to their decisions) and {@link ledgerAuditReport} (the
 * CSV audit's sections and verdicts: selection rates over every decision, error rates over the labelled ones).
 */
import { existsSync } from "node:fs";
import type { FairnessAttribute, Manifest } from "../config/index.js";
import type { FeatureValue } from "../decision/index.js";
import { WardenError } from "../errors/index.js";
import { type EncodedAttribute, encodePolicyAttribute, overallVerdict } from "../fairness/index.js";
import {
  labelFromOutcome,
  labelFromReview,
  labelledDecisionId,
  preferLabel,
  type RecordFilter,
  type SnapshotReader,
  snapshot,
  type TrainingLabel,
} from "../feedback/index.js";
import type { LedgerRecord } from "../ledger/index.js";
import {
  loadOrCreatePrivacyKey,
  openSubjectVault,
  type PrivacyKey,
  protectedStorage,
  type SubjectVault,
} from "../privacy/index.js";
import { decryptSubject, parseBox, verifySubjectClaim } from "../privacy/seal.js";
import {
  auditSections,
  type FairnessAuditReport,
  type LedgerAuditData,
  overallRates,
  reportHead,
} from "./audit-fairness.js";

/** The label rule, as the report states it. */
export const LEDGER_LABEL_RULE =
  "the decision's latest outcome or reviewer's final decision, whichever the ledger recorded last (warden export training's rule), whenever it was recorded";

/** Why a decision's subject could not be read (it is then left out of every figure, and counted). */
export const UNAVAILABLE_REASONS = {
  purged: "purged by retention",
  missing: "missing from the vault",
  pseudonymised: "pseudonymised (not reversible)",
  mismatch: "vault values do not match the ledger's commitments",
} as const;
export type UnavailableReason = keyof typeof UNAVAILABLE_REASONS;

/** Where protected subjects are read back from: the data folder's vault and encryption key. */
export interface SubjectSource {
  readonly dataDir: string;
  readonly encryptionKeyFile: string;
}

/** Reads protected subjects back, opening the vault and the key only when a decision needs them. */
class SubjectReader {
  readonly #source: SubjectSource | undefined;
  #vault: SubjectVault | undefined;
  #key: PrivacyKey | undefined;

  constructor(source: SubjectSource | undefined) {
    this.#source = source;
  }

  #openVault(): SubjectVault {
    if (this.#vault !== undefined) return this.#vault;
    if (this.#source === undefined) {
      throw new WardenError(
        "WARDEN_ERR_VAULT",
        "the ledger holds protected subjects, and no data folder was given to read them back from",
      );
    }
    // Must exist: a missing vault is a wrong --data-dir, not subjects to count as unavailable.
    this.#vault = openSubjectVault(this.#source.dataDir, { mustExist: true });
    return this.#vault;
  }

  #openKey(): PrivacyKey {
    if (this.#key !== undefined) return this.#key;
    const file = this.#source!.encryptionKeyFile;
    // Never create a key here: a new key decrypts nothing.
    if (!existsSync(file)) {
      throw new WardenError(
        "WARDEN_ERR_PRIVACY_KEY",
        `no subject encryption key at ${file}: encrypted subjects are read back with the key the server used (--encryption-key)`,
        {
          details: [
            {
              field: "--encryption-key",
              expected: "the server's subject encryption key",
              found: "no such file",
            },
          ],
        },
      );
    }
    this.#key = loadOrCreatePrivacyKey("encryption", file);
    return this.#key;
  }

  /** The clear subject of a protected decision, or why it cannot be read. */
  read(record: LedgerRecord, storage: string): Record<string, FeatureValue> | UnavailableReason {
    const committed = (record.body.subject ?? {}) as Record<string, unknown>;
    // Nothing was committed: an empty subject, and no vault row.
    if (Object.keys(committed).length === 0) return {};
    const row = this.#openVault().get(record.id);
    if (row === undefined) return "missing";
    if (row.payload === null || row.salt === null) return "purged";
    if (storage !== "encrypted") return "pseudonymised";
    const key = this.#openKey();
    const subject = decryptSubject(key.bytes(), key.id, record.id, parseBox(record.id, row.payload));
    return verifySubjectClaim(committed, row.salt, subject).ok ? subject : "mismatch";
  }

  close(): void {
    this.#vault?.close();
  }
}

/** What one pass over the ledger gathers for an audit. */
export interface LedgerDecisions {
  /** Decisions of the version in the range. */
  readonly decisions: number;
  readonly otherVersions: number;
  /** Per reason, decisions whose subject could not be read (not in the arrays below). */
  readonly unavailable: Readonly<Record<string, number>>;
  /** The decisions audited, in ledger order: id, attribute values, decision (1: favourable), P(favourable). */
  readonly ids: readonly string[];
  readonly values: ReadonlyMap<string, readonly FeatureValue[]>;
  readonly yPred: Uint8Array;
  readonly scores: Float64Array;
  /** The final label of every decision of the model that has one (any version, any time). */
  readonly labels: ReadonlyMap<string, TrainingLabel>;
}

/**
 * One pass over the ledger's records committed when it starts: the version's decisions in the range and their
 * subjects, and every label of the model's decisions (labels come after their decisions, whenever).
 *
 * @throws WardenError WARDEN_ERR_VAULT, WARDEN_ERR_PRIVACY_KEY when protected subjects cannot be read at all.
 */
export async function readLedgerDecisions(
  source: SnapshotReader,
  manifest: Manifest,
  attributes: readonly FairnessAttribute[],
  range: Pick<RecordFilter, "since" | "until">,
  subjects?: SubjectSource,
): Promise<LedgerDecisions> {
  const favourable = manifest.output.favorable_label;
  const favourableIsPositive = manifest.output.favorableIndex === manifest.output.positiveIndex;
  const names = attributes.map((a) => a.name);
  const columns = names.map(() => [] as FeatureValue[]);
  const ids: string[] = [];
  const yPred: number[] = [];
  const scores: number[] = [];
  const labels = new Map<string, TrainingLabel>();
  const unavailable: Record<string, number> = {};
  let decisions = 0;
  let otherVersions = 0;
  const reader = new SubjectReader(subjects);
  try {
    const records = await snapshot(source);
    for await (const record of records()) {
      if (record.model !== manifest.name) continue;
      if (record.kind !== "decision") {
        const label = labelFromOutcome(record) ?? labelFromReview(record);
        const id = label === undefined ? undefined : labelledDecisionId(record);
        if (id !== undefined) labels.set(id, preferLabel(labels.get(id), label!));
        continue;
      }
      if (range.since !== undefined || range.until !== undefined) {
        const time = Date.parse(record.time);
        if (range.since !== undefined && !(time >= range.since)) continue;
        if (range.until !== undefined && !(time < range.until)) continue;
      }
      if (record.version !== manifest.version) {
        otherVersions++;
        continue;
      }
      decisions++;
      const storage = protectedStorage(record);
      const subject =
        storage === undefined
          ? ((record.body.subject ?? {}) as Record<string, FeatureValue>)
          : reader.read(record, storage);
      if (typeof subject === "string") {
        const reason = UNAVAILABLE_REASONS[subject];
        unavailable[reason] = (unavailable[reason] ?? 0) + 1;
        continue;
      }
      const score = (record.body.outputs as { score?: unknown } | undefined)?.score;
      ids.push(record.id);
      yPred.push(record.body.decision === favourable ? 1 : 0);
      scores.push(typeof score === "number" ? (favourableIsPositive ? score : 1 - score) : Number.NaN);
      for (let j = 0; j < names.length; j++) columns[j]!.push(subject[names[j]!] ?? null);
    }
  } finally {
    reader.close();
  }
  return {
    decisions,
    otherVersions,
    unavailable,
    ids,
    values: new Map(names.map((name, j) => [name, columns[j]!])),
    yPred: Uint8Array.from(yPred),
    scores: Float64Array.from(scores),
    labels,
  };
}

/** The decisions in the policy's groups, with the labelled ones apart. */
export interface GroupedDecisions {
  readonly encoded: readonly EncodedAttribute[];
  readonly yPred: Uint8Array;
  /** The labelled decisions: their positions among all, their labels (1: favourable), decisions, scores. */
  readonly labelled: {
    readonly index: Uint32Array;
    readonly encoded: readonly EncodedAttribute[];
    readonly yTrue: Uint8Array;
    readonly yPred: Uint8Array;
    readonly scores: Float64Array;
  };
  /** Labels that are not one of the model's labels (their decisions count as unlabelled). */
  readonly labelsIgnored: number;
}

/** Put each decision's attributes into the policy's groups and join the labels. */
export function groupLedgerDecisions(
  manifest: Manifest,
  attributes: readonly FairnessAttribute[],
  read: LedgerDecisions,
): GroupedDecisions {
  const encoded = attributes.map((a) => encodePolicyAttribute(a, read.values.get(a.name)!));
  const known = new Set<string | number>(manifest.output.labels ?? []);
  const favourable = manifest.output.favorable_label;
  const n = read.ids.length;
  const index: number[] = [];
  const truth: number[] = [];
  let ignored = 0;
  for (let i = 0; i < n; i++) {
    const label = read.labels.get(read.ids[i]!);
    if (label === undefined) continue;
    if (!known.has(label.value)) {
      ignored++;
      continue;
    }
    index.push(i);
    truth.push(label.value === favourable ? 1 : 0);
  }
  const at = Uint32Array.from(index);
  const subset = (a: EncodedAttribute): EncodedAttribute => {
    const codes = new Uint32Array(at.length);
    for (let k = 0; k < at.length; k++) codes[k] = a.codes[at[k]!]!;
    // The same levels: the labelled groups are the same groups, in the same order.
    return { name: a.name, codes, levels: a.levels };
  };
  const yPred = new Uint8Array(at.length);
  const scores = new Float64Array(at.length);
  for (let k = 0; k < at.length; k++) {
    yPred[k] = read.yPred[at[k]!]!;
    scores[k] = read.scores[at[k]!]!;
  }
  return {
    encoded,
    yPred: read.yPred,
    labelled: { index: at, encoded: encoded.map(subset), yTrue: Uint8Array.from(truth), yPred, scores },
    labelsIgnored: ignored,
  };
}

/**
 * The report: the CSV audit's sections and verdicts, demographic parity over every decision audited, equal
 * opportunity and equalized odds over the labelled ones.
 *
 * @throws WardenError WARDEN_ERR_LEDGER when no decision of the version in the range can be audited.
 */
export function ledgerAuditReport(
  manifest: Manifest,
  attributes: readonly FairnessAttribute[],
  read: LedgerDecisions,
  grouped: GroupedDecisions,
  meta: { ledger: string; since?: number | undefined; until?: number | undefined },
  bootstrap: { resamples: number; seed: number },
): FairnessAuditReport {
  const from = meta.since === undefined ? null : new Date(meta.since).toISOString();
  const to = meta.until === undefined ? null : new Date(meta.until).toISOString();
  const unavailableCount = Object.values(read.unavailable).reduce((a, b) => a + b, 0);
  if (read.ids.length === 0) {
    throw new WardenError(
      "WARDEN_ERR_LEDGER",
      `nothing to audit: ${meta.ledger} holds ${read.decisions} decisions of ${manifest.name} ${manifest.version} from ${from ?? "the start"} to ${to ?? "now"}` +
        (unavailableCount > 0
          ? `, and none of their subjects can be read (${unavailableCount} unavailable)`
          : "") +
        (read.otherVersions > 0 ? ` (${read.otherVersions} decisions of other versions)` : ""),
    );
  }
  const l = grouped.labelled;
  const data: LedgerAuditData = {
    source: "ledger",
    ledger: meta.ledger,
    from,
    to,
    decisions: read.decisions,
    audited: read.ids.length,
    labelled: l.yTrue.length,
    subjects_unavailable: { count: unavailableCount, reasons: read.unavailable },
    labels_ignored: grouped.labelsIgnored,
    other_versions: read.otherVersions,
    label_rule: LEDGER_LABEL_RULE,
  };
  const audits = auditSections(
    manifest,
    attributes,
    // Labels are not used for the selection figures: y = 0 throughout.
    { encoded: grouped.encoded, yTrue: new Uint8Array(grouped.yPred.length), yPred: grouped.yPred },
    bootstrap,
    { encoded: l.encoded, yTrue: l.yTrue, yPred: l.yPred, scores: l.scores },
  );
  const labelledRates = overallRates(l.yTrue, l.yPred);
  const allRates = overallRates(new Uint8Array(grouped.yPred.length), grouped.yPred);
  const { kind, model, version, manifest_sha256, ...rest } = reportHead(manifest, bootstrap);
  return {
    kind,
    model,
    version,
    manifest_sha256,
    data,
    ...rest,
    overall: {
      accuracy: labelledRates.accuracy,
      selection_rate: allRates.selection_rate,
      base_rate: labelledRates.base_rate,
    },
    audits,
    verdict: overallVerdict(audits),
  };
}
