/** Helpers shared by the ledger tests; not part of the ledger's API. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { LedgerEntry } from "./types.js";

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "warden-ledger-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A realistic decision entry (its canonical JSON is about 750 bytes), distinct for each `n`: the id is a
 * UUIDv7-shaped string ending in `n`, so ids sort in `n` order.
 */
export function sampleEntry(n: number, overrides: Partial<LedgerEntry> = {}): LedgerEntry {
  return {
    id: `0190c9a2-7b3e-7def-8abc-${String(n).padStart(12, "0")}`,
    kind: "decision",
    time: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
    model: "credit",
    version: "1.0.0",
    artifact_sha256: "5f".repeat(32),
    body: {
      inputs: {
        Age: 20 + (n % 50),
        Income: 1234.5 + n,
        Employment: "salaried",
        DebtRatio: 0.31,
        Dependents: n % 4,
        Housing: "rent",
        Purpose: "car",
        DurationMonths: 24,
        Savings: 1200.75,
        History: "good",
      },
      outputs: { probabilities: [0.1234567, 0.8765433], label: "approve" },
      decision: { outcome: n % 3 === 0 ? "deny" : "approve", threshold: 0.5, reasons: ["Income", "History"] },
      explanation: { method: "linear", attributions: { Age: 0.012, Income: 0.231, DebtRatio: -0.112 } },
      latency_ms: 1.234,
      client_id: "client-42",
      request_id: `req-${n}`,
    },
    ...overrides,
  };
}
