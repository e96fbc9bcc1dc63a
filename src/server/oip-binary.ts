/**
 * The Open Inference Protocol's binary tensor data extension (`binary_tensor_data`, as Triton defines it), for
 * clients that send tensors as raw bytes (tritonclient does by default):
 *
 * - a request whose `Inference-Header-Content-Length` header is set carries that many bytes of JSON, then the
 *   raw data of each input whose `parameters.binary_data_size` is set, in the order of `inputs`;
 * - a request may ask for outputs as raw bytes (`parameters.binary_data_output` on the request, or
 *   `parameters.binary_data` on a requested output): the answer is then JSON of the length its
 *   `Inference-Header-Content-Length` header gives, followed by those outputs' bytes.
 *
 * Raw data is row-major and little-endian: BOOL one byte per element, the integer and float types their width
 * (FP16 as IEEE 754 half precision), BYTES each element as a 4-byte little-endian length and then its bytes.
 * Binary inputs are decoded into `data` lists here, so they are validated like JSON ones afterwards.
 */
import type { IncomingHttpHeaders } from "node:http";
import { describeValue, type FieldProblem, WardenError } from "../errors/index.js";

/** The header that marks a binary request or answer. */
export const HEADER_LENGTH = "inference-header-content-length";

/** Bytes per element of the fixed-width datatypes. */
const WIDTH: Readonly<Record<string, number>> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
};

function invalid(message: string, details: FieldProblem[]): WardenError {
  return new WardenError("WARDEN_ERR_BAD_REQUEST", message, { details });
}

/** IEEE 754 half precision → number (exact: every half is a double). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * The elements of one tensor's raw data. A 64-bit integer outside ±(2^53 − 1) becomes a string, which the
 * datatype check then refuses by name.
 */
export function decodeRaw(
  datatype: string,
  bytes: Buffer,
  field: string,
  maxElements = Number.POSITIVE_INFINITY,
): unknown[] {
  if (datatype === "BYTES") {
    const out: unknown[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (out.length >= maxElements) {
        throw invalid("binary BYTES data holds more elements than its shape", [
          { field, expected: `${maxElements} elements`, found: "more" },
        ]);
      }
      if (at + 4 > bytes.length) {
        throw invalid("binary BYTES data ends inside an element's length", [
          {
            field,
            expected: "each element as a 4-byte little-endian length, then that many bytes",
            found: `${bytes.length - at} bytes left`,
          },
        ]);
      }
      const length = bytes.readUInt32LE(at);
      at += 4;
      if (at + length > bytes.length) {
        throw invalid("binary BYTES data ends inside an element", [
          {
            field,
            expected: `${length} bytes for element ${out.length}`,
            found: `${bytes.length - at} bytes left`,
          },
        ]);
      }
      out.push(bytes.toString("utf8", at, at + length));
      at += length;
    }
    return out;
  }
  const width = Object.hasOwn(WIDTH, datatype) ? WIDTH[datatype] : undefined;
  if (width === undefined) {
    throw invalid(`no binary form for datatype ${datatype}`, [
      { field, expected: "a datatype of the protocol", found: describeValue(datatype) },
    ]);
  }
  if (bytes.length % width !== 0) {
    throw invalid(`binary ${datatype} data is not a whole number of elements`, [
      { field, expected: `a multiple of ${width} bytes (${datatype})`, found: `${bytes.length} bytes` },
    ]);
  }
  const count = bytes.length / width;
  const out = new Array<unknown>(count);
  for (let i = 0; i < count; i++) {
    const at = i * width;
    switch (datatype) {
      case "BOOL": {
        const b = bytes[at]!;
        out[i] = b === 0 ? false : b === 1 ? true : b;
        break;
      }
      case "UINT8":
        out[i] = bytes.readUInt8(at);
        break;
      case "UINT16":
        out[i] = bytes.readUInt16LE(at);
        break;
      case "UINT32":
        out[i] = bytes.readUInt32LE(at);
        break;
      case "UINT64": {
        const v = bytes.readBigUInt64LE(at);
        out[i] = v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
        break;
      }
      case "INT8":
        out[i] = bytes.readInt8(at);
        break;
      case "INT16":
        out[i] = bytes.readInt16LE(at);
        break;
      case "INT32":
        out[i] = bytes.readInt32LE(at);
        break;
      case "INT64": {
        const v = bytes.readBigInt64LE(at);
        const safe = BigInt(Number.MAX_SAFE_INTEGER);
        out[i] = v <= safe && v >= -safe ? Number(v) : v.toString();
        break;
      }
      case "FP16":
        out[i] = halfToNumber(bytes.readUInt16LE(at));
        break;
      case "FP32":
        out[i] = bytes.readFloatLE(at);
        break;
      default:
        out[i] = bytes.readDoubleLE(at);
    }
  }
  return out;
}

function headerLength(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers[HEADER_LENGTH];
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? raw.join(",") : raw;
  if (!/^\d{1,12}$/.test(text.trim())) {
    throw invalid(`${HEADER_LENGTH} must be a whole number of bytes`, [
      {
        field: HEADER_LENGTH,
        expected: "the length in bytes of the JSON part of the body",
        found: describeValue(text.slice(0, 40)),
      },
    ]);
  }
  return Number(text.trim());
}

/** A binary input's size from its parameters (undefined: its data is in the JSON). */
function binarySize(input: unknown, field: string): number | undefined {
  if (typeof input !== "object" || input === null) return undefined;
  const parameters = (input as { parameters?: unknown }).parameters;
  if (typeof parameters !== "object" || parameters === null) return undefined;
  const size = (parameters as { binary_data_size?: unknown }).binary_data_size;
  if (size === undefined) return undefined;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid("binary_data_size must be a whole number of bytes", [
      {
        field: `${field}.parameters.binary_data_size`,
        expected: "a whole number of bytes",
        found: describeValue(size),
      },
    ]);
  }
  return size;
}

/**
 * An infer request's body: JSON, or (with the `Inference-Header-Content-Length` header) JSON followed by raw
 * tensor data, which is decoded into the inputs' `data`. `parseJson` parses the JSON part (with the server's
 * defences against prototype poisoning).
 *
 * @throws WardenError WARDEN_ERR_BAD_REQUEST for a body that does not hold what its header and parameters say.
 */
export function parseInferBody(
  headers: IncomingHttpHeaders,
  body: Buffer,
  parseJson: (text: string) => unknown,
  limits: { readonly maxRows: number; readonly maxRowElements: number } = {
    maxRows: Number.POSITIVE_INFINITY,
    maxRowElements: Number.POSITIVE_INFINITY,
  },
): unknown {
  const jsonLength = headerLength(headers);
  if (jsonLength === undefined) return parseJson(body.toString("utf8"));
  if (jsonLength > body.length) {
    throw invalid(`${HEADER_LENGTH} is longer than the body`, [
      { field: HEADER_LENGTH, expected: `at most the body's ${body.length} bytes`, found: `${jsonLength}` },
    ]);
  }
  const request = parseJson(body.toString("utf8", 0, jsonLength));
  const inputs = (request as { inputs?: unknown } | null)?.inputs;
  let at = jsonLength;
  if (Array.isArray(inputs)) {
    inputs.forEach((input, i) => {
      const field = `inputs[${i}]`;
      const size = binarySize(input, field);
      if (size === undefined) return;
      const record = input as Record<string, unknown>;
      const datatype = record.datatype;
      if (typeof datatype !== "string" || (datatype !== "BYTES" && !Object.hasOwn(WIDTH, datatype))) {
        throw invalid("a binary input needs a datatype of the protocol", [
          {
            field: `${field}.datatype`,
            expected: `one of ${[...Object.keys(WIDTH), "BYTES"].join(", ")}`,
            found: describeValue(datatype),
          },
        ]);
      }
      // Bounded before anything is decoded: rows within the request limit, elements within what such rows hold.
      const shape = record.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw invalid("a binary input needs its shape", [
          { field: `${field}.shape`, expected: "a list of whole numbers", found: describeValue(shape) },
        ]);
      }
      const rows = shape.length === 0 ? 1 : (shape[0] as number);
      const elements = shape.reduce((a: number, b: number) => a * b, 1);
      if (rows > limits.maxRows || elements > Math.max(rows, 1) * limits.maxRowElements) {
        throw invalid("a binary input larger than a request may be", [
          {
            field: `${field}.shape`,
            expected: `at most ${limits.maxRows} rows (max_instances_per_request) of at most ${limits.maxRowElements} elements`,
            found: JSON.stringify(shape).slice(0, 80),
            fix: "split the request",
          },
        ]);
      }
      const width = WIDTH[datatype];
      if (width !== undefined && size !== elements * width) {
        throw invalid("an input's binary_data_size does not match its shape", [
          {
            field: `${field}.parameters.binary_data_size`,
            expected: `${elements * width} bytes (${elements} ${datatype} elements of ${width} bytes, shape ${JSON.stringify(shape).slice(0, 60)})`,
            found: `${size}`,
          },
        ]);
      }
      // Unset data sent as null (as pydantic-based clients may) is no data.
      if (record.data === null) delete record.data;
      if (record.data !== undefined) {
        throw invalid("an input has both binary data and data in JSON", [
          {
            field: `${field}.data`,
            expected: "absent when parameters.binary_data_size is set",
            found: "data in the JSON",
          },
        ]);
      }
      if (at + size > body.length) {
        throw invalid("the body ends before an input's binary data", [
          {
            field: `${field}.parameters.binary_data_size`,
            expected: `at most the ${body.length - at} bytes left in the body`,
            found: `${size}`,
          },
        ]);
      }
      record.data = decodeRaw(datatype, body.subarray(at, at + size), `${field}.data`, elements);
      at += size;
    });
  }
  if (at !== body.length) {
    throw invalid("the body holds bytes no input claims", [
      {
        field: "body",
        expected: `${at} bytes (JSON and the inputs' binary_data_size)`,
        found: `${body.length} bytes`,
      },
    ]);
  }
  return request;
}

/** A tensor of an answer. */
export interface OutputTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: readonly unknown[];
  parameters?: Record<string, unknown>;
}

/** Raw bytes of an answer's tensor (FP64, BYTES: the datatypes Warden's outputs have). */
export function encodeRaw(tensor: OutputTensor): Buffer {
  if (tensor.datatype === "FP64") {
    const out = Buffer.allocUnsafe(tensor.data.length * 8);
    tensor.data.forEach((v, i) => {
      out.writeDoubleLE(typeof v === "number" ? v : Number.NaN, i * 8);
    });
    return out;
  }
  const parts: Buffer[] = [];
  for (const v of tensor.data) {
    const bytes = Buffer.from(v === null || v === undefined ? "" : String(v), "utf8");
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32LE(bytes.length, 0);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * An answer with the outputs named in `binary` as raw bytes after the JSON: the bytes to send and the
 * `Inference-Header-Content-Length` value.
 */
export function binaryAnswer(
  answer: { outputs: OutputTensor[] } & Record<string, unknown>,
  binary: ReadonlySet<string>,
): { body: Buffer; jsonLength: number } {
  const raw: Buffer[] = [];
  const outputs = answer.outputs.map((tensor) => {
    if (!binary.has(tensor.name)) return tensor;
    const bytes = encodeRaw(tensor);
    raw.push(bytes);
    const { data: _data, ...rest } = tensor;
    return { ...rest, parameters: { ...tensor.parameters, binary_data_size: bytes.length } };
  });
  const json = Buffer.from(JSON.stringify({ ...answer, outputs }), "utf8");
  return { body: Buffer.concat([json, ...raw]), jsonLength: json.length };
}
