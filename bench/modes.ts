/**
 * Every compression mode of `modelpress compress --backend cpu` on the two bench models — ResNet-18
 * (46.7 MB, convolutions) and a transformer encoder of 8 layers at width 1024 (403 MB, MatMul
 * weights) — as users run it (the CLI bundle, fresh processes): wall time and peak RSS (VmHWM). With
 * `--baseline <cli main.js>` each case also runs on that build, alternating round by round, with a
 * check that both wrote the same bytes. Finds the modes whose CPU path has no fast kernel behind it.
 * `npm run build && node dist/bench/modes.js [rounds] [out.md] [--baseline path/to/dist/cli/main.js] [--only resnet|transformer]`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { transformerEncoder } from '../test/helpers/zoo.ts';
import { benchTmp, resnet18Path } from './models.ts';

const root = packageRoot();
const args = process.argv.slice(2);
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 1);
const outFile = args.find((a) => a.endsWith('.md'));
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const baseline = opt('--baseline');
const only = opt('--only');
const cli = join(root, 'dist', 'cli', 'main.js');
// Peak RSS from /proc (VmHWM), as bench/threads.ts reads it.
const rssHook = 'data:text/javascript,import{readFileSync}from"node:fs";process.on("exit",()=>process.stderr.write("MAXRSS "+Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status","utf8"))[1])*1024+"\\n"))';

function transformerPath(): string {
  const path = join(benchTmp, 'transformer-1024x8.onnx');
  if (!existsSync(path)) writeFileSync(path, encodeModel(transformerEncoder({ dim: 1024, layers: 8, heads: 8 })));
  return path;
}

const models: Array<[string, string]> = [];
if (only !== 'transformer') models.push(['ResNet-18', resnet18Path()]);
if (only !== 'resnet') models.push(['transformer 1024 x 8', transformerPath()]);
const modes: Array<[string, string[]]> = [
  ['int8 (default)', []],
  ['int4', ['--weights', 'int4']],
  ['fp16', ['--weights', 'fp16']],
  ['dynamic', ['--activations', 'dynamic']],
  ['palettize 4', ['--palettize', '4']],
  ['sparsity 0.5', ['--sparsity', '0.5']],
  ['N:M 2:4', ['--nm', '2:4']],
  ['prune 0.3', ['--prune', '0.3']],
];

function run(main: string, model: string, flags: string[], out: string): { wallMs: number; rss: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', rssHook, main, 'compress', model, '-o', out, '--force', '-q', '--backend', 'cpu', ...flags], { encoding: 'utf8' });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`compress ${model} ${flags.join(' ')} (${main}) failed: ${r.stderr}`);
  return { wallMs, rss: Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1]) };
}

const med = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const rows: string[][] = [];
const notes: string[] = [];
for (const [name, model] of models) {
  const size = statSync(model).size;
  for (const [mode, flags] of modes) {
    const builds = baseline ? [['baseline', baseline], ['this build', cli]] : [['this build', cli]];
    const walls = new Map<string, number[]>();
    const rss = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const [label, main] of builds) {
        const m = run(main, model, flags, join(benchTmp, `modes-${label.replace(' ', '-')}.onnx`));
        (walls.get(label) ?? walls.set(label, []).get(label)!).push(m.wallMs);
        (rss.get(label) ?? rss.set(label, []).get(label)!).push(m.rss);
      }
    }
    const row = [name, mode];
    for (const [label] of builds) row.push((med(walls.get(label)!) / 1000).toFixed(2), (med(rss.get(label)!) / size).toFixed(2));
    if (baseline) {
      row.push((med(walls.get('baseline')!) / med(walls.get('this build')!)).toFixed(1));
      const same = Buffer.compare(readFileSync(join(benchTmp, 'modes-baseline.onnx')), readFileSync(join(benchTmp, 'modes-this-build.onnx'))) === 0;
      row.push(same ? 'yes' : 'NO');
      if (!same) notes.push(`${name} ${mode}: the two builds wrote different bytes`);
    }
    rows.push(row);
    process.stderr.write(`${row.join('  ')}\n`);
  }
}
const header = baseline
  ? ['model', 'mode', 'baseline s', 'baseline RSS / model', 'this build s', 'RSS / model', 'speed-up', 'same bytes']
  : ['model', 'mode', 'wall s', 'peak RSS / model'];
let report = `compress --backend cpu, ${rounds} round(s)${baseline ? ' alternating the two builds' : ''}, medians; peak RSS over the model file's size\n`;
report += formatTable(header, rows) + notes.map((n) => `${n}\n`).join('');
process.stdout.write(report);
if (outFile) appendFileSync(outFile, '\n```\n' + report + '```\n');
