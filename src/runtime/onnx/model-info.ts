import { type FileHandle, open } from "node:fs/promises";

/** Facts from an ONNX file's header that onnxruntime-node does not expose. */
export interface OnnxModelInfo {
  readonly irVersion: number | undefined;
  /** `producer_name producer_version`, e.g. `skl2onnx 1.17.0`. */
  readonly producer: string | undefined;
  /** Operator set version per domain, the default domain as `ai.onnx`. */
  readonly opsets: ReadonlyMap<string, number>;
}

// Top-level field numbers of onnx.ModelProto (onnx/onnx.proto).
const IR_VERSION = 1;
const PRODUCER_NAME = 2;
const PRODUCER_VERSION = 3;
const OPSET_IMPORT = 8;
// Fields of onnx.OperatorSetIdProto.
const OPSET_DOMAIN = 1;
const OPSET_VERSION = 2;
// The header fields read here are a few bytes; anything larger means the file is not what it claims.
const MAX_HEADER_FIELD_BYTES = 1 << 20;

/**
 * Read an ONNX model's IR version, producer and operator sets straight from the protobuf, skipping the graph
 * (which may be hundreds of megabytes) by its length prefix instead of reading it: protobuf writes fields in
 * number order, so `opset_import` (8) comes after `graph` (7).
 *
 * @returns undefined when the file is not a well-formed protobuf message.
 */
export async function readOnnxModelInfo(path: string): Promise<OnnxModelInfo | undefined> {
  const file = await open(path, "r");
  try {
    return await scanModelProto(file, (await file.stat()).size);
  } finally {
    await file.close();
  }
}

async function scanModelProto(file: FileHandle, size: number): Promise<OnnxModelInfo | undefined> {
  let irVersion: number | undefined;
  let producerName: string | undefined;
  let producerVersion: string | undefined;
  const opsets = new Map<string, number>();
  let position = 0;
  while (position < size) {
    // A tag and a length are at most 10 bytes each.
    const head = await readAt(file, position, 20);
    const tag = decodeVarint(head, 0);
    if (tag === undefined) return undefined;
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (wireType === 0) {
      const value = decodeVarint(head, tag.next);
      if (value === undefined) return undefined;
      if (field === IR_VERSION) irVersion = value.value;
      position += value.next;
    } else if (wireType === 2) {
      const length = decodeVarint(head, tag.next);
      if (length === undefined) return undefined;
      const start = position + length.next;
      if (field === PRODUCER_NAME || field === PRODUCER_VERSION || field === OPSET_IMPORT) {
        if (length.value > MAX_HEADER_FIELD_BYTES) return undefined;
        const payload = await readAt(file, start, length.value);
        if (payload.length !== length.value) return undefined;
        if (field === PRODUCER_NAME) producerName = payload.toString("utf8");
        else if (field === PRODUCER_VERSION) producerVersion = payload.toString("utf8");
        else {
          const opset = decodeOpset(payload);
          if (opset === undefined) return undefined;
          opsets.set(opset.domain, opset.version);
        }
      }
      position = start + length.value;
    } else if (wireType === 1) {
      position += tag.next + 8;
    } else if (wireType === 5) {
      position += tag.next + 4;
    } else {
      // Groups (3, 4) are not used by ONNX; anything else is not protobuf.
      return undefined;
    }
  }
  if (position !== size) return undefined;
  const producer = [producerName, producerVersion]
    .filter((part) => part !== undefined && part !== "")
    .join(" ");
  return { irVersion, producer: producer === "" ? undefined : producer, opsets };
}

function decodeOpset(payload: Buffer): { domain: string; version: number } | undefined {
  // An empty domain is the default operator set.
  let domain = "ai.onnx";
  let version: number | undefined;
  let position = 0;
  while (position < payload.length) {
    const tag = decodeVarint(payload, position);
    if (tag === undefined) return undefined;
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (wireType === 0) {
      const value = decodeVarint(payload, tag.next);
      if (value === undefined) return undefined;
      if (field === OPSET_VERSION) version = value.value;
      position = value.next;
    } else if (wireType === 2) {
      const length = decodeVarint(payload, tag.next);
      if (length === undefined) return undefined;
      if (field === OPSET_DOMAIN && length.value > 0) {
        domain = payload.toString("utf8", length.next, length.next + length.value);
      }
      position = length.next + length.value;
    } else {
      return undefined;
    }
  }
  return version === undefined || position !== payload.length ? undefined : { domain, version };
}

/** A protobuf varint at `at`; exact for values below 2^53 (IR versions, opsets, lengths). */
function decodeVarint(bytes: Uint8Array, at: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = at; i < bytes.length && i < at + 10; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, next: i + 1 };
    scale *= 128;
  }
  return undefined;
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}
