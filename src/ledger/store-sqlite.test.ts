import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openLedgerBackend, verifyLedgerAt } from "./backend.js";
import { storeSuite } from "./store-suite.js";

storeSuite("SQLite", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "warden-store-"));
  const location = { kind: "sqlite", dataDir } as const;
  const store = await openLedgerBackend(location);
  return {
    store,
    reopen: () => openLedgerBackend(location),
    verify: () => verifyLedgerAt(location),
    dispose: async () => {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});
