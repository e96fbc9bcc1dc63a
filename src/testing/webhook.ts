import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A webhook receiver on 127.0.0.1 for tests: records every request's JSON body. */
export interface WebhookReceiver {
  readonly url: string;
  /** Every body received, in order of arrival. */
  readonly bodies: unknown[];
  /** Resolves once at least `count` requests have arrived. */
  received(count: number): Promise<unknown[]>;
  /** The status of each request by its number (0-based); 200 by default, "hang" never answers. */
  answer: (n: number) => number | "hang";
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const bodies: unknown[] = [];
  const waiting: { count: number; resolve: (b: unknown[]) => void }[] = [];
  const hanging = new Set<ServerResponse>();
  const receiver: WebhookReceiver = {
    url: "",
    bodies,
    answer: () => 200,
    received(count) {
      if (bodies.length >= count) return Promise.resolve(bodies);
      return new Promise((resolve) => waiting.push({ count, resolve }));
    },
    async close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      const n = bodies.length;
      bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      for (const w of [...waiting]) {
        if (bodies.length >= w.count) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(bodies);
        }
      }
      const status = receiver.answer(n);
      if (status === "hang") {
        hanging.add(response);
        return;
      }
      response.writeHead(status, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  (receiver as { url: string }).url = `http://127.0.0.1:${port}/alerts`;
  return receiver;
}
