import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { BACKGROUND_NICE } from "./thread-priority.js";

/** A thread's nice value as the kernel reports it (field 19 of /proc/<pid>/task/<tid>/stat). */
function niceOf(statPath: string): number {
  const stat = readFileSync(statPath, "utf8");
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[19 - 3]);
}

test("lowerThisThread lowers the calling thread alone: a background thread runs at nice 10, the serving thread as before", {
  skip: process.platform !== "linux" ? "thread priorities are per thread on Linux only" : false,
}, async () => {
  const before = niceOf("/proc/thread-self/stat");
  const url = new URL("./thread-priority.js", import.meta.url).href;
  const worker = new Worker(
    `const { parentPort } = require("node:worker_threads");
     const { readlinkSync } = require("node:fs");
     import(${JSON.stringify(url)}).then(({ lowerThisThread }) => {
       const lowered = lowerThisThread();
       parentPort.postMessage({ lowered, self: readlinkSync("/proc/thread-self") });
       parentPort.once("message", () => process.exit(0));
     });`,
    { eval: true },
  );
  const reply = await new Promise<{ lowered: boolean; self: string }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  try {
    assert.equal(reply.lowered, true);
    assert.equal(niceOf(`/proc/${reply.self}/stat`), Math.max(before, BACKGROUND_NICE));
    assert.equal(
      niceOf("/proc/thread-self/stat"),
      before,
      "the calling process's other threads are not lowered",
    );
  } finally {
    worker.postMessage("exit");
    await new Promise((resolve) => worker.once("exit", resolve));
  }
});
