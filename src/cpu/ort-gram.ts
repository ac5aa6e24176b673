/**
 * Gram products on the CPU path at machine speed: AᵀB through ONNX Runtime's MLAS GEMM with a tiny
 * Gemm graph (one cached session per feature shape), in chunks of CPU_GRAM_CHUNK rows whose f32
 * results are summed in f64, as the GPU kernel sums its chunks. The f64 JavaScript loop in
 * kernels/gram.ts stays the reference that tests compare both with.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel } from '../onnx/proto.ts';
import type { GramJob, GramResult } from '../kernels/gram.ts';

/**
 * Rows per GEMM. Larger than the GPU's GRAM_CHUNK (512): MLAS needs long products to reach its
 * throughput (512-row chunks ran at 0.48x one whole XᵀX product on 2304 features); f32 sums over
 * 4096 rows stay within the gram tolerance (test/linalg.test.ts).
 */
export const CPU_GRAM_CHUNK = 4096;

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function session(fa: number, fb: number): Promise<ort.InferenceSession> {
  const key = `${fa}x${fb}`;
  let s = sessions.get(key);
  if (!s) {
    const b = new GraphBuilder('gram');
    b.input('a', ['rows', fa]);
    b.input('b', ['rows', fb]);
    // Gemm with transA: MLAS reads A transposed in place (a Transpose node first was measured
    // at 0.4x the plain product's throughput on 2304 features).
    b.node('Gemm', ['a', 'b'], { transA: 1 }, { outputs: ['g'] });
    b.output('g', [fa, fb]);
    // All cores, but no spinning thread pool left burning CPU between calls.
    s = ort.InferenceSession.create(encodeModel(b.build(13)), { intraOpNumThreads: 0, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    sessions.set(key, s);
  }
  return s;
}

export async function ortGram(job: GramJob): Promise<GramResult> {
  const fb = job.b ? job.fb ?? 0 : job.fa;
  const g = new Float64Array(job.fa * fb);
  if (job.rows === 0 || job.fa === 0 || fb === 0) return { gram: g };
  const s = await session(job.fa, fb);
  for (let r = 0; r < job.rows; r += CPU_GRAM_CHUNK) {
    const n = Math.min(CPU_GRAM_CHUNK, job.rows - r);
    const a = new ort.Tensor('float32', job.a.subarray(r * job.fa, (r + n) * job.fa), [n, job.fa]);
    const b = job.b ? new ort.Tensor('float32', job.b.subarray(r * fb, (r + n) * fb), [n, fb]) : a;
    const out = (await s.run({ a, b })).g.data as Float32Array;
    for (let k = 0; k < out.length; k++) g[k] += out[k];
  }
  return { gram: g };
}

const batched = new Map<string, Promise<ort.InferenceSession>>();

/**
 * Many small Gram matrices at once: A [groups, rows, k] → AᵢᵀAᵢ for every group (a batched MatMul;
 * depthwise layers have one k×k Hessian per channel). Returns [groups, k, k] in f64.
 */
export async function ortBatchedGram(a: Float32Array, groups: number, rows: number, k: number): Promise<Float64Array> {
  const g = new Float64Array(groups * k * k);
  if (!groups || !rows || !k) return g;
  const key = `${k}`;
  let s = batched.get(key);
  if (!s) {
    const b = new GraphBuilder('batched_gram');
    b.input('a', ['groups', 'rows', k]);
    const at = b.op('Transpose', ['a'], { perm: [0, 2, 1] });
    b.node('MatMul', [at, 'a'], {}, { outputs: ['g'] });
    b.output('g', ['groups', k, k]);
    s = ort.InferenceSession.create(encodeModel(b.build(13)), { intraOpNumThreads: 0, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    batched.set(key, s);
  }
  const session = await s;
  const out = (await session.run({ a: new ort.Tensor('float32', a, [groups, rows, k]) })).g.data as Float32Array;
  for (let i = 0; i < out.length; i++) g[i] = out[i];
  return g;
}

/** Releases the cached sessions (tests, long-running embedders). */
export async function releaseOrtGram(): Promise<void> {
  const all = [...sessions.values(), ...batched.values()];
  sessions.clear();
  batched.clear();
  for (const s of all) await (await s).release();
}
