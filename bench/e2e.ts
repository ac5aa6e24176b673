/**
 * End-to-end weight-only int8 compression of ResNet-18 (torchvision architecture built in
 * TypeScript, random weights, 46.7 MB): whole-process wall time (start-up included) and peak RSS
 * of the `modelpress compress` CLI as users run it (the bundle in dist/cli) on the CPU path
 * (WebAssembly engine, and the TypeScript reference engine), of a plain read + write, and of a
 * NumPy/onnx peer doing the same per-channel int8 conversion
 * (bench/peer_int8.py, Debian's python3 + python3-onnx; skipped with the reason when absent).
 * Optional `--gpu` adds the GPU backend. Each run is a fresh process; medians, after one unrecorded
 * round (it fills the CLI's compile cache, which a user's second run finds; the row "without the
 * compile cache" shows a run that never has it).
 * `npm run bench:e2e [-- reps] [out.md] [--gpu]`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { resnet18Path } from './models.ts';

const root = packageRoot();
const tmp = join(root, 'bench', 'tmp');
mkdirSync(tmp, { recursive: true });
const model = resnet18Path();
const size = statSync(model).size;
const args = process.argv.slice(2);
const reps = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
const outFile = args.find((a) => a.endsWith('.md'));
const child = join(root, 'dist', 'bench', 'e2e-child.js');
const cli = join(root, 'dist', 'cli', 'main.js');
// Reports the process's peak RSS on stderr at exit.
const rssHook = 'data:text/javascript,process.on("exit",()=>process.stderr.write("MAXRSS "+process.resourceUsage().maxRSS*1024+"\\n"))';
const python = '/usr/bin/python3';
const peerAvailable = existsSync(python) && spawnSync(python, ['-c', 'import onnx, numpy'], { encoding: 'utf8' }).status === 0;

interface Run {
  wallMs: number;
  maxRssBytes: number;
  submits: number;
  backend: string;
}

function run(mode: string): Run {
  const out = join(tmp, `e2e-${mode}.onnx`);
  const t0 = performance.now();
  const env: NodeJS.ProcessEnv = { ...process.env, MODELPRESS_CPU_ENGINE: mode === 'cpu-js' ? 'js' : 'wasm' };
  if (mode === 'cpu-nocache') env.NODE_DISABLE_COMPILE_CACHE = '1';
  const r = mode === 'peer'
    ? spawnSync(python, [join(root, 'bench', 'peer_int8.py'), model, out], { encoding: 'utf8' })
    : mode === 'baseline' || mode === 'copy'
      ? spawnSync(process.execPath, ['--import', rssHook, child, mode, model, out], { encoding: 'utf8', env })
      : spawnSync(process.execPath, ['--import', rssHook, cli, 'compress', model, '-o', out, '--force', '-q', '--json', '--backend', mode === 'gpu' ? 'gpu' : 'cpu'], { encoding: 'utf8', env, maxBuffer: 1 << 28 });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${mode} failed: ${r.stderr}`);
  if (mode === 'peer') return { wallMs, maxRssBytes: JSON.parse(r.stdout.trim().split('\n').pop()!).maxRssBytes, submits: 0, backend: 'python' };
  const maxRssBytes = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1]);
  const report = mode === 'baseline' || mode === 'copy' ? null : JSON.parse(r.stdout);
  return { wallMs, maxRssBytes, submits: report?.stats.submits ?? 0, backend: report?.manifest.backend.active ?? 'none' };
}

const modes = ['baseline', 'copy', 'cpu', 'cpu-nocache', 'cpu-js', ...(args.includes('--gpu') ? ['gpu'] : []), ...(peerAvailable ? ['peer'] : [])];
const results: Record<string, Run[]> = {};
for (const mode of modes) run(mode);
for (let i = 0; i < reps; i++) for (const mode of modes) (results[mode] ??= []).push(run(mode));
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const wall = (m: string) => med(results[m].map((r) => r.wallMs));
const rss = (m: string) => med(results[m].map((r) => r.maxRssBytes));
const peerWall = peerAvailable ? wall('peer') : NaN;
const label: Record<string, string> = {
  baseline: 'node + modelpress modules, nothing done', copy: 'read + write only (modelpress)', cpu: 'compress int8, CPU path (WebAssembly)', 'cpu-nocache': '  the same without the compile cache',
  'cpu-js': 'compress int8, CPU path (TypeScript reference)', gpu: 'compress int8, GPU backend', peer: 'NumPy/onnx peer (bench/peer_int8.py)',
};
const rows = modes.map((m) => [label[m], wall(m).toFixed(0), peerAvailable ? (wall(m) / peerWall).toFixed(2) : '-', (rss(m) / 1e6).toFixed(0), (rss(m) / size).toFixed(2)]);
const cpuWall = wall('cpu') / peerWall;
const cpuRss = rss('cpu') / size;
const verdicts = [
  peerAvailable ? `wall <= 1.0x the peer: ${cpuWall.toFixed(2)}x, ${cpuWall <= 1 ? 'met' : 'NOT met'}` : 'wall vs peer: not measured (Debian python3-onnx is not installed)',
  `peak RSS <= 2.5x model size: ${cpuRss.toFixed(2)}x, ${cpuRss <= 2.5 ? 'met' : 'NOT met'}`,
];
const header = `ResNet-18 (random weights, ${(size / 1e6).toFixed(1)} MB), int8 per-channel weight-only, --backend cpu; whole-process wall time and peak RSS, medians of ${reps} fresh processes\n`;
const table = formatTable(['run', 'wall ms', 'vs peer', 'peak RSS MB', 'RSS / model'], rows) + verdicts.map((v) => `target: ${v}\n`).join('');
process.stdout.write(header + table);
if (!peerAvailable) process.stdout.write('(peer skipped: /usr/bin/python3 with onnx + numpy not found; apt-get install python3-onnx)\n');
if (outFile) appendFileSync(outFile, '\n## End-to-end weight-only compression\n\n```\n' + header + table + '```\n');
