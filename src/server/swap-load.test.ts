import assert from "node:assert/strict";
import { test } from "node:test";
import { DEMO_REQUEST } from "../cli/paths.js";
import { demoVersion, startTestServer, tempDir } from "../testing/index.js";

/**
 * Real HTTP load (concurrent fetch to 127.0.0.1, bounded in count) while versions are registered, promoted,
 * rolled back and unloaded: not one request may fail.
 */
test("zero failed requests while versions swap under load", async () => {
  const dir = tempDir("swap");
  const server = await startTestServer();
  const MODEL = `${server.url}/v1/admin/models/credit-demo`;
  const admin = async (method: string, path: string, body: unknown = {}) => {
    const response = await fetch(`${MODEL}${path}`, {
      method,
      headers: { "content-type": "application/json", "x-warden-actor": "swap-test" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  };
  const CONNECTIONS = 16;
  const MAX_REQUESTS = 20_000;
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  const errors: string[] = [];
  let swapping = true;
  const body = JSON.stringify(DEMO_REQUEST);
  const client = async (c: number) => {
    while ((swapping || sent < 400) && sent < MAX_REQUESTS) {
      sent++;
      try {
        const response = await fetch(`${server.url}/v1/models/credit-demo/decisions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: body.replace("{", `{"subject_id":"c${c}-${sent}",`),
        });
        await response.arrayBuffer();
        if (response.ok) ok++;
        else {
          non2xx++;
          errors.push(`${response.status}`);
        }
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  };
  try {
    const load = Promise.all(Array.from({ length: CONNECTIONS }, (_, c) => client(c)));
    const swaps: [string, string, unknown?][] = [
      ["POST", "/versions", { manifest: demoVersion(dir.path, "2.0.0"), alias: "candidate" }],
      ["PUT", "/policy", { policy: "canary", canary_percent: 50 }],
      ["POST", "/promote"],
      ["POST", "/versions/1.0.0/unload"],
      ["POST", "/rollback"], // loads 1.0.0 again
      ["POST", "/versions/2.0.0/unload"],
      ["POST", "/versions", { manifest: demoVersion(dir.path, "3.0.0"), alias: "candidate" }],
      ["PUT", "/policy", { policy: "shadow" }],
      ["POST", "/promote"],
      ["POST", "/versions/1.0.0/unload"],
    ];
    for (const [method, path, payload] of swaps) {
      // Let requests flow on the state just set before the next change.
      const mark = sent;
      while (sent < mark + 100 && sent < MAX_REQUESTS) await new Promise((r) => setImmediate(r));
      await admin(method, path, payload);
    }
    swapping = false;
    await load;
    await server.app.wardenShadowsSettled();
    await server.writer.drain();
    const byVersion = new Map<string, number>();
    for await (const r of server.ledger.scan()) {
      if (r.kind === "decision") byVersion.set(r.version, (byVersion.get(r.version) ?? 0) + 1);
    }
    console.log(
      `swap under load: ${sent} requests, ${ok} ok, ${non2xx} non-2xx, ${errors.length} errors; decisions by version ${JSON.stringify(Object.fromEntries(byVersion))}`,
    );
    assert.equal(non2xx, 0, errors.slice(0, 5).join("; "));
    assert.deepEqual(errors, []);
    assert.equal(ok, sent);
    assert.deepEqual([...byVersion.keys()].sort(), ["1.0.0", "2.0.0", "3.0.0"]);
    const total = [...byVersion.values()].reduce((a, b) => a + b, 0);
    assert.equal(total, ok, "every answered request is one recorded decision");
    const loaded = server.registry.list().map((m) => m.manifest.version);
    assert.deepEqual(loaded, ["3.0.0"], "old versions were unloaded");
  } finally {
    swapping = false;
    await server.stop();
    dir.remove();
  }
});
