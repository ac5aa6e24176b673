/**
 * The WebAssembly kernels on one thread and on every core, end to end: `modelpress compress
 * --backend cpu` (weight-only int8, the CLI bundle as users run it) on ResNet-18 (46.7 MB,
 * convolutions: per-channel runs) and on a transformer encoder of 8 layers at width 1024 (~400 MB,
 * MatMul weights: channels on the last axis), MODELPRESS_THREADS=1 against the default, runs
 * interleaved round by round (fresh processes, one unrecorded warm-up round). Wall time, peak RSS,
 * and a check that both write the same bytes. Then the kernels alone, in this process, on a
 * resident 64 M-element tensor ([65536, 1024], channels on axis 0 and on the last axis), one thread
 * and every core alternating round by round, each against a `Float32Array#set` copy of the same
 * bytes timed in the same round (the yardstick of issue #10's CPU targets, as in bench/run.ts).
 * `npm run build && node dist/bench/threads.js [reps] [out.md] [--kernels-only]`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { transformerEncoder } from '../test/helpers/zoo.ts';
import { setCpuEngine, wasmEngine } from '../src/cpu/wasm-kernels.ts';
import { quantizeKernel } from '../src/kernels/quantize.ts';
import { rangeKernel } from '../src/kernels/range.ts';
import { dequantizeKernel } from '../src/kernels/dequantize.ts';
import { computeQuantParams } from '../src/kernels/qparams.ts';
import { groupView, type Granularity } from '../src/kernels/layout.ts';
import { benchTmp, resnet18Path } from './models.ts';

const root = packageRoot();
const args = process.argv.slice(2);
const reps = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
const outFile = args.find((a) => a.endsWith('.md'));
const cli = join(root, 'dist', 'cli', 'main.js');
// Peak RSS from /proc (VmHWM): getrusage's maxRSS keeps the peak of the process before exec —
// here a fork of this one, which holds the generated transformer (over 1 GB).
const rssHook = 'data:text/javascript,import{readFileSync}from"node:fs";process.on("exit",()=>process.stderr.write("MAXRSS "+Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status","utf8"))[1])*1024+"\\n"))';
const cores = availableParallelism();

function transformerPath(): string {
  const path = join(benchTmp, 'transformer-1024x8.onnx');
  if (!existsSync(path)) writeFileSync(path, encodeModel(transformerEncoder({ dim: 1024, layers: 8, heads: 8 })));
  return path;
}

const kernelsOnly = args.includes('--kernels-only');
const models: Array<[string, string]> = kernelsOnly ? [] : [['ResNet-18', resnet18Path()], ['transformer 1024 x 8', transformerPath()]];
const threadCounts = cores > 1 ? [1, cores] : [1];

function run(model: string, threads: number): { wallMs: number; rss: number; out: string } {
  const out = join(benchTmp, `threads-${threads}.onnx`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', rssHook, cli, 'compress', model, '-o', out, '--force', '-q', '--backend', 'cpu'],
    { encoding: 'utf8', env: { ...process.env, MODELPRESS_THREADS: String(threads) } });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`compress ${model} (${threads} threads) failed: ${r.stderr}`);
  return { wallMs, rss: Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1]), out };
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: string[][] = [];
const notes: string[] = [];
for (const [name, model] of models) {
  const size = statSync(model).size;
  const walls = new Map<number, number[]>();
  const rsss = new Map<number, number[]>();
  for (const t of threadCounts) run(model, t);
  for (let i = 0; i < reps; i++) {
    for (const t of threadCounts) {
      const r = run(model, t);
      (walls.get(t) ?? walls.set(t, []).get(t)!).push(r.wallMs);
      (rsss.get(t) ?? rsss.set(t, []).get(t)!).push(r.rss);
    }
  }
  const outs = threadCounts.map((t) => readFileSync(join(benchTmp, `threads-${t}.onnx`)));
  const same = outs.every((o) => Buffer.compare(o, outs[0]) === 0);
  const base = med(walls.get(1)!);
  for (const t of threadCounts) {
    const w = med(walls.get(t)!);
    rows.push([name, (size / 1e6).toFixed(1), String(t), w.toFixed(0), (base / w).toFixed(2), (med(rsss.get(t)!) / 2 ** 20).toFixed(0), (med(rsss.get(t)!) / size).toFixed(2)]);
  }
  notes.push(`${name}: outputs ${same ? 'byte-identical' : 'DIFFER'} between ${threadCounts.join(' and ')} threads; walls ${threadCounts.map((t) => `${t}: ${walls.get(t)!.map((x) => x.toFixed(0)).join(' ')}`).join('; ')} ms`);
  if (!same) process.exitCode = 1;
}
let report = '';
if (rows.length) {
  report += `compress --backend cpu (int8 weight-only), ${reps} interleaved rounds, medians; ${cores} cores\n`;
  report += formatTable(['model', 'MB', 'threads', 'wall ms', 'speed-up', 'peak RSS MB', 'RSS / model'], rows) + notes.join('\n') + '\n';
}

// Kernels alone: one thread and every core, alternating round by round.
const n = 64 << 20;
const shape = [n / 1024, 1024];
const source = new Float32Array(n);
for (let i = 0; i < n; i++) source[i] = Math.sin(i * 0.37) * (1 + (i % 977) / 100);
const axis0: Granularity = { kind: 'channel', axis: 0 };
const last: Granularity = { kind: 'channel', axis: 1 };
const paramsOf = (g: Granularity) => {
  const r = rangeKernel.cpu({ data: source, shape, granularity: g, moments: false });
  return computeQuantParams(r.min, r.max, { bits: 8, signed: true, symmetric: true, granularity: g });
};
const p0 = paramsOf(axis0);
const pl = paramsOf(last);
const codes0 = quantizeKernel.cpu({ data: source, shape, granularity: axis0, bits: 8, signed: true, params: p0 }).codes;
const codesLast = quantizeKernel.cpu({ data: source, shape, granularity: last, bits: 8, signed: true, params: pl }).codes;
const kernels: Array<[string, (data: Float32Array) => unknown]> = [
  ['quantize int8 per-channel', (data) => quantizeKernel.cpu({ data, shape, granularity: axis0, bits: 8, signed: true, params: p0 })],
  ['dequantize int8 + error stats', (data) => dequantizeKernel.cpu({ codes: codes0, shape, granularity: axis0, bits: 8, signed: true, params: p0, original: data, values: false })],
  ['range per-channel (min/max/absmax)', (data) => rangeKernel.cpu({ data, shape, granularity: axis0, moments: false })],
  ['quantize int8 + error sums (fused)', (data) => quantizeKernel.cpu({ data, shape, granularity: axis0, bits: 8, signed: true, params: p0, errorStats: true })],
  ['quantize int8, channels last', (data) => quantizeKernel.cpu({ data, shape, granularity: last, bits: 8, signed: true, params: pl })],
  ['range, channels last', (data) => rangeKernel.cpu({ data, shape, granularity: last, moments: false })],
  // Statistics per channel on the last axis: one thread (lane tables, f64 sums in one order).
  ['dequantize + error stats, channels last', (data) => dequantizeKernel.cpu({ codes: codesLast, shape, granularity: last, bits: 8, signed: true, params: pl, original: data, values: false })],
  // The first row's two parts: the kernel writing into output pages that are already mapped (the
  // engine call under quantizeKernel.cpu, same codes), and the first write of a fresh 64 MB
  // output (its page faults), which the kernel API pays on every call (it returns new codes).
  ['  quantize into a mapped output', (data) => wasmEngine()!.quantize8(data, groupView(shape, axis0), p0.inverse, p0.zeroPoint, -128, 127, mappedCodes)],
  ['  first write of a fresh 64 MB output', () => new Uint8Array(n).fill(1)],
];
const mappedCodes = new Uint8Array(n).fill(1);
const times = new Map<string, number[]>();
const copies: number[] = [];
const copyDst = new Float32Array(n);
copyDst.set(source);
const kernelRounds = Math.max(3, reps);
for (let round = 0; round < kernelRounds; round++) {
  for (const t of threadCounts) {
    setCpuEngine('wasm', { threads: t });
    const engine = wasmEngine()!;
    engine.startThreads()?.waitReady();
    await engine.pin(4 * n, async () => {
      const data = engine.residentF32(n);
      data.set(source);
      for (const [name, fn] of kernels) {
        fn(data); // warm: this engine's memory and scratch touched, its workers' code compiled
        const t0 = performance.now();
        fn(data);
        const ms = performance.now() - t0;
        (times.get(`${name}|${t}`) ?? times.set(`${name}|${t}`, []).get(`${name}|${t}`)!).push(ms);
      }
    });
    const t0 = performance.now();
    copyDst.set(source);
    copies.push(performance.now() - t0);
  }
}
const copyMs = med(copies);
const krows = kernels.flatMap(([name]) => threadCounts.map((t) => {
  const ms = med(times.get(`${name}|${t}`)!);
  return [name, String(t), ms.toFixed(1), (med(times.get(`${name}|1`)!) / ms).toFixed(2), (copyMs / ms).toFixed(3)];
}));
report += `\nKernels on a resident [65536, 1024] f32 tensor (64 M elements), ${kernelRounds} rounds alternating the thread counts, medians; copy (Float32Array#set, pre-touched) ${copyMs.toFixed(1)} ms = ${(4 * n / copyMs / 1e6).toFixed(2)} GB/s\n`;
report += formatTable(['kernel', 'threads', 'ms', 'speed-up', 'vs copy'], krows);
for (const t of threadCounts) {
  const [q, mapped, fresh] = ['quantize int8 per-channel', '  quantize into a mapped output', '  first write of a fresh 64 MB output'].map((k) => med(times.get(`${k}|${t}`)!));
  report += `quantize, ${t} thread(s): ${q.toFixed(1)} ms; into mapped pages ${mapped.toFixed(1)} ms (${(copyMs / mapped).toFixed(3)} of copy); a fresh output's first write alone ${fresh.toFixed(1)} ms\n`;
}
process.stdout.write(report);
if (outFile) appendFileSync(outFile, '\n```\n' + report + '```\n');
process.exit(process.exitCode ?? 0);
