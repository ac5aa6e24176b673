/**
 * The WebAssembly kernels on one thread and on every core, end to end: `modelpress compress
 * --backend cpu` (weight-only int8, the CLI bundle as users run it) on ResNet-18 (46.7 MB,
 * convolutions: per-channel runs) and on a transformer encoder of 8 layers at width 1024 (~400 MB,
 * MatMul weights: channels on the last axis), MODELPRESS_THREADS=1 against the default, runs
 * interleaved round by round (fresh processes, one unrecorded warm-up round). Wall time, peak RSS,
 * and a check that both write the same bytes.
 * `npm run build && node dist/bench/threads.js [reps] [out.md]`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { transformerEncoder } from '../test/helpers/zoo.ts';
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

const models: Array<[string, string]> = [['ResNet-18', resnet18Path()], ['transformer 1024 x 8', transformerPath()]];
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
const header = `compress --backend cpu (int8 weight-only), ${reps} interleaved rounds, medians; ${cores} cores\n`;
const table = formatTable(['model', 'MB', 'threads', 'wall ms', 'speed-up', 'peak RSS MB', 'RSS / model'], rows);
process.stdout.write(header + table + notes.join('\n') + '\n');
if (outFile) appendFileSync(outFile, '\n```\n' + header + table + notes.join('\n') + '\n```\n');
