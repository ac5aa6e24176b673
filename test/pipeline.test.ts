// compress as a pipeline of passes, as a user runs it: flags and recipes build the pass list.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validatePassOrder } from '../src/pipeline/compress.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { RecipeError } from '../src/errors.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { layerCosts } from '../src/analysis/macs.ts';
import { summarizeEncodings } from '../src/analysis/encodings.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { unprunableNet } from './helpers/prune-graphs.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'modelpress-pipeline-'));
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });
const FASHION = 'test/assets/fashion-cnn.onnx';
const TRAIN = 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz';

describe('pass order', () => {
  const q = { pass: 'quantize' as const, options: { mode: 'weight-only' as const, recipe: parseRecipe({}) } };
  const p = { pass: 'prune' as const, options: { ratio: 0.3 } };
  it('prune then quantize is allowed; quantize before prune and two quantize passes are refused with the fix', () => {
    expect(() => validatePassOrder([p, q])).not.toThrow();
    expect(() => validatePassOrder([q, p])).toThrow(RecipeError);
    expect(() => validatePassOrder([q, p])).toThrow('prune cannot run after quantize: order the passes prune, quantize');
    expect(() => validatePassOrder([q, q])).toThrow('two quantize passes');
  });
});

describe('modelpress compress --prune', () => {
  it('--prune 0.5 alone: a smaller float model with fewer MACs, the report has a prune section and no quantization', () => {
    const out = join(dir, 'pruned.onnx');
    const report = join(dir, 'pruned.json');
    const r = run(['compress', FASHION, '-o', out, '--prune', '0.5', '--prune-round', '4', '--backend', 'cpu', '-q', '--report', report]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pruning: +MACs 1\.2 M -> /m);
    const j = JSON.parse(readFileSync(report, 'utf8'));
    expect(j.mode).toBe('float');
    expect(j.passes.map((s: { pass: string }) => s.pass)).toEqual(['prune']);
    expect(j.prune.channelsRemoved).toBeGreaterThan(0);
    expect(j.totals.macsAfter).toBeLessThan(j.totals.macsBefore * 0.6);
    expect(j.manifest.recipe.passes[0]).toMatchObject({ pass: 'prune', ratio: 0.5, round: 4 });
    const m = OnnxModel.read(out);
    expect(layerCosts(m).macs).toBe(j.totals.macsAfter);
    expect(statSync(out).size).toBeLessThan(statSync(FASHION).size * 0.6);
    expect(summarizeEncodings(m).folded).toBe(0);
  });

  it('--prune 0.3 --weights int8: prune, then quantize, in one read and one write', () => {
    const out = join(dir, 'pruned-int8.onnx');
    const r = run(['compress', FASHION, '-o', out, '--prune', '0.3', '--weights', 'int8', '--backend', 'cpu', '-q', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.passes.map((s: { pass: string }) => s.pass)).toEqual(['prune', 'quantize']);
    expect(j.mode).toBe('weight-only');
    expect(j.totals.tensorsQuantized).toBeGreaterThan(0);
    expect(summarizeEncodings(OnnxModel.read(out)).folded).toBe(j.totals.tensorsQuantized);
  });

  it('a recipe passes: list, with flags overriding the file', () => {
    const recipe = join(dir, 'passes.yaml');
    writeFileSync(recipe, 'passes:\n  - prune: { ratio: 0.25, round: 4 }\n  - quantize: { weights: int8, granularity: tensor }\n');
    const r = run(['compress', FASHION, '-o', join(dir, 'recipe.onnx'), '--recipe', recipe, '--prune-round', '8', '--backend', 'cpu', '-q', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.manifest.recipe.passes).toMatchObject([{ pass: 'prune', ratio: 0.25, round: 8 }, { pass: 'quantize', mode: 'weight-only', granularity: 'tensor' }]);
  });

  it('recipe errors name the problem: quantize before prune, keys beside passes, bad ratios', () => {
    const cases: Array<[string, RegExp]> = [
      ['passes:\n  - quantize: { weights: int8 }\n  - prune: { ratio: 0.3 }\n', /prune cannot run after quantize: order the passes prune, quantize/],
      ['weights: int8\npasses:\n  - prune: { ratio: 0.3 }\n', /'weights' beside 'passes'/],
      ['passes:\n  - prune: { ratio: 1.2 }\n', /passes\.0\.prune\.ratio/],
      ['passes:\n  - prune: { ratio: 0.2, macs: 0.3 }\n', /exactly one of ratio and macs/],
    ];
    for (const [text, msg] of cases) {
      const recipe = join(dir, 'bad.yaml');
      writeFileSync(recipe, text);
      const r = run(['compress', FASHION, '-o', join(dir, 'bad.onnx'), '--recipe', recipe, '--backend', 'cpu', '-q']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('bad flags: ratio outside [0, 1), pruning options without --prune, --recover without data', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--prune', '1'], /--prune 1: must be a fraction in \[0, 1\)/],
      [['--prune-macs', '-0.2'], /--prune-macs -0\.2/],
      [['--prune-round', '8'], /--prune-round applies to pruning: add --prune/],
      [['--prune', '0.3', '--recover', 'lsq'], /--recover lsq needs --calibration data/],
    ];
    for (const [flags, msg] of bad) {
      const r = run(['compress', FASHION, '-o', join(dir, 'x.onnx'), '--force', '--backend', 'cpu', '-q', ...flags]);
      expect(r.status, flags.join(' ')).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
    }
  });

  it('an unreachable --prune-macs prunes as far as allowed, says so and exits 3', () => {
    const out = join(dir, 'far.onnx');
    const r = run(['compress', FASHION, '-o', out, '--prune-macs', '0.97', '--backend', 'cpu', '-q']);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/--prune-macs 0\.97 cannot be reached: pruned as far as the groups allow/);
    expect(statSync(out).size).toBeGreaterThan(0);
  });

  it('nothing prunable exits 1 listing the reasons', () => {
    const src = join(dir, 'unprunable.onnx');
    writeFileSync(src, encodeModel(unprunableNet()));
    const r = run(['compress', src, '-o', join(dir, 'none.onnx'), '--prune', '0.3', '--backend', 'cpu', '-q']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/nothing to prune: every channel group is stopped \(.*Transpose 'transpose'/);
  });

  it('--calibration with --prune feeds recovery (lsq by default); --calibration alone still means static W8A8', () => {
    const a = run(['compress', FASHION, '-o', join(dir, 'rec.onnx'), '--prune', '0.5', '--prune-round', '4', '--calibration', TRAIN, '--calib-samples', '128', '--backend', 'cpu', '-q', '--json']);
    expect(a.status, a.stderr).toBe(0);
    const j = JSON.parse(a.stdout);
    expect(j.prune.recovery.method).toBe('lsq');
    expect(j.passes[0].usedCalibration).toBe(true);
    expect(j.mode).toBe('float');
    const b = run(['compress', FASHION, '-o', join(dir, 'static.onnx'), '--calibration', TRAIN, '--calib-samples', '64', '--calib-method', 'minmax', '--backend', 'cpu', '-q', '--json']);
    expect(b.status, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).mode).toBe('static-w8a8');
    const c = run(['compress', FASHION, '-o', join(dir, 'both.onnx'), '--prune', '0.25', '--recover', 'bn', '--calibration', TRAIN, '--calib-samples', '64', '--calib-method', 'minmax', '--activations', 'uint8', '--backend', 'cpu', '-q', '--json']);
    expect(c.status, c.stderr).toBe(0);
    const k = JSON.parse(c.stdout);
    expect(k.passes.map((s: { pass: string; usedCalibration: boolean }) => [s.pass, s.usedCalibration])).toEqual([['prune', true], ['quantize', true]]);
    expect(k.mode).toBe('static-w8a8');
    expect(summarizeEncodings(OnnxModel.read(join(dir, 'both.onnx'))).quantizedActivations).toBeGreaterThan(0);
  });

  it('--weight-method gptq reads --calibration (no static W8A8); its flags are checked', () => {
    const a = run(['compress', FASHION, '-o', join(dir, 'gptq.onnx'), '--weights', 'int4', '--weight-method', 'gptq', '--calibration', TRAIN, '--calib-samples', '64', '--backend', 'cpu', '-q', '--json']);
    expect(a.status, a.stderr).toBe(0);
    const j = JSON.parse(a.stdout);
    expect(j.mode).toBe('weight-only');
    expect(j.passes[0]).toMatchObject({ pass: 'quantize', usedCalibration: true });
    expect(j.passes[0].report.gptq.length).toBeGreaterThan(0);
    const bad: Array<[string[], RegExp]> = [
      [['--weight-method', 'gptq'], /--weight-method gptq needs --calibration data/],
      [['--act-order'], /--act-order applies to --weight-method gptq/],
      [['--sequential'], /--sequential applies to --weight-method gptq/],
    ];
    for (const [flags, msg] of bad) {
      const r = run(['compress', FASHION, '-o', join(dir, 'x.onnx'), '--force', '--backend', 'cpu', '-q', ...flags]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('--help names the passes and which of them read --calibration', () => {
    const r = run(['compress', '--help']);
    expect(r.stdout).toMatch(/prune +--prune \/ --prune-macs; reads --calibration to score channels \(energy, obs\) and to re-fit/);
    expect(r.stdout).toMatch(/--calibration alone \(no other pass named\) keeps its old meaning: static W8A8/);
  });
});
