/**
 * Encoding a model without one buffer holding it whole: large tensor payloads (raw_data) are
 * swapped for small markers, the rest is encoded by protobufjs (same bytes, same field order as a
 * plain encode), and the result is walked with the schema to splice the payloads back in as
 * separate chunks, fixing the length prefix of every enclosing message. Writing the chunks in
 * order gives exactly the bytes of `encodeModel(model)`; the payloads are never copied.
 */
import protobuf from 'protobufjs/minimal.js';
import { delimitedFields, encodeModel, type ModelMsg, type TensorProtoMsg } from './proto.ts';
import type { SourceRange } from './lazy-read.ts';
import { marker, markerIndex, varint } from './markers.ts';

/** Payloads at least this large are spliced rather than copied into the encode buffer. */
export const SPLICE_MIN_BYTES = 1 << 16;

/** A chunk of the encoding: bytes, or a byte range of a file to copy (a lazily read payload). */
export type Chunk = Uint8Array | SourceRange;

interface Chunked {
  chunks: Chunk[];
  length: number;
}

/** Re-emits one encoded message of `type`, replacing marker payloads by the tensors' raw data. */
function walk(type: string, bytes: Uint8Array, payloads: Chunk[]): Chunked {
  const chunks: Chunk[] = [];
  let length = 0;
  const push = (c: Chunk) => {
    if (c.length) {
      chunks.push(c);
      length += c.length;
    }
  };
  const fields = delimitedFields(type);
  const r = protobuf.Reader.create(bytes);
  let copyFrom = 0; // bytes not yet emitted are copied verbatim up to the next rewritten field
  while (r.pos < r.len) {
    const tag = r.uint32();
    const id = tag >>> 3;
    const wire = tag & 7;
    if (wire !== 2) {
      r.skipType(wire);
      continue;
    }
    const lenStart = r.pos;
    const len = r.uint32();
    const bodyStart = r.pos;
    r.pos += len;
    const field = fields[id];
    const body = bytes.subarray(bodyStart, bodyStart + len);
    let replaced: Chunked | null = null;
    if (field?.message) {
      const inner = walk(field.message, body, payloads);
      // Only rewrite when something inside changed length (a spliced payload).
      if (inner.chunks.length !== 1 || inner.chunks[0] !== body) replaced = inner;
    } else if (field) {
      const k = markerIndex('splice', body);
      if (k >= 0) replaced = { chunks: [payloads[k]], length: payloads[k].length };
    }
    if (!replaced) continue;
    push(bytes.subarray(copyFrom, lenStart));
    push(varint(replaced.length));
    for (const c of replaced.chunks) push(c);
    copyFrom = bodyStart + len;
  }
  if (copyFrom === 0) return { chunks: [bytes], length: bytes.length };
  push(bytes.subarray(copyFrom));
  return { chunks, length };
}

/**
 * The model's encoding as chunks (small protobuf pieces and the large tensors' own bytes).
 * `tensors` are every TensorProto whose payload may be spliced.
 */
export function encodeModelChunks(model: ModelMsg, tensors: TensorProtoMsg[], onDisk: (t: TensorProtoMsg) => SourceRange | null = () => null, minBytes = SPLICE_MIN_BYTES): Chunked {
  const payloads: Chunk[] = [];
  const swapped: Array<{ t: TensorProtoMsg; raw: Uint8Array | undefined }> = [];
  for (const t of tensors) {
    const raw = t.rawData;
    const range = onDisk(t);
    if (!range && (!raw || raw.length < minBytes)) continue;
    swapped.push({ t, raw });
    t.rawData = marker('splice', payloads.length);
    payloads.push(range ?? raw!);
  }
  try {
    const small = encodeModel(model);
    return payloads.length ? walk('ModelProto', small, payloads) : { chunks: [small], length: small.length };
  } finally {
    for (const s of swapped) s.t.rawData = s.raw;
  }
}
