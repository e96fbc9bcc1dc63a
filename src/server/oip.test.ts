/**
 * The Open Inference Protocol route as clients other than Warden's own send it: tritonclient (no Content-Type,
 * or application/octet-stream; raw tensors by the binary tensor data extension), older KServe SDKs (`"id":
 * null`), and the protocol's rules on requested outputs and nested data. The raw bytes are numpy's
 * (fixtures/oip/binary.json, scripts/fixtures/make_oip_binary_fixtures.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { DEMO_XGB, holdoutInstances, loadManifest, REPO_ROOT, startTestServer } from "../testing/index.js";
import { decodeRaw, halfToNumber } from "./oip-binary.js";

interface Fixture {
  readonly tensors: { datatype: string; hex: string; values: unknown[] }[];
  readonly request: {
    json: string;
    json_length: number;
    body_base64: string;
    features: Record<string, unknown>[];
  };
}
const fixture = JSON.parse(readFileSync(join(REPO_ROOT, "fixtures/oip/binary.json"), "utf8")) as Fixture;
const manifest = loadManifest(DEMO_XGB);
const holdout = holdoutInstances(manifest);

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.stop();
});

const URL = "/v2/models/credit-demo/infer";

/** One tensor per feature of holdout row `i`, as JSON. */
function jsonInputs(i: number) {
  return manifest.features
    .filter((f) => !f.sensitive)
    .map((f) => {
      const value = holdout[i]!.features[f.name];
      return {
        name: f.name,
        shape: [1],
        datatype: typeof value === "number" ? "FP64" : typeof value === "boolean" ? "BOOL" : "BYTES",
        data: [value],
      };
    });
}

describe("binary tensor data", () => {
  test("raw tensors of every datatype decode to the values numpy wrote", () => {
    for (const t of fixture.tensors) {
      const decoded = decodeRaw(t.datatype, Buffer.from(t.hex, "hex"), "data");
      assert.deepEqual(decoded, t.values, t.datatype);
      for (const [i, v] of decoded.entries()) {
        if (Object.is(t.values[i], -0)) assert.ok(Object.is(v, -0), `${t.datatype} keeps -0`);
      }
    }
    assert.equal(halfToNumber(0x7c00), Number.POSITIVE_INFINITY);
    assert.ok(Number.isNaN(halfToNumber(0x7e00)));
    // Past ±(2^53 − 1) a 64-bit integer is not exact as a number: it stays text, which validation refuses.
    const big = Buffer.alloc(8);
    big.writeBigInt64LE(2n ** 60n);
    assert.deepEqual(decodeRaw("INT64", big, "data"), [String(2n ** 60n)]);
    assert.throws(
      () => decodeRaw("INT32", Buffer.alloc(6), "inputs[0].data"),
      /not a whole number of elements/,
    );
    assert.throws(
      () => decodeRaw("BYTES", Buffer.from([5, 0, 0, 0, 65]), "inputs[0].data"),
      /ends inside an element/,
    );
  });

  test("a binary request (no Content-Type, as tritonclient sends it) is decided on numpy's values", async () => {
    const body = Buffer.from(fixture.request.body_base64, "base64");
    const response = await server.app.inject({
      method: "POST",
      url: URL,
      payload: body,
      headers: { "inference-header-content-length": String(fixture.request.json_length) },
    });
    assert.equal(response.statusCode, 200, response.body);
    // The answer: `score` was asked for as raw bytes, `decision` as JSON.
    const jsonLength = Number(response.headers["inference-header-content-length"]);
    assert.equal(response.headers["content-type"], "application/octet-stream");
    const raw = response.rawPayload;
    const answer = JSON.parse(raw.subarray(0, jsonLength).toString("utf8"));
    assert.equal(answer.id, "binary-1");
    assert.deepEqual(
      answer.outputs.map((o: { name: string }) => o.name),
      ["score", "decision"],
    );
    const [score, decision] = answer.outputs;
    assert.deepEqual(score.shape, [3]);
    assert.equal(score.parameters.binary_data_size, 24);
    assert.equal(score.data, undefined);
    assert.equal(raw.length, jsonLength + 24);
    const scores = [0, 1, 2].map((i) => raw.readDoubleLE(jsonLength + 8 * i));
    // The same rows sent as JSON decide the same: the ledger recorded numpy's values as the inputs.
    await server.writer.drain();
    for (let i = 0; i < 3; i++) {
      const same = await server.app.inject({
        method: "POST",
        url: "/v1/models/credit-demo/decisions",
        payload: { features: fixture.request.features[i] },
      });
      assert.equal(same.statusCode, 200, same.body);
      assert.equal(same.json().score, scores[i]);
      assert.equal(same.json().decision, decision.data[i]);
    }
    const recorded = [];
    for await (const r of server.ledger.scan()) if (r.body.route === "oip") recorded.push(r.body.inputs);
    assert.deepEqual(recorded.slice(-3), fixture.request.features);
  });

  test("binary_data_output asks for every output as raw bytes, unless an output says otherwise", async () => {
    const response = await server.app.inject({
      method: "POST",
      url: URL,
      payload: {
        parameters: { binary_data_output: true },
        inputs: jsonInputs(3),
        outputs: [
          { name: "probabilities" },
          { name: "decision", parameters: { binary_data: false } },
          { name: "decision_id" },
        ],
      },
    });
    assert.equal(response.statusCode, 200, response.body);
    const jsonLength = Number(response.headers["inference-header-content-length"]);
    const raw = response.rawPayload;
    const answer = JSON.parse(raw.subarray(0, jsonLength).toString("utf8"));
    const [probabilities, decision, id] = answer.outputs;
    assert.equal(probabilities.parameters.binary_data_size, 16);
    assert.deepEqual(decision.data.length, 1);
    assert.equal(decision.parameters, undefined);
    let at = jsonLength;
    const p = decodeRaw("FP64", raw.subarray(at, at + 16), "p");
    at += 16;
    assert.ok(Math.abs((p[0] as number) + (p[1] as number) - 1) < 1e-12);
    const ids = decodeRaw("BYTES", raw.subarray(at, at + id.parameters.binary_data_size), "id");
    assert.equal(at + id.parameters.binary_data_size, raw.length);
    assert.match(String(ids[0]), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    assert.equal(decision.data[0], (p[1] as number) >= manifest.output.threshold ? "bad" : "good");
  });

  test("a binary body that does not hold what its header and parameters say is a 400 naming the part", async () => {
    const body = Buffer.from(fixture.request.body_base64, "base64");
    const send = (payload: Buffer, length: string) =>
      server.app.inject({
        method: "POST",
        url: URL,
        payload,
        headers: { "inference-header-content-length": length },
      });
    const short = await send(body.subarray(0, body.length - 3), String(fixture.request.json_length));
    assert.equal(short.statusCode, 400);
    assert.match(short.json().error, /ends before an input's binary data|ends inside/);
    const extra = await send(Buffer.concat([body, Buffer.from([1, 2])]), String(fixture.request.json_length));
    assert.equal(extra.statusCode, 400);
    assert.equal(extra.json().details[0].field, "body");
    const long = await send(body, String(body.length + 1));
    assert.equal(long.statusCode, 400);
    assert.equal(long.json().details[0].field, "inference-header-content-length");
    const notNumber = await send(body, "ten");
    assert.equal(notNumber.statusCode, 400);
    const cut = await send(body, String(fixture.request.json_length - 1));
    assert.equal(cut.statusCode, 400);
    assert.equal(cut.json().code, "WARDEN_ERR_MALFORMED_JSON");
    assert.match(cut.json().error, /JSON part of the body/);
    // The JSON part changed, the raw data kept: each mistake is a 400 naming its field, found before decoding.
    const raw = body.subarray(fixture.request.json_length);
    const header = JSON.parse(fixture.request.json) as { inputs: Record<string, unknown>[] };
    const edited = (change: (inputs: Record<string, unknown>[]) => void) => {
      const copy = structuredClone(header);
      change(copy.inputs);
      const json = Buffer.from(JSON.stringify(copy));
      return send(Buffer.concat([json, raw]), String(json.length));
    };
    for (const [datatype, field] of [
      [{ toString: 1 }, "inputs[0].datatype"],
      ["__proto__", "inputs[0].datatype"],
      ["toString", "inputs[0].datatype"],
    ] as const) {
      const refused = await edited((inputs) => {
        inputs[0]!.datatype = datatype;
      });
      assert.equal(refused.statusCode, 400, `${JSON.stringify(datatype)}: ${refused.body}`);
      assert.equal(refused.json().details[0].field, field);
    }
    const mismatch = await edited((inputs) => {
      inputs[0]!.shape = [2]; // 3 INT32 rows of data
    });
    assert.equal(mismatch.statusCode, 400);
    assert.deepEqual(mismatch.json().details[0].field, "inputs[0].parameters.binary_data_size");
    assert.match(mismatch.json().details[0].expected, /^8 bytes \(2 INT32 elements of 4 bytes/);
    const tooMany = await edited((inputs) => {
      inputs[0]!.shape = [100_000];
    });
    assert.equal(tooMany.statusCode, 400);
    assert.equal(tooMany.json().details[0].field, "inputs[0].shape");
    assert.match(tooMany.json().details[0].expected, /at most 1000 rows/);
    // Unset data sent as null beside binary data is no data.
    const nullData = await edited((inputs) => {
      for (const input of inputs) input.data = null;
    });
    assert.equal(nullData.statusCode, 200, nullData.body);
  });
});

describe("what other clients send", () => {
  test("JSON without a Content-Type, or as application/octet-stream, is read as JSON on the infer route only", async () => {
    const payload = JSON.stringify({ inputs: jsonInputs(0) });
    for (const headers of [
      {},
      { "content-type": "application/octet-stream" },
      { "content-type": "application/json" },
    ]) {
      const response = await server.app.inject({ method: "POST", url: URL, payload, headers });
      assert.equal(response.statusCode, 200, `${JSON.stringify(headers)}: ${response.body}`);
    }
    const decisions = await server.app.inject({
      method: "POST",
      url: "/v1/models/credit-demo/decisions",
      payload: JSON.stringify({ features: holdout[0]!.features }),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(decisions.statusCode, 415);
    // Defences hold whatever the Content-Type.
    const poisoned = await server.app.inject({
      method: "POST",
      url: URL,
      payload: '{"inputs":[],"__proto__":{"polluted":1}}',
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(poisoned.statusCode, 400);
    assert.equal(poisoned.json().code, "WARDEN_ERR_MALFORMED_JSON");
    const empty = await server.app.inject({
      method: "POST",
      url: URL,
      payload: "",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(empty.statusCode, 400);
    assert.match(empty.json().error, /request body is empty/);
  });

  test('"id": null is no id; an empty outputs list asks for every output; an output named twice is refused', async () => {
    const response = await server.app.inject({
      method: "POST",
      url: URL,
      payload: { id: null, inputs: jsonInputs(1), outputs: [] },
    });
    assert.equal(response.statusCode, 200, response.body);
    // Unset optional fields sent as null (as pydantic-based clients may) are unset.
    const nulls = await server.app.inject({
      method: "POST",
      url: URL,
      payload: {
        id: null,
        parameters: null,
        inputs: jsonInputs(1).map((t) => ({ ...t, parameters: null })),
        outputs: null,
      },
    });
    assert.equal(nulls.statusCode, 200, nulls.body);
    assert.equal(nulls.json().outputs.length, 4);
    const answer = response.json();
    assert.equal("id" in answer, false);
    assert.deepEqual(
      answer.outputs.map((o: { name: string }) => o.name),
      ["probabilities", "score", "decision", "decision_id"],
    );
    const twice = await server.app.inject({
      method: "POST",
      url: URL,
      payload: { inputs: jsonInputs(1), outputs: [{ name: "score" }, { name: "score" }] },
    });
    assert.equal(twice.statusCode, 400);
    assert.deepEqual(twice.json().details[0], {
      field: "outputs[1].name",
      expected: "each output once",
      found: "score again",
    });
  });

  test("integer datatypes hold only their range, and nested data must follow the shape", async () => {
    const inputs = jsonInputs(2);
    const time = inputs.findIndex((t) => t.name === "Time");
    const send = (tensor: object) =>
      server.app.inject({
        method: "POST",
        url: URL,
        payload: { inputs: inputs.map((t, i) => (i === time ? { ...t, ...tensor } : t)) },
      });
    const ok = await send({ datatype: "UINT8", data: [36] });
    assert.equal(ok.statusCode, 200, ok.body);
    const tooBig = await send({ datatype: "INT8", data: [1000] });
    assert.equal(tooBig.statusCode, 400);
    assert.deepEqual(tooBig.json().details[0], {
      field: `inputs[${time}].data[0]`,
      expected: "an integer from -128 to 127 (INT8)",
      found: "1000 (number)",
    });
    const negative = await send({ datatype: "UINT16", data: [-1] });
    assert.equal(negative.statusCode, 400);
    // Nested as the shape says: accepted; ragged (the right count in the wrong lists): refused.
    const rows = [jsonInputs(0), jsonInputs(1)].map((r) => r);
    const nested = rows[0]!.map((t, i) => ({
      ...t,
      shape: [2, 1],
      data: [[t.data[0]], [rows[1]![i]!.data[0]]],
    }));
    const good = await server.app.inject({ method: "POST", url: URL, payload: { inputs: nested } });
    assert.equal(good.statusCode, 200, good.body);
    const ragged = nested.map((t, i) => (i === 0 ? { ...t, data: [[t.data[0]![0], t.data[1]![0]]] } : t));
    const refused = await server.app.inject({ method: "POST", url: URL, payload: { inputs: ragged } });
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().details[0].field, "inputs[0].data");
    // The single [N, F] tensor: the right number of rows and elements, in rows of the wrong lengths.
    const width = manifest.modelFeatures.length;
    const uneven = [Array(width - 1).fill(1), Array(width + 1).fill(1)];
    const single = await server.app.inject({
      method: "POST",
      url: URL,
      payload: { inputs: [{ name: "x", shape: [2, width], datatype: "FP64", data: uneven }] },
    });
    assert.equal(single.statusCode, 400);
    assert.equal(single.json().details[0].field, "inputs[0].data");
  });
});
