/**
 * Recipes: what to do to which weight. A global config, per-op-type overrides and per-node-name
 * overrides (node name wins over op type, op type over global; `null` skips). JSON or YAML,
 * validated with zod: unknown keys and bad values are rejected with the key path and the allowed values.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { z } from 'zod';
import { RecipeError } from '../errors.ts';

/** int3 / uint3: codes on a 3-bit grid (8 levels), stored as INT4 / UINT4 (ONNX has no 3-bit type). */
export const WEIGHT_TYPES = ['int8', 'uint8', 'int4', 'uint4', 'int3', 'uint3', 'fp16'] as const;
/** Weight types of 4 bits or fewer (block-wise by default, promoted to int8 first by the gate). */
export const LOW_BIT_WEIGHTS: ReadonlySet<string> = new Set(['int4', 'uint4', 'int3', 'uint3']);
export const GRANULARITIES = ['tensor', 'channel', 'block'] as const;
export const FORMATS = ['folded', 'qdq', 'matmulnbits'] as const;
/** Where the model will run: picks the weight format (and, for static W8A8, activation symmetry). */
export const TARGETS = ['ort-cpu', 'qdq', 'tensorrt'] as const;
export type DeploymentTarget = (typeof TARGETS)[number];

/** The weight format a target runs fastest: ORT folds Cast/Mul chains, QDQ toolchains want DequantizeLinear. */
export function defaultFormat(target: DeploymentTarget): 'folded' | 'qdq' {
  return target === 'ort-cpu' ? 'folded' : 'qdq';
}

const weightConfig = z
  .object({
    weights: z.enum(WEIGHT_TYPES),
    granularity: z.enum(GRANULARITIES),
    blockSize: z.number().int().min(16).max(256).refine((v) => (v & (v - 1)) === 0, 'must be a power of two (16, 32, 64, 128 or 256)'),
    symmetric: z.boolean(),
    format: z.enum(FORMATS),
  })
  .strict();

const partialConfig = weightConfig.partial();

export const recipeSchema = z
  .object({
    weights: z.enum(WEIGHT_TYPES).optional(),
    granularity: z.enum(GRANULARITIES).optional(),
    blockSize: weightConfig.shape.blockSize.optional(),
    symmetric: z.boolean().optional(),
    format: z.enum(FORMATS).optional(),
    target: z.enum(TARGETS).optional(),
    /** Weights with fewer elements are left in float. */
    minElements: z.number().int().min(0).optional(),
    /** What to do with a weight holding NaN or Inf. */
    onNonFinite: z.enum(['error', 'skip']).optional(),
    opTypes: z.record(z.string(), partialConfig.nullable()).optional(),
    nodes: z.record(z.string(), partialConfig.nullable()).optional(),
  })
  .strict();

const fraction = z.number().min(0).lt(1, 'must be below 1 (a fraction: 0.3 removes 30 %)');

/** The prune pass's options in a recipe's `passes:` list. */
export const pruneSchema = z
  .object({
    ratio: fraction.optional(),
    macs: fraction.optional(),
    round: z.number().int().min(1).optional(),
    maxRatio: z.number().gt(0).lt(1).optional(),
    criterion: z.enum(['l1', 'l2', 'fpgm', 'energy', 'obs']).optional(),
    recover: z.enum(['none', 'bn', 'lsq']).optional(),
    allocation: z.enum(['sensitivity', 'threshold']).optional(),
    steps: z.number().int().min(1).max(10).optional(),
    /** Node names or op types whose channels stay. */
    exclude: z.array(z.string()).optional(),
    /** Per producer node: a lower max ratio, or null to keep its channels. */
    nodes: z.record(z.string(), z.object({ maxRatio: z.number().gt(0).lt(1) }).strict().nullable()).optional(),
  })
  .strict()
  .refine((p) => (p.ratio === undefined) !== (p.macs === undefined), 'give exactly one of ratio and macs');

/** The quantize pass's options: the top-level recipe keys, plus how activations are quantized. */
export const quantizeSchema = recipeSchema.extend({
  activations: z.enum(['int8', 'uint8', 'dynamic']).optional(),
  reduceRange: z.boolean().optional(),
  weightMethod: z.enum(['rtn', 'gptq']).optional(),
  actOrder: z.boolean().optional(),
  sequential: z.boolean().optional(),
  /** Empirical bias correction from calibration data: on, off (default), auto (kept only when held-out outputs get closer to float). */
  biasCorrection: z.enum(['auto', 'on', 'off']).optional(),
}).strict();

/** The distill pass (knowledge distillation of the head; the teacher is the input model). */
export const distillSchema = z.object({
  epochs: z.number().int().min(1).optional(),
  temperature: z.number().gt(0).optional(),
  alpha: z.number().min(0).max(1).optional(),
  learningRate: z.number().gt(0).optional(),
  /** The graph output whose head is fitted (default: the first float output that has one). */
  output: z.string().optional(),
}).strict();

/** Palettization (weight sharing): the palettize pass's options. */
export const PALETTE_BITS = [1, 2, 3, 4, 6, 8] as const;
export const PALETTE_MODES = ['kmeans', 'uniform', 'unique'] as const;
export const LUT_DTYPES = ['float32', 'int8'] as const;
export const palettizeSchema = z.object({
  bits: z.number().refine((v) => (PALETTE_BITS as readonly number[]).includes(v), `must be one of ${PALETTE_BITS.join(', ')}`),
  mode: z.enum(PALETTE_MODES).optional(),
  /** Output channels per look-up table; 0 (default) = one table per tensor. */
  groupSize: z.number().int().min(0).optional(),
  perChannelScale: z.boolean().optional(),
  lutDtype: z.enum(LUT_DTYPES).optional(),
  keepZeros: z.enum(['auto', 'on', 'off']).optional(),
  weighting: z.enum(['sensitivity', 'none']).optional(),
  biasCorrection: z.enum(['auto', 'on', 'off']).optional(),
  minElements: z.number().int().min(0).optional(),
  exclude: z.array(z.string()).optional(),
}).strict();

/** Sparsity: the sparsify pass's options. `nm` as "N:M" (e.g. "2:4"). */
export const sparsifySchema = z.object({
  sparsity: fraction.optional(),
  nm: z.string().regex(/^\d+:\d+$/, 'must be N:M, e.g. 2:4').optional(),
  scope: z.enum(['layer', 'global']).optional(),
  method: z.enum(['magnitude', 'sparsegpt']).optional(),
  format: z.enum(['dense', 'compact']).optional(),
  sequential: z.boolean().optional(),
  biasCorrection: z.enum(['auto', 'on', 'off']).optional(),
  /** lsq: re-fit each sparse layer's kept weights to the float model's outputs (needs calibration data). */
  reconstruct: z.enum(['none', 'lsq']).optional(),
  minElements: z.number().int().min(0).optional(),
  exclude: z.array(z.string()).optional(),
}).strict().refine((p) => (p.sparsity === undefined) !== (p.nm === undefined), 'give exactly one of sparsity and nm');

export const passEntrySchema = z.union([
  z.object({ prune: pruneSchema }).strict(),
  z.object({ sparsify: sparsifySchema }).strict(),
  z.object({ palettize: palettizeSchema }).strict(),
  z.object({ quantize: quantizeSchema }).strict(),
  z.object({ distill: distillSchema }).strict(),
]);

/** A recipe file: quantize keys at the top level (one quantize pass), or a `passes:` list. */
export const recipeFileSchema = z.union([
  recipeSchema,
  z.object({ passes: z.array(passEntrySchema).min(1) }).strict(),
]);

export type PruneRecipe = z.infer<typeof pruneSchema>;
export type DistillRecipe = z.infer<typeof distillSchema>;
export type PalettizeRecipe = z.infer<typeof palettizeSchema>;
export type SparsifyRecipe = z.infer<typeof sparsifySchema>;
export type QuantizeRecipe = z.input<typeof quantizeSchema>;
export type PassEntry = z.infer<typeof passEntrySchema>;

export type RecipeInput = z.input<typeof recipeSchema>;
export type WeightConfig = z.infer<typeof weightConfig>;
export type PartialWeightConfig = z.infer<typeof partialConfig>;

export interface Recipe {
  target: DeploymentTarget;
  global: WeightConfig;
  minElements: number;
  onNonFinite: 'error' | 'skip';
  opTypes: Record<string, PartialWeightConfig | null>;
  nodes: Record<string, PartialWeightConfig | null>;
}

export const DEFAULT_TARGET: DeploymentTarget = 'ort-cpu';
export const DEFAULT_CONFIG: WeightConfig = { weights: 'int8', granularity: 'channel', blockSize: 32, symmetric: true, format: defaultFormat(DEFAULT_TARGET) };
export const DEFAULT_MIN_ELEMENTS = 1024;

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let v = input;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

function formatIssues(issues: z.core.$ZodIssue[], source: string, input: unknown): string {
  return issues
    .map((i) => {
      const path = i.path.length ? i.path.join('.') : '(top level)';
      if (i.code === 'unrecognized_keys') {
        const where = i.path.length ? `${path}: ` : '';
        return `${where}unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `'${k}'`).join(', ')}`;
      }
      if (i.code === 'invalid_value' && 'values' in i) {
        return `${path}: ${JSON.stringify(valueAt(input, i.path))} is not allowed (allowed: ${(i.values as unknown[]).join(', ')})`;
      }
      return `${path}: ${i.message}`;
    })
    .map((m) => `${source}: ${m}`)
    .join('; ');
}

/** Validates a recipe object (from a file or built from flags) and fills in defaults. */
export function parseRecipe(input: unknown, source = 'recipe'): Recipe {
  if (input === null || input === undefined) input = {};
  const parsed = recipeSchema.safeParse(input);
  if (!parsed.success) throw new RecipeError(formatIssues(parsed.error.issues, source, input), { source });
  const r = parsed.data;
  const target = r.target ?? DEFAULT_TARGET;
  const global: WeightConfig = {
    weights: r.weights ?? DEFAULT_CONFIG.weights,
    granularity: r.granularity ?? (r.weights && LOW_BIT_WEIGHTS.has(r.weights) ? 'block' : DEFAULT_CONFIG.granularity),
    blockSize: r.blockSize ?? DEFAULT_CONFIG.blockSize,
    symmetric: r.symmetric ?? DEFAULT_CONFIG.symmetric,
    format: r.format ?? defaultFormat(target),
  };
  const recipe: Recipe = {
    target,
    global,
    minElements: r.minElements ?? DEFAULT_MIN_ELEMENTS,
    onNonFinite: r.onNonFinite ?? 'error',
    opTypes: r.opTypes ?? {},
    nodes: r.nodes ?? {},
  };
  checkCombination(global, target, source);
  for (const [k, v] of Object.entries(recipe.opTypes)) if (v) checkCombination({ ...global, ...v }, target, `${source}: opTypes.${k}`);
  for (const [k, v] of Object.entries(recipe.nodes)) if (v) checkCombination({ ...global, ...v }, target, `${source}: nodes.${k}`);
  return recipe;
}

function checkCombination(c: WeightConfig, target: DeploymentTarget, where: string): void {
  if (target !== 'ort-cpu' && c.format !== 'qdq' && c.weights !== 'fp16') {
    throw new RecipeError(`${where}: target '${target}' consumes weights as DequantizeLinear (QDQ); format '${c.format}' is for ONNX Runtime (target ort-cpu)`);
  }
  if (target === 'tensorrt' && !c.symmetric) {
    throw new RecipeError(`${where}: target 'tensorrt' needs symmetric weights (TensorRT takes zero points of 0 only); drop asymmetric`);
  }
  if (c.format === 'matmulnbits' && c.weights !== 'int4' && c.weights !== 'uint4') {
    throw new RecipeError(`${where}: format 'matmulnbits' needs weights int4 or uint4, got '${c.weights}'`);
  }
  if (c.format === 'matmulnbits' && c.granularity !== 'block') {
    throw new RecipeError(`${where}: format 'matmulnbits' is block-wise; set granularity 'block' (got '${c.granularity}')`);
  }
}

/** A recipe file's contents, validated but without defaults filled in (flags may still override them). */
export function loadRecipeInput(path: string): RecipeInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new RecipeError(`recipe file not found: ${path}`, { path });
  }
  let data: unknown;
  try {
    // yaml loads only when a YAML recipe is read (it is a start-up cost every other run would pay).
    data = path.endsWith('.json') ? JSON.parse(text) : (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);
  } catch (err) {
    throw new RecipeError(`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`, { path });
  }
  if (data !== null && typeof data === 'object' && 'passes' in data) {
    parsePassList(data, path);
    return data as RecipeInput;
  }
  parseRecipe(data, path);
  return (data ?? {}) as RecipeInput;
}

/** Validates a recipe's `passes:` list; top-level quantize keys beside it are refused with the fix. */
export function parsePassList(input: unknown, source = 'recipe'): PassEntry[] {
  const obj = input as Record<string, unknown>;
  const stray = Object.keys(obj).filter((k) => k !== 'passes');
  if (stray.length) throw new RecipeError(`${source}: ${stray.map((k) => `'${k}'`).join(', ')} beside 'passes': move quantize keys into the list's quantize entry ({ quantize: { ${stray[0]}: ... } })`, { source });
  const parsed = z.object({ passes: z.array(passEntrySchema).min(1) }).strict().safeParse(input);
  if (!parsed.success) throw new RecipeError(formatIssues(parsed.error.issues, source, input), { source });
  return parsed.data.passes;
}

export function loadRecipeFile(path: string): Recipe {
  return parseRecipe(loadRecipeInput(path), path);
}

/** The config for one node: node name over op type over global; null means leave it alone. */
export function configFor(recipe: Recipe, node: { name?: string; opType?: string }): WeightConfig | null {
  const byName = node.name !== undefined && Object.hasOwn(recipe.nodes, node.name) ? recipe.nodes[node.name] : undefined;
  if (byName === null) return null;
  const byOp = node.opType !== undefined && Object.hasOwn(recipe.opTypes, node.opType) ? recipe.opTypes[node.opType] : undefined;
  if (byName === undefined && byOp === null) return null;
  return { ...recipe.global, ...(byOp ?? {}), ...(byName ?? {}) };
}

/** The recipe as resolved, for the report's reproducibility manifest. */
export function describeRecipe(r: Recipe): Record<string, unknown> {
  return { target: r.target, ...r.global, minElements: r.minElements, onNonFinite: r.onNonFinite, opTypes: r.opTypes, nodes: r.nodes };
}
