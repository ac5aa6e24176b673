// Large models are read lazily: weights stay on disk until a pass reads them, straight into
// aligned arrays, and the writer streams untouched payloads from the source.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OnnxModel, allTensors, writeModel } from '../src/onnx/model.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { ModelError } from '../src/errors.ts';
import { compressWeights } from '../src/passes/quantize/weight-only.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { LAZY_FILE_MIN_BYTES } from '../src/onnx/lazy-read.ts';
import { resnet18 } from './helpers/zoo.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-lazy-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
const path = join(dir, 'resnet18.onnx');
writeFileSync(path, encodeModel(resnet18()));
const bytes = readFileSync(path);
afterAll(() => {
  cpu.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('lazy reading of a 46.7 MB model', () => {
  it('keeps the large payloads on disk and reads the same values', () => {
    expect(bytes.length).toBeGreaterThan(LAZY_FILE_MIN_BYTES);
    const lazy = OnnxModel.read(path);
    const eager = OnnxModel.fromBytes(bytes, dir, path);
    const lt = allTensors(lazy.msg);
    const et = allTensors(eager.msg);
    const onDisk = lt.filter((t) => lazy.lazyRange(t) !== null);
    // The nine tensors of 1 MiB or more: 87 % of the file.
    expect(onDisk.length).toBe(9);
    expect(onDisk.reduce((a, t) => a + lazy.lazyRange(t)!.length, 0) / bytes.length).toBeGreaterThan(0.85);
    // The decoded skeleton holds 16-byte markers instead of the weights.
    expect(onDisk.every((t) => t.rawData!.length === 16)).toBe(true);
    expect(lt.map((t) => t.name)).toEqual(et.map((t) => t.name));
    for (let i = 0; i < lt.length; i++) {
      const a = lazy.tensorFloat32(lt[i]);
      expect(a.byteOffset % 4).toBe(0);
      expect(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(eager.tensorBytes(et[i])))).toBe(0);
    }
    expect(lazy.sourceBytes).toBe(bytes.length);
  });

  it('writing it unchanged gives the same bytes (payloads streamed from the source)', () => {
    const out = join(dir, 'copy.onnx');
    writeModel(OnnxModel.read(path), out);
    expect(Buffer.compare(readFileSync(out), bytes)).toBe(0);
    const outExt = join(dir, 'copy-ext.onnx');
    writeModel(OnnxModel.read(path), outExt, { externalData: 'always' });
    const back = OnnxModel.read(outExt);
    const w = back.graph.weights.get('fc.weight')!;
    expect(back.tensorFloat32(w.tensor)).toEqual(OnnxModel.fromBytes(bytes, dir).tensorFloat32(OnnxModel.fromBytes(bytes, dir).graph.weights.get('fc.weight')!.tensor));
    // toBytes materializes the payloads (ONNX Runtime sessions from bytes).
    expect(Buffer.compare(Buffer.from(OnnxModel.read(path).toBytes()), bytes)).toBe(0);
  });

  it('compressing the lazy model writes the same file as compressing it in memory', async () => {
    const a = OnnxModel.read(path);
    const b = OnnxModel.fromBytes(bytes, dir, path);
    await compressWeights(a, { recipe: parseRecipe({}), scheduler: cpu });
    await compressWeights(b, { recipe: parseRecipe({}), scheduler: cpu });
    writeModel(a, join(dir, 'a.onnx'));
    writeModel(b, join(dir, 'b.onnx'));
    expect(Buffer.compare(readFileSync(join(dir, 'a.onnx')), readFileSync(join(dir, 'b.onnx')))).toBe(0);
  });

  it('a truncated large file is a typed error naming the file', () => {
    for (const cut of [LAZY_FILE_MIN_BYTES + 5, bytes.length - 3, Math.floor(bytes.length / 2)]) {
      const p = join(dir, `cut-${cut}.onnx`);
      writeFileSync(p, bytes.subarray(0, cut));
      let err: unknown;
      try {
        const m = OnnxModel.read(p);
        // A cut inside a payload is found when that tensor is read.
        for (const t of allTensors(m.msg)) m.tensorBytes(t);
      } catch (e) {
        err = e;
      }
      expect(err, `cut at ${cut}`).toBeInstanceOf(ModelError);
      expect((err as Error).message).toMatch(/cut-\d+\.onnx|truncated|changed while|raw_data/);
    }
  });
});
