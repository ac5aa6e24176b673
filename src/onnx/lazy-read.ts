/**
 * Reading a large model without holding its weights: the file is walked with the schema and every
 * large raw_data payload is left on disk, replaced in the decoded message by a 16-byte marker that
 * names its byte range. Tensors are then read on demand straight into aligned arrays (no
 * whole-file buffer, no alignment copy), and the writer streams untouched payloads from the
 * source. Small files, and every field that is not a large payload, are read as they are.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { ModelError } from '../errors.ts';
import { delimitedFields } from './proto.ts';
import { marker, markerIndex, varint } from './markers.ts';

/** Files at least this large are read lazily. */
export const LAZY_FILE_MIN_BYTES = 16 << 20;
/** Payloads at least this large stay on disk. */
export const LAZY_TENSOR_MIN_BYTES = 1 << 20;

export interface SourceRange {
  path: string;
  offset: number;
  length: number;
}

/** The range index a lazy marker names, or -1 for ordinary bytes. */
export function lazyIndex(bytes: Uint8Array | undefined): number {
  return markerIndex('lazy', bytes);
}

/** Buffered random-access reads of one file. */
class FileReader {
  private readonly buf = new Uint8Array(1 << 16);
  private bufStart = 0;
  private bufLen = 0;
  constructor(private readonly fd: number, readonly size: number, readonly label: string) {}

  byte(pos: number): number {
    if (pos < this.bufStart || pos >= this.bufStart + this.bufLen) {
      if (pos >= this.size) throw truncated(this.label);
      this.bufStart = pos;
      this.bufLen = readSync(this.fd, this.buf, 0, Math.min(this.buf.length, this.size - pos), pos);
    }
    return this.buf[pos - this.bufStart];
  }

  varint(pos: number): [number, number] {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(pos++);
      v += (b & 0x7f) * mul;
      if (!(b & 0x80)) return [v, pos];
      mul *= 128;
    }
    throw new ModelError('INVALID_MODEL', `${this.label} is not a valid ONNX model: the protobuf is corrupt (varint too long)`, { path: this.label });
  }

  bytes(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start);
    for (let done = 0; done < out.length;) {
      const n = readSync(this.fd, out, done, out.length - done, start + done);
      if (n <= 0) throw truncated(this.label);
      done += n;
    }
    return out;
  }
}

function truncated(label: string): ModelError {
  return new ModelError('INVALID_MODEL', `${label} is not a valid ONNX model: the protobuf is truncated or corrupt`, { path: label });
}

interface Out {
  chunks: Uint8Array[];
  length: number;
}

function emit(o: Out, c: Uint8Array): void {
  if (c.length) {
    o.chunks.push(c);
    o.length += c.length;
  }
}

/** Re-emits [start, end) of message `type`, leaving large payloads on disk (recorded in `ranges`). */
function walk(r: FileReader, type: string, start: number, end: number, path: string, ranges: SourceRange[], out: Out): void {
  let pos = start;
  let copyFrom = start;
  const flush = (upTo: number) => {
    if (upTo > copyFrom) emit(out, r.bytes(copyFrom, upTo));
  };
  while (pos < end) {
    const [tag, p1] = r.varint(pos);
    const wire = tag & 7;
    const id = Math.floor(tag / 8);
    if (wire === 0) {
      pos = r.varint(p1)[1];
    } else if (wire === 1) {
      pos = p1 + 8;
    } else if (wire === 5) {
      pos = p1 + 4;
    } else if (wire === 2) {
      const [len, bodyStart] = r.varint(p1);
      const bodyEnd = bodyStart + len;
      if (bodyEnd > end) throw truncated(r.label);
      const field = delimitedFields(type)[id];
      if (len >= LAZY_TENSOR_MIN_BYTES && field) {
        if (field.message) {
          flush(p1);
          const child: Out = { chunks: [], length: 0 };
          walk(r, field.message, bodyStart, bodyEnd, path, ranges, child);
          emit(out, varint(child.length));
          for (const c of child.chunks) emit(out, c);
          copyFrom = bodyEnd;
        } else if (type === 'TensorProto' && field.name === 'rawData') {
          flush(p1);
          emit(out, Uint8Array.from([16]));
          emit(out, marker('lazy', ranges.length));
          ranges.push({ path, offset: bodyStart, length: len });
          copyFrom = bodyEnd;
        }
      }
      pos = bodyEnd;
    } else {
      throw new ModelError('INVALID_MODEL', `${r.label} is not a valid ONNX model: unsupported protobuf wire type ${wire}`, { path: r.label });
    }
    if (pos > end) throw truncated(r.label);
  }
  flush(end);
}

/** The model's bytes with large payloads replaced by markers, and the ranges the markers name. */
export function readSkeleton(path: string, size: number, label: string): { bytes: Uint8Array; ranges: SourceRange[] } {
  const fd = openSync(path, 'r');
  try {
    const ranges: SourceRange[] = [];
    const out: Out = { chunks: [], length: 0 };
    walk(new FileReader(fd, size, label), 'ModelProto', 0, size, path, ranges, out);
    const bytes = new Uint8Array(out.length);
    let at = 0;
    for (const c of out.chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    return { bytes, ranges };
  } finally {
    closeSync(fd);
  }
}

/** Reads a range into `into` (or a new array). */
export function readRange(range: SourceRange, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(range.length);
  const fd = openSync(range.path, 'r');
  try {
    for (let done = 0; done < range.length;) {
      const n = readSync(fd, out, done, range.length - done, range.offset + done);
      if (n <= 0) throw new ModelError('INVALID_MODEL', `${range.path} changed while it was being read (a tensor's bytes are missing)`, { path: range.path });
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}
