/**
 * Model inputs for ONNX Runtime runs: the declared input specs, concrete dims for symbolic ones,
 * seeded random tensors that respect the declared shapes and types, and batches of them or of a
 * dataset. Shared by evaluation and latency benchmarks, so both feed a model the same way.
 */
import * as ort from 'onnxruntime-node';
import { DataError } from '../errors.ts';
import { OnnxModel } from '../onnx/model.ts';
import { DataType, dataTypeName } from '../onnx/dtypes.ts';
import { int64 } from '../onnx/proto.ts';
import { seededRandom } from '../random.ts';
import type { Dataset } from '../data/dataset.ts';

/** A model file, or a model held in memory (a pass's candidate, never written). */
export type ModelRef = string | OnnxModel;

export interface BatchOptions {
  samples?: number;
  /** With a dataset: exactly these sample indices instead of the first `samples`. */
  indices?: readonly number[];
  seed?: number;
  batchSize?: number;
  /** Concrete values for symbolic dims, by input name: { x: [1, 3, 48, 192] }. */
  shapes?: Record<string, number[]>;
}

export interface InputSpec {
  name: string;
  type: number;
  dims: Array<number | string>;
}

export function inputSpecs(ref: ModelRef): InputSpec[] {
  const m = typeof ref === 'string' ? OnnxModel.read(ref) : ref;
  const inits = new Set(m.msg.graph!.initializer.map((t) => t.name));
  return m.msg.graph!.input.filter((i) => !inits.has(i.name)).map((i) => ({
    name: i.name ?? '',
    type: i.type?.tensorType?.elemType ?? DataType.FLOAT,
    dims: (i.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null && int64(d.dimValue) > 0 ? int64(d.dimValue) : '?')),
  }));
}

/** Dims with symbolic entries filled: the first (batch) with `batch`, others from `shapes` or 64. */
export function concreteDims(spec: InputSpec, batch: number, shapes?: Record<string, number[]>): number[] {
  const given = shapes?.[spec.name];
  if (given) {
    if (given.length !== spec.dims.length) throw new DataError(`shape for input '${spec.name}' has ${given.length} dims, the model declares ${spec.dims.length}`, { input: spec.name });
    return given.map((d, i) => (i === 0 && typeof spec.dims[0] !== 'number' ? batch : d));
  }
  return spec.dims.map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : 64));
}

export function randomTensor(spec: InputSpec, dims: number[], r: () => number): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  switch (spec.type) {
    case DataType.FLOAT: return new ort.Tensor('float32', Float32Array.from({ length: n }, r), dims);
    case DataType.DOUBLE: return new ort.Tensor('float64', Float64Array.from({ length: n }, r), dims);
    case DataType.INT64: return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 10))), dims);
    case DataType.INT32: return new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(r() * 10)), dims);
    case DataType.UINT8: return new ort.Tensor('uint8', Uint8Array.from({ length: n }, () => Math.floor(r() * 256)), dims);
    case DataType.BOOL: return new ort.Tensor('bool', new Uint8Array(n), dims);
    default: throw new DataError(`input '${spec.name}' is ${dataTypeName(spec.type)}; random inputs support float, double, int64, int32, uint8 and bool`, { input: spec.name });
  }
}

export interface Batch {
  feeds: Record<string, ort.Tensor>;
  labels: Int32Array | null;
}

export async function* batches(specs: InputSpec[], opts: BatchOptions, dataset: Dataset | null): AsyncGenerator<Batch, void, unknown> {
  const batchSize = opts.batchSize ?? 64;
  if (dataset) {
    if (specs.length !== 1) throw new DataError(`data feeds one input; the model has ${specs.length} (${specs.map((s) => s.name).join(', ')})`);
    const spec = specs[0];
    const order = opts.indices ?? Array.from({ length: Math.min(dataset.count, opts.samples ?? dataset.count) }, (_, k) => k);
    const n = order.length;
    const fixedBatch = typeof spec.dims[0] === 'number' ? (spec.dims[0] as number) : batchSize;
    for (let i = 0; i < n; i += fixedBatch) {
      const b = Math.min(fixedBatch, n - i);
      if (typeof spec.dims[0] === 'number' && b !== fixedBatch) break;
      const idx = order.slice(i, i + b);
      const x = await dataset.load(idx);
      const labels = dataset.labels ? Int32Array.from(idx, (k) => dataset.labels![k]) : null;
      yield { feeds: { [spec.name]: new ort.Tensor('float32', x, [b, ...dataset.sampleDims]) }, labels };
    }
    return;
  }
  const r = seededRandom(opts.seed ?? 1);
  const n = opts.samples ?? 32;
  const fixed = specs.every((s) => typeof s.dims[0] === 'number');
  const per = fixed ? Math.max(1, Number(specs[0]?.dims[0] ?? 1)) : Math.min(batchSize, n);
  for (let i = 0; i < n; i += per) {
    const b = fixed ? per : Math.min(per, n - i);
    const feeds: Record<string, ort.Tensor> = {};
    for (const s of specs) {
      feeds[s.name] = randomTensor(s, concreteDims(s, b, opts.shapes), r);
    }
    yield { feeds, labels: null };
  }
}

