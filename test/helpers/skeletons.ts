/**
 * Graph skeletons (test/assets/skeletons, from scripts/export_graph_skeletons.py): torchvision
 * graphs whose weight values were removed to keep the repository small. `loadSkeleton` refills
 * every stripped weight with seeded He-scaled random values: real architectures for coverage.
 */
import { readFileSync } from 'node:fs';
import { decodeModel, encodeModel, int64, type ModelMsg } from '../../src/onnx/proto.ts';
import { seededRandom } from '../../src/random.ts';

export const SKELETONS = {
  ssdlite: 'test/assets/skeletons/ssdlite320-mobilenet-v3.onnx',
  lraspp: 'test/assets/skeletons/lraspp-mobilenet-v3.onnx',
} as const;

export function loadSkeleton(path: string, seed = 1): Uint8Array {
  const msg: ModelMsg = decodeModel(readFileSync(path));
  const r = seededRandom(seed);
  for (const t of msg.graph!.initializer) {
    if (t.docString !== 'modelpress:skeleton') continue;
    const dims = t.dims.map(int64);
    const n = dims.reduce((a, b) => a * b, 1);
    const fanIn = dims.length > 1 ? dims.slice(1).reduce((a, b) => a * b, 1) : 1;
    const scale = dims.length > 1 ? Math.sqrt(3 / fanIn) : 0.1;
    // 1-D tensors are biases or batch-norm parameters: positive near 1 for scales/variances keeps
    // activations finite whichever they are.
    const values = Float32Array.from({ length: n }, () => (dims.length > 1 ? (r() * 2 - 1) * scale : 0.5 + r()));
    t.rawData = new Uint8Array(values.buffer);
    t.docString = '';
  }
  return encodeModel(msg);
}
