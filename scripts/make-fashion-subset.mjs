#!/usr/bin/env node
// Writes the seeded Fashion-MNIST subset the tests use (test/assets/fashion-mnist/) from the full
// IDX files (Debian's dataset-fashion-mnist by default). Fashion-MNIST is MIT-licensed (Zalando
// Research); the subset keeps the tests runnable on a machine with only Node and npm.
// Usage (after npm run build): node scripts/make-fashion-subset.mjs [source-folder] [test-count] [train-count]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
// The project's seeded generator (run `npm run build` first).
import { seededRandom as seeded } from '../dist/src/random.js';

const src = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const counts = { t10k: Number(process.argv[3] ?? 3000), train: Number(process.argv[4] ?? 1024) };
const out = 'test/assets/fashion-mnist';
mkdirSync(out, { recursive: true });

function pickIndices(n, k, seed) {
  const idx = Array.from({ length: n }, (_, i) => i);
  const r = seeded(seed);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(r() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}

for (const [prefix, k] of Object.entries(counts)) {
  const images = gunzipSync(readFileSync(join(src, `${prefix}-images-idx3-ubyte.gz`)));
  const labels = gunzipSync(readFileSync(join(src, `${prefix}-labels-idx1-ubyte.gz`)));
  const n = images.readUInt32BE(4), rows = images.readUInt32BE(8), cols = images.readUInt32BE(12);
  const px = rows * cols;
  const picks = pickIndices(n, k, prefix === 't10k' ? 10 : 60);
  const img = Buffer.alloc(16 + k * px);
  img.writeUInt32BE(0x803, 0); img.writeUInt32BE(k, 4); img.writeUInt32BE(rows, 8); img.writeUInt32BE(cols, 12);
  const lab = Buffer.alloc(8 + k);
  lab.writeUInt32BE(0x801, 0); lab.writeUInt32BE(k, 4);
  picks.forEach((p, i) => {
    images.copy(img, 16 + i * px, 16 + p * px, 16 + (p + 1) * px);
    lab[8 + i] = labels[8 + p];
  });
  writeFileSync(join(out, `${prefix}-images-idx3-ubyte.gz`), gzipSync(img, { level: 9 }));
  writeFileSync(join(out, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(lab, { level: 9 }));
  console.log(`${prefix}: ${k} of ${n} samples`);
}
