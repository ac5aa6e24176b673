import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFor, loadRecipeFile, parseRecipe } from '../src/recipe/recipe.ts';
import { RecipeError } from '../src/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-recipe-'));

describe('recipe precedence', () => {
  const r = parseRecipe({
    weights: 'int8',
    opTypes: { MatMul: { weights: 'int4', granularity: 'block', blockSize: 64 }, Conv: null },
    nodes: { special_mm: { weights: 'uint8', granularity: 'tensor' }, conv_keep: { symmetric: false }, mm_skip: null },
  });
  it('global applies where nothing overrides', () => {
    expect(configFor(r, { name: 'g1', opType: 'Gemm' })).toEqual({ weights: 'int8', granularity: 'channel', blockSize: 32, symmetric: true, format: 'folded' });
  });
  it('op type overrides global', () => {
    expect(configFor(r, { name: 'any', opType: 'MatMul' })).toMatchObject({ weights: 'int4', granularity: 'block', blockSize: 64 });
  });
  it('node name overrides op type, on top of it', () => {
    expect(configFor(r, { name: 'special_mm', opType: 'MatMul' })).toMatchObject({ weights: 'uint8', granularity: 'tensor', blockSize: 64 });
  });
  it('null skips: for an op type, unless the node is named; for a node, always', () => {
    expect(configFor(r, { name: 'c1', opType: 'Conv' })).toBeNull();
    expect(configFor(r, { name: 'conv_keep', opType: 'Conv' })).toMatchObject({ weights: 'int8', symmetric: false });
    expect(configFor(r, { name: 'mm_skip', opType: 'MatMul' })).toBeNull();
  });
  it('int4 defaults to block granularity', () => {
    expect(parseRecipe({ weights: 'int4' }).global.granularity).toBe('block');
  });
});

describe('recipe errors name the key path and the allowed values', () => {
  const cases: Array<[string, unknown, string]> = [
    ['unknown top-level key', { weight: 'int8' }, "recipe: unknown key 'weight'"],
    ['unknown key in an override', { opTypes: { Conv: { bits: 4 } } }, "recipe: opTypes.Conv: unknown key 'bits'"],
    ['bad weight type', { weights: 'int2' }, 'recipe: weights: "int2" is not allowed (allowed: int8, uint8, int4, uint4, int3, uint3, fp16)'],
    ['bad granularity in a node override', { nodes: { fc1: { granularity: 'row' } } }, 'recipe: nodes.fc1.granularity: "row" is not allowed (allowed: tensor, channel, block)'],
    ['block size not a power of two', { blockSize: 48 }, 'recipe: blockSize: must be a power of two (16, 32, 64, 128 or 256)'],
    ['block size too small', { blockSize: 8 }, 'recipe: blockSize:'],
    ['wrong value type', { symmetric: 'yes' }, 'recipe: symmetric:'],
    ['matmulnbits with int8', { format: 'matmulnbits', weights: 'int8', granularity: 'block' }, "recipe: format 'matmulnbits' needs weights int4 or uint4, got 'int8'"],
    ['matmulnbits per-channel', { format: 'matmulnbits', weights: 'int4', granularity: 'channel' }, "recipe: format 'matmulnbits' is block-wise; set granularity 'block' (got 'channel')"],
    ['bad onNonFinite', { onNonFinite: 'ignore' }, 'recipe: onNonFinite: "ignore" is not allowed (allowed: error, skip)'],
    ['negative minElements', { minElements: -1 }, 'recipe: minElements:'],
  ];
  it.each(cases)('%s', (_n, input, message) => {
    expect(() => parseRecipe(input)).toThrow(RecipeError);
    expect(() => parseRecipe(input)).toThrow(message);
  });

  it('YAML and JSON files load; a syntax error and a missing file are reported with the path', () => {
    const y = join(dir, 'r.yaml');
    writeFileSync(y, 'weights: int4\nformat: matmulnbits\nopTypes:\n  Conv: null\n');
    expect(loadRecipeFile(y).global).toMatchObject({ weights: 'int4', granularity: 'block', format: 'matmulnbits' });
    const j = join(dir, 'r.json');
    writeFileSync(j, JSON.stringify({ nodes: { fc2: null } }));
    expect(loadRecipeFile(j).nodes).toEqual({ fc2: null });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'weights: [int8\n');
    expect(() => loadRecipeFile(bad)).toThrow(`${bad}: not valid YAML`);
    const badKey = join(dir, 'key.yaml');
    writeFileSync(badKey, 'granularty: channel\n');
    expect(() => loadRecipeFile(badKey)).toThrow(`${badKey}: unknown key 'granularty'`);
    expect(() => loadRecipeFile(join(dir, 'none.yaml'))).toThrow(`recipe file not found: ${join(dir, 'none.yaml')}`);
  });
});
