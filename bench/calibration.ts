/**
 * Calibration benchmark: the Fashion-MNIST CNN (real data) and a ResNet-18 (random weights,
 * synthetic images) with 100 and 1000 samples: wall time split into ONNX Runtime inference vs
 * statistics, peak RSS (must not grow with the samples), GPU vs CPU statistics path.
 * `npm run bench:calibration [-- out.md]`. Each run is a fresh process.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { FASHION_SUBSET, resnet18Path } from './models.ts';
import { formatTable } from '../src/cli/format.ts';

const root = packageRoot();
const tmp = join(root, 'bench', 'tmp');
mkdirSync(tmp, { recursive: true });
const resnet = resnet18Path();
const child = join(root, 'dist', 'bench', 'calibration-child.js');
const cases: Array<[string, string, string, number[]]> = [
  ['Fashion-MNIST CNN', join(root, 'test/assets/fashion-cnn.onnx'), join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz'), [100, 1000]],
  ['ResNet-18 (224x224)', resnet, 'synthetic', [100, 1000]],
];
const rows: string[][] = [];
for (const [name, model, data, sizes] of cases) {
  const rss: Record<string, number> = {};
  for (const backend of ['cpu', 'gpu']) {
    for (const n of sizes) {
      const r = spawnSync(process.execPath, ['--expose-gc', child, model, data, String(n), backend], { encoding: 'utf8', env: { ...process.env } });
      if (r.status !== 0) {
        rows.push([name, backend, String(n), 'failed: ' + r.stderr.trim().split('\n').pop()!, '', '', '', '']);
        continue;
      }
      const o = JSON.parse(r.stdout.trim().split('\n').pop()!);
      rss[`${backend}-${n}`] = o.maxRssBytes;
      const ratio = n === sizes[1] && rss[`${backend}-${sizes[0]}`] ? (o.maxRssBytes / rss[`${backend}-${sizes[0]}`]).toFixed(2) + 'x' : '';
      // The share leaves out data loading and the per-batch GC the child does for the RSS figure.
      rows.push([name, backend === 'gpu' ? 'gpu (lavapipe)' : 'cpu', String(o.samples), String(o.tensors), (o.ortMs / 1000).toFixed(2), (o.statsMs / 1000).toFixed(2), `${((100 * o.statsMs) / (o.ortMs + o.statsMs)).toFixed(0)}%`, `${(o.maxRssBytes / 1e6).toFixed(0)} MB ${ratio}`]);
      console.error(rows[rows.length - 1].join(' | '));
    }
  }
}
const table = formatTable(['model', 'stats path', 'samples', 'activations', 'ORT s', 'stats s', 'stats / (ORT + stats)', 'peak RSS (1000 vs 100)'], rows);
const header = 'Calibration (batches of 16, all activations feeding Conv/Gemm/MatMul/Add/Mul/Concat/pooling; a GC after each batch); targets: statistics <= 20% of the total, peak RSS 1000 vs 100 samples <= 1.1x\n';
process.stdout.write(header + table);
const out = process.argv[2];
if (out) appendFileSync(out, '\n## Calibration\n\n```\n' + header + table + '```\n');
