/**
 * End-to-end weight-only compression of a ResNet-18-size model (~47 MB, torchvision architecture
 * built in TypeScript, random weights): int8 per-channel wall time vs just reading and writing the same
 * model, peak RSS vs model size, GPU vs CPU backend, and submits. Each run is a fresh process.
 * `npm run bench:e2e`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { resnet18Path } from './models.ts';
import { formatTable } from '../src/cli/format.ts';

const root = packageRoot();
const tmp = join(root, 'bench', 'tmp');
mkdirSync(tmp, { recursive: true });
const model = resnet18Path();
const size = statSync(model).size;
const reps = Number(process.argv[2] ?? 3);
const child = join(root, 'dist', 'bench', 'e2e-child.js');

interface Run {
  mode: string;
  wallMs: number;
  maxRssBytes: number;
  submits: number;
  dispatches: number;
  backend: string;
}

function run(mode: string): Run {
  const r = spawnSync(process.execPath, [child, mode, model, join(tmp, `out-${mode}.onnx`)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const results: Record<string, Run[]> = {};
for (let i = 0; i < reps; i++) for (const mode of ['baseline', 'copy', 'gpu', 'cpu']) (results[mode] ??= []).push(run(mode));
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const copyMs = med(results.copy.map((r) => r.wallMs));
const baseRss = med(results.baseline.map((r) => r.maxRssBytes));
delete results.baseline;
const rows = Object.entries(results).map(([mode, rs]) => {
  const wall = med(rs.map((r) => r.wallMs));
  const rss = med(rs.map((r) => r.maxRssBytes));
  return [mode === 'copy' ? 'read + write only' : `compress int8 (${rs[0].backend})`, wall.toFixed(0), (wall / copyMs).toFixed(2), (rss / 1e6).toFixed(0), (rss / size).toFixed(2), ((rss - baseRss) / size).toFixed(2), String(rs[0].submits), String(rs[0].dispatches)];
});
const table = formatTable(['run', 'wall ms', 'vs read+write', 'peak RSS MB', 'RSS / model', '(RSS - node) / model', 'submits', 'dispatches'], rows) +
  `(node itself, modules loaded: ${(baseRss / 1e6).toFixed(0)} MB peak RSS)\n`;
const header = `ResNet-18 (torchvision, random weights): ${(size / 1e6).toFixed(1)} MB; medians of ${reps} fresh-process runs; targets: wall <= 3x read+write, peak RSS <= 2.5x model size\n`;
process.stdout.write(header + table);
const out = process.argv[3];
if (out) appendFileSync(out, '\n## End-to-end weight-only compression\n\n```\n' + header + table + '```\n');
