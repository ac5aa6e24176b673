/**
 * Gram accumulation on the CPU path (kernels' `gram` numerics through ONNX Runtime's GEMM, in
 * chunks of GRAM_CHUNK rows summed in f64: src/cpu/ort-gram.ts) against one plain ONNX Runtime
 * MatMul computing the same XᵀX product, on the shapes GPTQ and pruning recovery meet, in one run.
 * `npm run build && node dist/bench/gram.js [out.md]`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { ortGram, releaseOrtGram } from '../src/cpu/ort-gram.ts';
import { seededRandom } from '../src/random.ts';

const shapes: Array<[string, number, number]> = [
  ['1x1 conv, 64 channels', 8192, 64],
  ['3x3 conv, 64 channels', 8192, 576],
  ['3x3 conv, 256 channels', 8192, 2304],
  ['3x3 conv, 512 channels (ResNet-18 layer4)', 4096, 4608],
];

async function plainMatMul(fa: number): Promise<ort.InferenceSession> {
  const b = new GraphBuilder('matmul');
  b.input('at', [fa, 'rows']);
  b.input('a', ['rows', fa]);
  b.node('MatMul', ['at', 'a'], {}, { outputs: ['g'] });
  b.output('g', [fa, fa]);
  return ort.InferenceSession.create(encodeModel(b.build(13)), { intraOpNumThreads: 0, extra: { session: { intra_op: { allow_spinning: '0' } } } });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: string[][] = [];
for (const [label, n, f] of shapes) {
  const r = seededRandom(f);
  const a = Float32Array.from({ length: n * f }, () => r() - 0.5);
  const at = new Float32Array(n * f);
  for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) at[j * n + i] = a[i * f + j];
  const s = await plainMatMul(f);
  const feeds = { at: new ort.Tensor('float32', at, [f, n]), a: new ort.Tensor('float32', a, [n, f]) };
  await s.run(feeds);
  await ortGram({ a, rows: n, fa: f });
  const runs = f >= 2304 ? 3 : 7;
  const tm: number[] = [];
  const tg: number[] = [];
  for (let k = 0; k < runs; k++) {
    let t0 = performance.now();
    await s.run(feeds);
    tm.push(performance.now() - t0);
    t0 = performance.now();
    await ortGram({ a, rows: n, fa: f });
    tg.push(performance.now() - t0);
  }
  await s.release();
  const flops = 2 * n * f * f;
  const [m, g] = [median(tm), median(tg)];
  rows.push([label, `${n} x ${f}`, `${m.toFixed(1)} ms (${(flops / m / 1e6).toFixed(1)} GFLOP/s)`, `${g.toFixed(1)} ms (${(flops / g / 1e6).toFixed(1)} GFLOP/s)`, (m / g).toFixed(2)]);
}
await releaseOrtGram();
const text = `# Gram accumulation on the CPU path vs ONNX Runtime MatMul — ${new Date().toISOString().slice(0, 10)}\n\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), onnxruntime-node, medians of interleaved runs. Target (issue: data-aware recovery): CPU-path Gram ≥ 0.5x the plain MatMul's throughput on the same shapes.\n\n`
  + formatTable(['layer input', 'rows x features', 'ORT MatMul XᵀX', 'modelpress Gram (CPU path)', 'ratio'], rows) + '\n';
process.stdout.write(text);
const file = process.argv[2] ?? join(packageRoot(), 'bench/results', `${new Date().toISOString().slice(0, 10)}-gram-cpu.md`);
writeFileSync(file, text);
console.log(`written to ${file}`);
