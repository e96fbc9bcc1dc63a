/**
 * One PostgreSQL writer process of the ledger benchmark (ledger.ts): opens the ledger through the real writer
 * (its own journal folder, its own ledger thread), says it is ready, and on "go" appends its share of entries,
 * then reports and exits.
 */
import { startLedgerThread } from "../ledger/index.js";
import { sampleEntry } from "../ledger/testkit.js";
import { tempDir } from "../testing/index.js";

interface Job {
  readonly url: string;
  readonly schema: string;
  readonly from: number;
  readonly count: number;
  readonly writer: string;
}

process.once("message", async (job: Job) => {
  const dir = tempDir("bench-writer");
  try {
    const writer = await startLedgerThread(dir.path, {
      location: { kind: "postgres", url: job.url, schema: job.schema },
    });
    process.send!("ready");
    await new Promise<void>((resolve) => process.once("message", () => resolve()));
    for (let from = job.from; from < job.from + job.count; from += 10_000) {
      const writes: Promise<void>[] = [];
      for (let i = from; i < Math.min(from + 10_000, job.from + job.count); i++)
        writes.push(writer.write(sampleEntry(i)));
      await Promise.all(writes);
    }
    await writer.close();
    process.send!({ done: true }, () => process.exit(0));
  } catch (error) {
    process.send!({ error: String(error) }, () => process.exit(1));
  } finally {
    dir.remove();
  }
});
