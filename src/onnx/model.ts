/**
 * Reading and writing ONNX models with typed errors for every way a file can be wrong, external
 * data on both sides, and atomic writes (temp file + rename: a failure leaves nothing half written).
 */
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ModelError } from '../errors.ts';
import { decodeModel, int64, type ModelMsg, type TensorProtoMsg } from './proto.ts';
import { encodeModelChunks } from './stream-encode.ts';
import { GraphIR } from './graph.ts';
import { isExternal, tensorBytes, tensorDims, tensorElements, tensorToFloat32 } from './tensor.ts';
import { lazyIndex, readRange, readSkeleton, LAZY_FILE_MIN_BYTES, type SourceRange } from './lazy-read.ts';
import { DataType, dataTypeName, rawByteLength } from './dtypes.ts';

export const MAX_IR_VERSION = 11;
export const MAX_DEFAULT_OPSET = 23;
export const MIN_DEFAULT_OPSET = 7;

export class OnnxModel {
  readonly msg: ModelMsg;
  /** Folder external data paths are relative to. */
  readonly baseDir: string;
  readonly sourcePath: string | null;
  readonly sourceBytes: number;
  graph: GraphIR;

  /** Payloads left on disk by a lazy read (their tensors' raw_data holds a marker naming the index). */
  private readonly lazy: SourceRange[];

  constructor(msg: ModelMsg, baseDir: string, sourcePath: string | null, sourceBytes: number, lazy: SourceRange[] = []) {
    this.msg = msg;
    this.lazy = lazy;
    this.baseDir = baseDir;
    this.sourcePath = sourcePath;
    this.sourceBytes = sourceBytes;
    this.graph = new GraphIR(msg.graph!);
  }

  /** The model file's size plus each distinct external data file it names (what a copy of the model takes on disk). */
  filesBytes(): number {
    let bytes = this.sourceBytes;
    const seen = new Set<string>();
    for (const t of this.msg.graph!.initializer) {
      if (t.dataLocation !== 1) continue;
      const loc = t.externalData.find((e) => e.key === 'location')?.value;
      if (loc && !seen.has(loc)) {
        seen.add(loc);
        bytes += statSync(join(this.baseDir, loc)).size;
      }
    }
    return bytes;
  }

  static read(path: string): OnnxModel {
    const abs = resolve(path);
    let size: number;
    try {
      const st = statSync(abs);
      if (st.isDirectory()) throw new ModelError('INVALID_MODEL', `${path} is a folder, not an ONNX model file`, { path });
      size = st.size;
    } catch (err) {
      if (err instanceof ModelError) throw err;
      throw new ModelError('FILE_NOT_FOUND', `model file not found: ${path}`, { path });
    }
    if (size === 0) throw new ModelError('INVALID_MODEL', `${path} is empty (0 bytes), not an ONNX model`, { path });
    if (size >= LAZY_FILE_MIN_BYTES) {
      // Large files: weights stay on disk until a pass reads them (bounded memory).
      const { bytes, ranges } = readSkeleton(abs, size, path);
      return OnnxModel.fromBytes(bytes, dirname(abs), path, { sourceBytes: size, lazy: ranges });
    }
    return OnnxModel.fromBytes(readFileSync(abs), dirname(abs), path);
  }

  static fromBytes(bytes: Uint8Array, baseDir: string, label = '<buffer>', lazyRead?: { sourceBytes: number; lazy: SourceRange[] }): OnnxModel {
    let msg: ModelMsg;
    try {
      msg = decodeModel(bytes);
    } catch (err) {
      const why = (err as Error).message ?? String(err);
      const truncated = /index out of range|invalid wire type|premature|EOF/i.test(why);
      throw new ModelError('INVALID_MODEL', `${label} is not a valid ONNX model: ${truncated ? 'the protobuf is truncated or corrupt' : 'not a protobuf'} (${why})`, { path: label }, { cause: err });
    }
    validateModel(msg, label);
    return new OnnxModel(msg, baseDir, label, lazyRead?.sourceBytes ?? bytes.length, lazyRead?.lazy);
  }

  /** The opset version imported for a domain ('' and 'ai.onnx' are the default domain); 0 if none. */
  opset(domain = ''): number {
    const want = domain === 'ai.onnx' ? '' : domain;
    for (const o of this.msg.opsetImport) {
      const d = o.domain === 'ai.onnx' ? '' : (o.domain ?? '');
      if (d === want) return int64(o.version);
    }
    return 0;
  }

  /** Adds an opset import for a domain (e.g. com.microsoft) if it is missing. */
  ensureOpset(domain: string, version: number): void {
    if (this.opset(domain) === 0) this.msg.opsetImport.push({ domain, version });
  }

  /** Where a lazily read tensor's bytes are on disk, or null when they are in memory. */
  lazyRange(t: TensorProtoMsg): SourceRange | null {
    if (isExternal(t)) return null;
    const i = lazyIndex(t.rawData);
    return i >= 0 && i < this.lazy.length ? this.lazy[i] : null;
  }

  /**
   * The tensor's values as f32. With `into` (as many elements), they are written there — e.g.
   * into the CPU engine's memory, so kernels then read them in place.
   */
  tensorFloat32(t: TensorProtoMsg, into?: Float32Array): Float32Array {
    const range = this.lazyRange(t);
    const n = tensorElements(t);
    if (into && into.length !== n) throw new Error(`tensorFloat32: destination has ${into.length} elements, '${t.name}' has ${n}`);
    if (range && t.dataType === DataType.FLOAT) {
      // Straight from the file into an aligned array: one copy, no alignment copy.
      checkLength(t, range.length, rawByteLength(DataType.FLOAT, n));
      const out = into ?? new Float32Array(n);
      readRange(range, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      return out;
    }
    if (into && t.dataType === DataType.FLOAT && !isExternal(t) && t.rawData && t.rawData.length) {
      checkLength(t, t.rawData.length, rawByteLength(DataType.FLOAT, n));
      new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(t.rawData);
      return into;
    }
    const values = range ? tensorToFloat32({ ...t, rawData: this.tensorBytes(t) } as TensorProtoMsg, this.baseDir) : tensorToFloat32(t, this.baseDir);
    if (!into) return values;
    into.set(values);
    return into;
  }

  tensorBytes(t: TensorProtoMsg): Uint8Array {
    const range = this.lazyRange(t);
    if (range) {
      checkLength(t, range.length, rawByteLength(t.dataType ?? 0, tensorElements(t)));
      return readRange(range);
    }
    return tensorBytes(t, this.baseDir);
  }

  /** The whole model encoded in memory, lazy payloads included (for ONNX Runtime sessions from bytes). */
  toBytes(): Uint8Array {
    const { chunks, length } = encodeModelChunks(this.msg, allTensors(this.msg), (t) => this.lazyRange(t));
    const out = new Uint8Array(length);
    let at = 0;
    for (const c of chunks) {
      const bytes = c instanceof Uint8Array ? c : readRange(c);
      out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }

  /** Re-derives the graph index after edits made directly on the message. */
  reindex(): void {
    this.graph = new GraphIR(this.msg.graph!);
  }
}

function validateModel(msg: ModelMsg, label: string): void {
  const ir = int64(msg.irVersion);
  if (!msg.graph || ir <= 0 || msg.opsetImport.length === 0 && ir >= 3) {
    const missing = [!msg.graph && 'graph', ir <= 0 && 'ir_version', msg.opsetImport.length === 0 && 'opset_import'].filter(Boolean).join(', ');
    throw new ModelError('INVALID_MODEL', `${label} is a protobuf but not an ONNX model (missing ${missing})`, { path: label });
  }
  if (ir > MAX_IR_VERSION) {
    throw new ModelError('UNSUPPORTED_MODEL', `${label} has IR version ${ir}; modelpress reads IR versions up to ${MAX_IR_VERSION}`, { path: label, irVersion: ir });
  }
  for (const o of msg.opsetImport) {
    const d = o.domain ?? '';
    const v = int64(o.version);
    if ((d === '' || d === 'ai.onnx') && (v > MAX_DEFAULT_OPSET || v < MIN_DEFAULT_OPSET)) {
      throw new ModelError('UNSUPPORTED_MODEL', `${label} imports ai.onnx opset ${v}; modelpress supports opsets ${MIN_DEFAULT_OPSET} to ${MAX_DEFAULT_OPSET}`, { path: label, opset: v });
    }
  }
  const g = msg.graph;
  const known = new Set<string>(['']);
  for (const i of g.input) known.add(i.name ?? '');
  for (const t of g.initializer) known.add(t.name ?? '');
  // A sparse_initializer's name is its values tensor's.
  for (const t of g.sparseInitializer ?? []) known.add((t as { values?: { name?: string } }).values?.name ?? '');
  for (const node of g.node) {
    for (const name of node.input) {
      if (!known.has(name)) {
        throw new ModelError('INVALID_MODEL', `node '${node.name || '(unnamed)'}' (${node.opType}) reads '${name}', which no graph input, initializer, sparse initializer or earlier node produces`, { node: node.name, tensor: name });
      }
    }
    for (const o of node.output) known.add(o);
  }
  for (const o of g.output) {
    if (!known.has(o.name ?? '')) throw new ModelError('INVALID_MODEL', `graph output '${o.name}' is not produced by any node, initializer or input`, { tensor: o.name });
  }
  for (const t of g.initializer) {
    if (!isExternal(t) && t.rawData && t.rawData.length === 0 && tensorDims(t).some((d) => d < 0)) {
      throw new ModelError('INVALID_MODEL', `initializer '${t.name}' has a negative dimension`, { tensor: t.name });
    }
  }
}

export interface WriteOptions {
  /** 'auto' writes external data when the model would exceed protobuf's 2 GB limit. */
  externalData?: 'auto' | 'always' | 'never';
  /** Tensors at least this big go to the external file (default 1 KiB). */
  externalMinBytes?: number;
  /** Limit for a single protobuf file before 'auto' switches to external data (default 2 GB - 64 MiB). */
  protobufLimit?: number;
}

const ALIGN = 64;

/**
 * Writes `model` to `path` atomically. Tensors stored externally in the source are copied tensor by
 * tensor; with external data on, big tensors go to `<name>.data` beside the model.
 */
export function writeModel(model: OnnxModel, path: string, opts: WriteOptions = {}): { bytes: number; externalFile: string | null; externalBytes: number } {
  const out = resolve(path);
  const mode = opts.externalData ?? 'auto';
  const minBytes = opts.externalMinBytes ?? 1024;
  const limit = opts.protobufLimit ?? 2 ** 31 - 64 * 2 ** 20;
  const tensors = allTensors(model.msg);
  const sizeOf = (t: TensorProtoMsg) => (isExternal(t) ? Number(t.externalData.find((e) => e.key === 'length')?.value ?? 0) : model.lazyRange(t)?.length ?? t.rawData?.length ?? 0);
  let total = 0;
  for (const t of tensors) total += sizeOf(t);
  const external = mode === 'always' || (mode === 'auto' && total > limit);
  const dataName = `${basename(out)}.data`;
  const dataPath = join(dirname(out), dataName);
  const tmpModel = `${out}.tmp-${process.pid}`;
  const tmpData = `${dataPath}.tmp-${process.pid}`;
  // Tensors are edited in place for encoding and restored afterwards.
  const saved = tensors.map((t) => ({ t, rawData: t.rawData, externalData: t.externalData, dataLocation: t.dataLocation }));
  let fd: number | null = null;
  let offset = 0;
  try {
    if (external) fd = openSync(tmpData, 'w');
    for (const t of tensors) {
      const wasExternal = isExternal(t);
      if (external && sizeOf(t) >= minBytes) {
        // One tensor in memory at a time: read, append to the data file, drop.
        const bytes = model.tensorBytes(t);
        const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
        if (pad) writeSync(fd!, new Uint8Array(pad), 0, pad, offset);
        offset += pad;
        for (let at = 0; at < bytes.length;) at += writeSync(fd!, bytes, at, bytes.length - at, offset + at);
        t.rawData = new Uint8Array(0);
        t.dataLocation = 1;
        t.externalData = [
          { key: 'location', value: dataName },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(bytes.length) },
        ];
        offset += bytes.length;
      } else if (wasExternal) {
        t.rawData = model.tensorBytes(t);
        t.dataLocation = 0;
        t.externalData = [];
      }
      // Lazily read tensors stay markers: the encoder streams them from the source file.
    }
    // Streamed: tensor payloads go from their own arrays to the file, no whole-model buffer.
    const encoded = encodeModelChunks(model.msg, tensors, (t) => model.lazyRange(t));
    if (encoded.length > 2 ** 31 - 1) {
      throw new ModelError('UNSUPPORTED_MODEL', `the model is ${encoded.length} bytes, over protobuf's 2 GB limit; write it with external data`);
    }
    const mfd = openSync(tmpModel, 'w');
    try {
      for (const c of encoded.chunks) {
        if (c instanceof Uint8Array) writeAll(mfd, c);
        else copyRange(mfd, c);
      }
    } finally {
      closeSync(mfd);
    }
    if (fd !== null) {
      closeSync(fd);
      fd = null;
      renameSync(tmpData, dataPath);
    }
    renameSync(tmpModel, out);
    return { bytes: encoded.length, externalFile: external ? dataPath : null, externalBytes: offset };
  } catch (err) {
    if (fd !== null) closeSync(fd);
    for (const f of [tmpModel, tmpData]) if (existsSync(f)) rmSync(f);
    throw err;
  } finally {
    for (const s of saved) {
      s.t.rawData = s.rawData;
      s.t.externalData = s.externalData;
      s.t.dataLocation = s.dataLocation;
    }
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** Copies a source range into fd a MiB at a time. */
function copyRange(fd: number, range: SourceRange): void {
  const buf = new Uint8Array(Math.min(range.length, 1 << 20));
  for (let done = 0; done < range.length;) {
    const n = Math.min(buf.length, range.length - done);
    const piece = readRange({ path: range.path, offset: range.offset + done, length: n }, buf.subarray(0, n));
    writeAll(fd, piece);
    done += n;
  }
}

function checkLength(t: TensorProtoMsg, got: number, need: number): void {
  if (got !== need) {
    throw new ModelError('INVALID_MODEL', `tensor '${t.name}' (${dataTypeName(t.dataType)} [${tensorDims(t).join(', ')}]) has ${got} bytes of raw_data, expected ${need}`, { tensor: t.name });
  }
}

/** Every TensorProto of the main graph: initializers and Constant-node values. */
export function allTensors(msg: ModelMsg): TensorProtoMsg[] {
  const out: TensorProtoMsg[] = [...msg.graph!.initializer];
  for (const n of msg.graph!.node) for (const a of n.attribute) if (a.t) out.push(a.t);
  return out;
}

export function describeTensor(t: TensorProtoMsg): string {
  return `${t.name} (${dataTypeName(t.dataType)} [${tensorDims(t).join(', ')}])`;
}
