// Bad input: every case is a typed error with a one-line message, and the CLI exits non-zero
// without a stack trace. Plus a seeded fuzz test over a real model's bytes.
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OnnxModel } from '../src/onnx/model.ts';
import { ModelError, ModelpressError } from '../src/errors.ts';
import { encodeModel, decodeModel } from '../src/onnx/proto.ts';
import { MNIST, OCR, modelBytes, sharedWeightModel } from './helpers/models.ts';
import { mutate, mutationArb } from '../bench/mutate.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-bad-'));
const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;

function file(name: string, bytes: Uint8Array | string): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

function withGraph(edit: (m: ReturnType<typeof decodeModel>) => void): Uint8Array {
  const m = decodeModel(readFileSync(MNIST));
  edit(m);
  return encodeModel(m);
}

const cases: Array<[string, () => string, string, string]> = [
  ['missing file', () => join(dir, 'nope.onnx'), 'FILE_NOT_FOUND', `model file not found: ${join(dir, 'nope.onnx')}`],
  ['empty file', () => file('empty.onnx', new Uint8Array(0)), 'INVALID_MODEL', 'is empty (0 bytes), not an ONNX model'],
  ['truncated file', () => file('trunc.onnx', readFileSync(MNIST).subarray(0, 30_000)), 'INVALID_MODEL', 'is not a valid ONNX model: the protobuf is truncated or corrupt'],
  ['a non-ONNX file', () => file('text.onnx', 'This is a README, not a model.\n'), 'INVALID_MODEL', 'is not a valid ONNX model'],
  ['a protobuf that is not a model', () => file('tensor.onnx', new Uint8Array([0x08, 0x03, 0x10, 0x01])), 'INVALID_MODEL', 'is a protobuf but not an ONNX model (missing graph'],
  ['a node reading a missing tensor', () => file('missing.onnx', withGraph((m) => (m.graph!.node[1].input[0] = 'ghost'))), 'INVALID_MODEL', "reads 'ghost', which no graph input, initializer, sparse initializer or earlier node produces"],
  ['an unsupported opset', () => file('opset.onnx', withGraph((m) => (m.opsetImport[0].version = 99))), 'UNSUPPORTED_MODEL', 'imports ai.onnx opset 99; modelpress supports opsets 7 to 23'],
  ['an unsupported IR version', () => file('ir.onnx', withGraph((m) => (m.irVersion = 42))), 'UNSUPPORTED_MODEL', 'has IR version 42; modelpress reads IR versions up to 11'],
];

describe('bad model files', () => {
  it.each(cases)('%s: typed error', (_n, make, code, message) => {
    const path = make();
    let err: unknown;
    try {
      OnnxModel.read(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe(code);
    expect((err as ModelError).message).toContain(message);
    expect((err as ModelError).message).not.toContain('\n');
  });

  it.each(cases)('%s: `modelpress inspect` exits 1 with one line on stderr, no stack trace', (_n, make, _code, message) => {
    const r = spawnSync(process.execPath, [bin, 'inspect', make()], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^modelpress: error: /);
    expect(lines[0]).toContain(message);
  });

  it('--verbose adds the stack trace', () => {
    const r = spawnSync(process.execPath, [bin, 'inspect', join(dir, 'nope.onnx'), '--verbose'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/at .*\.js:\d+/);
  });
});

describe('compress refuses dangerous outputs', () => {
  it('output path equal to the input: exit 1, input untouched', () => {
    const src = file('in.onnx', readFileSync(MNIST));
    const before = readFileSync(src);
    const r = spawnSync(process.execPath, [bin, 'compress', src, '-o', src], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`modelpress: error: output path ${src} is the input model; choose another path (inputs are never modified)`);
    expect(Buffer.compare(readFileSync(src), before)).toBe(0);
  });

  it('an existing output needs --force', () => {
    const src = file('in2.onnx', readFileSync(MNIST));
    const out = file('exists.onnx', 'old');
    const r = spawnSync(process.execPath, [bin, 'compress', src, '-o', out, '--backend', 'cpu'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`output ${out} already exists; pass --force to replace it`);
    expect(readFileSync(out, 'utf8')).toBe('old');
    const ok = spawnSync(process.execPath, [bin, 'compress', src, '-o', out, '--backend', 'cpu', '--force', '--json'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).totals.tensorsQuantized).toBe(3);
  });

  it('a failing compress leaves no output behind', () => {
    const src = file('nan-free.onnx', modelBytes(sharedWeightModel()));
    const out = join(dir, 'never.onnx');
    const r = spawnSync(process.execPath, [bin, 'compress', src, '-o', out, '--backend', 'cpu', '--recipe', file('conflict.yaml', 'nodes:\n  mm2:\n    weights: uint8\n')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/modelpress: error: weight 'W' is shared by nodes 'mm1'/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('fuzz: mutated bytes of a real model', () => {
  const base = readFileSync(`${OCR}ch_ppocr_mobile_v2.0_cls_infer.onnx`);
  it('the reader only ever returns a model or a typed error (2000 seeded cases)', () => {
    let models = 0;
    let errors = 0;
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (muts) => {
        const b = mutate(base, muts);
        try {
          OnnxModel.fromBytes(b, dir, 'fuzz.onnx');
          models++;
        } catch (err) {
          if (!(err instanceof ModelpressError)) throw err;
          errors++;
        }
      }),
      { seed: 424242, numRuns: 2000 },
    );
    expect(models + errors).toBe(2000);
    expect(errors).toBeGreaterThan(0);
  });
});
