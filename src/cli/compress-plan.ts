/**
 * `compress` flags (and a recipe file) → the pipeline's pass list and calibration source.
 *  - `--prune` / `--prune-macs` add a prune pass; quantize flags add a quantize pass after it.
 *  - No pass named at all: one quantize pass (int8 weight-only by default), as always.
 *  - `--calibration` feeds every pass that reads data. Alone (no other pass named) it still means
 *    static W8A8; with `--prune` it feeds recovery, and static W8A8 needs `--activations int8|uint8`.
 */
import { RecipeError } from '../errors.ts';
import type { RecipeInput, PruneRecipe, QuantizeRecipe, DistillRecipe, PalettizeRecipe, SparsifyRecipe } from '../recipe/recipe.ts';
import type { PassSpec } from '../passes/registry.ts';
import type { CalibrationSource } from '../passes/pass.ts';
import type { OnnxModel } from '../onnx/model.ts';
import { int, num } from './common.ts';
import { preprocessFrom, staticOptionsFrom, type CalibrationFlags } from './calibration-flags.ts';

export interface CompressFlags extends CalibrationFlags {
  output: string;
  recipe?: string;
  weights?: string;
  granularity?: string;
  blockSize?: string;
  symmetric?: boolean;
  asymmetric?: boolean;
  format?: string;
  target?: string;
  exclude?: string[];
  minElements?: string;
  evalData?: string;
  samples?: string;
  maxDrop?: string;
  minCosine?: string;
  minSqnr?: string;
  reduceRange?: boolean;
  prune?: string;
  pruneMacs?: string;
  pruneRound?: string;
  pruneMaxRatio?: string;
  pruneSteps?: string;
  pruneCriterion?: 'l1' | 'l2' | 'fpgm' | 'energy' | 'obs';
  /** Comma list: a pruning recovery (none|bn|lsq; lsq also re-fits sparse layers) and/or bias and kd. */
  recover?: string;
  pruneAllocation?: 'sensitivity' | 'threshold';
  weightMethod?: 'rtn' | 'gptq';
  actOrder?: boolean;
  sequential?: boolean;
  kdEpochs?: string;
  kdTemperature?: string;
  kdAlpha?: string;
  kdLr?: string;
  palettize?: string;
  palettizeMode?: 'kmeans' | 'uniform' | 'unique';
  groupSize?: string;
  perChannelScale?: boolean;
  lutDtype?: 'float32' | 'int8';
  palettizeWeighting?: 'sensitivity' | 'none';
  sparsity?: string;
  nm?: string;
  sparseScope?: 'layer' | 'global';
  sparseMethod?: 'magnitude' | 'sparsegpt';
  sparseFormat?: 'dense' | 'compact';
}

/** "2:4" -> { n: 2, m: 4 }. */
export function parseNm(value: string, flag: string): { n: number; m: number } {
  const m = /^(\d+):(\d+)$/.exec(value.trim());
  if (!m) throw new RecipeError(`${flag} ${value}: give N:M, e.g. 2:4 (keep 2 of every 4 weights)`);
  return { n: Number(m[1]), m: Number(m[2]) };
}

const PRUNE_RECOVERY = ['none', 'bn', 'lsq'] as const;
/** The order passes run in (passes/registry.ts ranks): pruning, sparsity, weight sharing, quantization, distillation. */
const PASS_ORDER = ['prune', 'sparsify', 'palettize', 'quantize', 'distill'] as const;
const RECOVER_METHODS = [...PRUNE_RECOVERY, 'bias', 'kd'] as const;

/** `--recover lsq,bias`: the prune pass's recovery (if named) and whether bias correction was asked for. */
export function parseRecover(value: string | undefined): { prune?: (typeof PRUNE_RECOVERY)[number]; bias?: 'auto' | 'off'; kd?: boolean } {
  if (value === undefined) return {};
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = items.filter((m) => !(RECOVER_METHODS as readonly string[]).includes(m));
  if (!items.length || unknown.length) throw new RecipeError(`--recover ${value}: unknown method ${unknown.join(', ') || '(empty)'}; give a comma list of ${RECOVER_METHODS.join(', ')} (e.g. --recover lsq,bias)`);
  const prune = items.filter((m): m is (typeof PRUNE_RECOVERY)[number] => (PRUNE_RECOVERY as readonly string[]).includes(m));
  if (prune.length > 1) throw new RecipeError(`--recover ${value}: name one pruning recovery (${PRUNE_RECOVERY.join(', ')}), got ${prune.join(' and ')}`);
  if (prune[0] === 'none' && items.includes('bias')) throw new RecipeError(`--recover ${value}: none contradicts bias`);
  return { prune: prune[0], bias: items.includes('bias') ? 'auto' : prune[0] === 'none' ? 'off' : undefined, ...(items.includes('kd') ? { kd: true } : {}) };
}

export interface CompressPlan {
  passes: PassSpec[];
  calibration?: CalibrationSource;
  /** Static W8A8 is the quantize pass (its own evaluation replaces the CLI's). */
  staticMode: boolean;
}

/**
 * Static W8A8 stores weights one way (int8, per channel, QDQ: what ORT fuses into integer kernels).
 * Flags that say the same are accepted; flags that ask for something else are refused by name.
 */
function checkStaticFlags(o: CompressFlags, recipeHasQuantizeKeys: boolean): void {
  const agree: Array<[string, string | undefined, string[]]> = [
    ['--weights', o.weights, ['int8']],
    ['--granularity', o.granularity, ['channel']],
    ['--format', o.format, ['qdq']],
  ];
  for (const [flag, value, allowed] of agree) {
    if (value !== undefined && !allowed.includes(value)) {
      throw new RecipeError(`${flag} ${value} conflicts with --calibration (static W8A8 stores weights as int8, per channel, in QDQ form): allowed with --calibration: ${allowed.join(', ')}; or drop --calibration for weight-only ${value}`);
    }
  }
  if (o.blockSize !== undefined) throw new RecipeError('--block-size conflicts with --calibration (static W8A8 weights are per channel, not per block)');
  if (recipeHasQuantizeKeys) throw new RecipeError('--recipe describes weight-only compression and conflicts with --calibration (static W8A8); use --exclude to keep layers in float');
  if (o.minElements !== undefined) throw new RecipeError('--min-elements applies to weight-only compression; with --calibration use --exclude to keep layers in float');
  if (o.target === 'tensorrt') {
    // TensorRT's INT8 takes symmetric activations only (zero point 0).
    if (o.activations === 'uint8') throw new RecipeError('--activations uint8 conflicts with --target tensorrt (TensorRT quantizes activations to int8 with zero point 0): use --activations int8');
    if (o.symmetric === false) throw new RecipeError('--asymmetric conflicts with --target tensorrt (TensorRT takes zero points of 0 only)');
    o.activations = 'int8';
    o.symmetric = true;
  }
}

/** Names in `list` resolved against the model: op types and node names, each must exist. */
function resolveExclusions(model: OnnxModel, list: readonly string[], flag: string): { ops: string[]; nodes: string[]; covered: string[] } {
  const graph = model.msg.graph!;
  const opTypes = new Set(graph.node.map((n) => n.opType));
  const ops: string[] = [];
  const nodes: string[] = [];
  for (const x of list) {
    if (opTypes.has(x)) ops.push(x);
    else if (graph.node.some((n) => n.name === x)) nodes.push(x);
    else throw new RecipeError(`${flag} ${x}: no node or op type of that name in the model`);
  }
  const covered = graph.node.filter((n) => nodes.includes(n.name ?? '') || ops.includes(n.opType ?? '')).map((n) => n.name ?? '').filter(Boolean);
  return { ops, nodes, covered };
}

export interface PlanContext {
  /**
   * Whether --calibration with no other pass named means static W8A8 (compress's historical
   * meaning; default true). Sweeps pass false: their data goes to every job, and static W8A8 is
   * asked for with activations int8|uint8.
   */
  calibrationAloneMeansStatic?: boolean;
}

export async function planCompress(o: CompressFlags, input: string, targetGiven: boolean, ctx: PlanContext = {}): Promise<CompressPlan> {
  if (o.asymmetric && o.symmetric) throw new RecipeError('--symmetric and --asymmetric contradict each other');
  if (o.asymmetric) o.symmetric = false;
  const [recipes, { OnnxModel }] = await Promise.all([import('../recipe/recipe.ts'), import('../onnx/model.ts')]);
  let model: OnnxModel | null = null;
  const readModel = () => (model ??= OnnxModel.read(input));

  // The recipe file: top-level quantize keys, or a passes list.
  const file = o.recipe ? recipes.loadRecipeInput(o.recipe) : null;
  const fileEntries = file && 'passes' in file ? recipes.parsePassList(file, o.recipe) : null;
  const filePrune: PruneRecipe | undefined = fileEntries?.find((e): e is { prune: PruneRecipe } => 'prune' in e)?.prune;
  const fileQuantize: QuantizeRecipe | undefined = fileEntries ? fileEntries.find((e): e is { quantize: QuantizeRecipe } => 'quantize' in e)?.quantize : (file ?? undefined);
  const fileDistill: DistillRecipe | undefined = fileEntries?.find((e): e is { distill: DistillRecipe } => 'distill' in e)?.distill;
  const filePalettize: PalettizeRecipe | undefined = fileEntries?.find((e): e is { palettize: PalettizeRecipe } => 'palettize' in e)?.palettize;
  const fileSparsify: SparsifyRecipe | undefined = fileEntries?.find((e): e is { sparsify: SparsifyRecipe } => 'sparsify' in e)?.sparsify;
  if (fileEntries) {
    const order = fileEntries.map((e) => Object.keys(e)[0]);
    if (order.length > new Set(order).size) throw new RecipeError(`${o.recipe}: each pass may appear once (got ${order.join(', ')})`);
    const rank = (p: string) => PASS_ORDER.indexOf(p as (typeof PASS_ORDER)[number]);
    for (let i = 1; i < order.length; i++) {
      if (rank(order[i - 1]) > rank(order[i])) throw new RecipeError(`${o.recipe}: ${order[i]} cannot run after ${order[i - 1]}: order the passes ${PASS_ORDER.filter((p) => order.includes(p)).join(', ')}`);
    }
  }

  // Prune: flags override the file's options.
  const pruneFlagsGiven = o.prune !== undefined || o.pruneMacs !== undefined;
  const recover = parseRecover(o.recover);
  const sparsifyNamed = o.sparsity !== undefined || o.nm !== undefined || fileSparsify !== undefined;
  // lsq also re-fits sparse layers (the sparsify pass's reconstruction); bn is pruning's alone.
  const pruneRecoverFlag = recover.prune !== undefined && recover.prune !== 'none' && !(recover.prune === 'lsq' && sparsifyNamed) ? `--recover ${recover.prune}` : undefined;
  for (const [flag, v] of [['--prune-round', o.pruneRound], ['--prune-max-ratio', o.pruneMaxRatio], ['--prune-criterion', o.pruneCriterion], [pruneRecoverFlag, pruneRecoverFlag], ['--prune-allocation', o.pruneAllocation], ['--prune-steps', o.pruneSteps]] as const) {
    if (v !== undefined && !pruneFlagsGiven && !filePrune) throw new RecipeError(`${flag} applies to pruning${flag === '--recover lsq' || flag === '--recover bn' ? ' (lsq also to sparsity: --sparsity / --nm)' : ''}: add --prune <ratio> or --prune-macs <fraction>`);
  }
  let prune: PassSpec | null = null;
  if (pruneFlagsGiven || filePrune) {
    const ratio = num(o.prune, '--prune') ?? (o.pruneMacs === undefined ? filePrune?.ratio : undefined);
    const macs = num(o.pruneMacs, '--prune-macs') ?? (o.prune === undefined ? filePrune?.macs : undefined);
    const exclusions = [...(filePrune?.exclude ?? []), ...(o.exclude ?? [])];
    const covered = exclusions.length ? resolveExclusions(readModel(), exclusions, '--exclude').covered : [];
    prune = {
      pass: 'prune',
      options: {
        ratio, macs,
        round: int(o.pruneRound, '--prune-round') ?? filePrune?.round,
        maxRatio: num(o.pruneMaxRatio, '--prune-max-ratio') ?? filePrune?.maxRatio,
        criterion: o.pruneCriterion ?? filePrune?.criterion,
        recover: recover.prune ?? filePrune?.recover,
        allocation: o.pruneAllocation ?? filePrune?.allocation,
        steps: int(o.pruneSteps, '--prune-steps') ?? filePrune?.steps,
        nodes: filePrune?.nodes,
        exclude: new Set(covered),
      },
    };
  }

  // Sparsify and palettize: flags override the file's options.
  const sparseFlagsGiven = o.sparsity !== undefined || o.nm !== undefined;
  for (const [flag, v] of [['--sparse-scope', o.sparseScope], ['--sparse-method', o.sparseMethod], ['--sparse-format', o.sparseFormat]] as const) {
    if (v !== undefined && !sparseFlagsGiven && !fileSparsify) throw new RecipeError(`${flag} applies to sparsity: add --sparsity <fraction> or --nm N:M`);
  }
  let sparsify: PassSpec | null = null;
  if (sparseFlagsGiven || fileSparsify) {
    const sparsity = num(o.sparsity, '--sparsity') ?? (o.nm === undefined ? fileSparsify?.sparsity : undefined);
    const nmText = o.nm ?? (o.sparsity === undefined ? fileSparsify?.nm : undefined);
    const exclusions = [...(fileSparsify?.exclude ?? []), ...(o.exclude ?? [])];
    sparsify = {
      pass: 'sparsify',
      options: {
        sparsity, nm: nmText !== undefined ? parseNm(nmText, o.nm !== undefined ? '--nm' : `${o.recipe}: nm`) : undefined,
        scope: o.sparseScope ?? fileSparsify?.scope,
        method: o.sparseMethod ?? fileSparsify?.method,
        format: o.sparseFormat ?? fileSparsify?.format,
        sequential: fileSparsify?.sequential,
        biasCorrection: fileSparsify?.biasCorrection,
        reconstruct: recover.prune === 'lsq' || recover.prune === 'none' ? recover.prune : fileSparsify?.reconstruct,
        minElements: int(o.minElements, '--min-elements') ?? fileSparsify?.minElements,
        exclude: new Set(exclusions.length ? resolveExclusions(readModel(), exclusions, '--exclude').covered : []),
      },
    };
  }
  const paletteFlagsGiven = o.palettize !== undefined;
  for (const [flag, v] of [['--palettize-mode', o.palettizeMode], ['--group-size', o.groupSize], ['--per-channel-scale', o.perChannelScale], ['--lut-dtype', o.lutDtype], ['--palettize-weighting', o.palettizeWeighting]] as const) {
    if (v !== undefined && !paletteFlagsGiven && !filePalettize) throw new RecipeError(`${flag} applies to palettization: add --palettize <bits>`);
  }
  let palettize: PassSpec | null = null;
  if (paletteFlagsGiven || filePalettize) {
    const exclusions = [...(filePalettize?.exclude ?? []), ...(o.exclude ?? [])];
    const bits = int(o.palettize, '--palettize') ?? filePalettize!.bits;
    palettize = {
      pass: 'palettize',
      options: {
        bits: bits as 1 | 2 | 3 | 4 | 6 | 8,
        mode: o.palettizeMode ?? filePalettize?.mode,
        groupSize: int(o.groupSize, '--group-size') ?? filePalettize?.groupSize,
        perChannelScale: o.perChannelScale ?? filePalettize?.perChannelScale,
        lutDtype: o.lutDtype ?? filePalettize?.lutDtype,
        // After sparsify, zeros keep a palette entry of their own (exactly zero after decoding).
        keepZeros: filePalettize?.keepZeros ?? (sparsify ? 'on' : undefined),
        weighting: o.palettizeWeighting ?? filePalettize?.weighting,
        biasCorrection: filePalettize?.biasCorrection,
        minElements: int(o.minElements, '--min-elements') ?? filePalettize?.minElements,
        exclude: new Set(exclusions.length ? resolveExclusions(readModel(), exclusions, '--exclude').covered : []),
      },
    };
    (await import('../passes/palettize/pass.ts')).paletteConfig(palettize.options as never, o.palettize !== undefined ? '--palettize' : 'palettize');
  }
  if (sparsify) (await import('../passes/sparsify/pass.ts')).validateSparsify(sparsify.options as never);
  const weightPass = Boolean(sparsify || palettize);

  // Quantize: asked for by any quantize flag, by the recipe, or by default when nothing else is named.
  const dynamic = o.activations === 'dynamic' || fileQuantize?.activations === 'dynamic';
  // --min-elements belongs to sparsify / palettize when they are named, to quantization otherwise.
  const quantizeFlagsGiven = [o.weights, o.granularity, o.blockSize, o.symmetric, o.format, weightPass ? undefined : o.minElements, o.activations, o.reduceRange, o.weightMethod, o.actOrder, weightPass ? undefined : o.sequential].some((v) => v !== undefined) || targetGiven;
  const weightMethod = o.weightMethod ?? fileQuantize?.weightMethod;
  if (o.actOrder && weightMethod !== 'gptq') throw new RecipeError('--act-order applies to --weight-method gptq');
  const sparseGpt = sparsify?.pass === 'sparsify' && (sparsify.options.method ?? (o.calibration ? 'sparsegpt' : 'magnitude')) === 'sparsegpt';
  if (o.sequential && weightMethod !== 'gptq' && !sparseGpt) throw new RecipeError('--sequential applies to --weight-method gptq and --sparse-method sparsegpt');
  if (sparseGpt && o.sequential && sparsify?.pass === 'sparsify') sparsify.options.sequential = true;
  // --recover bias corrects the quantize pass; with only sparsify / palettize named, the last of them.
  const biasToWeightPass = weightPass && recover.bias === 'auto' && !quantizeFlagsGiven && fileQuantize === undefined;
  if (biasToWeightPass) {
    if (!o.calibration) throw new RecipeError('--recover bias needs --calibration data (the layer output means it restores come from it; unlabelled samples are enough)');
    const last = (palettize ?? sparsify)!;
    (last.options as { biasCorrection?: 'auto' | 'on' | 'off' }).biasCorrection = 'auto';
  }
  const biasCorrection = biasToWeightPass ? undefined : recover.bias ?? fileQuantize?.biasCorrection;
  const correcting = biasCorrection !== undefined && biasCorrection !== 'off';
  const kd = Boolean(recover.kd) || fileDistill !== undefined;
  for (const [flag, v] of [['--kd-epochs', o.kdEpochs], ['--kd-temperature', o.kdTemperature], ['--kd-alpha', o.kdAlpha], ['--kd-lr', o.kdLr]] as const) {
    if (v !== undefined && !kd) throw new RecipeError(`${flag} applies to distillation: add --recover kd`);
  }
  if (kd && !o.calibration) throw new RecipeError('--recover kd needs --calibration data (the inputs the teacher\'s logits are read on; labels beside them are used too)');
  const wantsQuantize = quantizeFlagsGiven || fileQuantize !== undefined || (!prune && !weightPass) || correcting;
  // Bias correction with weight flags corrects weight-only output (static W8A8 refuses those flags).
  const weightOnlyFlags = [o.weights, o.granularity, o.blockSize, o.format, o.minElements].some((v) => v !== undefined);
  const labelFreeGate = o.minCosine !== undefined || o.minSqnr !== undefined;
  // --calibration alone keeps meaning static W8A8 unless another consumer of the data is named.
  const staticMode = wantsQuantize && !dynamic && ((o.activations !== undefined || fileQuantize?.activations !== undefined)
    || ((ctx.calibrationAloneMeansStatic ?? true) && Boolean(o.calibration) && !prune && !weightPass && !kd && weightMethod === undefined && !((correcting || labelFreeGate) && weightOnlyFlags)));
  if (kd && dynamic) throw new RecipeError('--recover kd re-fits a float, weight-only or static W8A8 head; after --activations dynamic it is not supported yet');
  if (correcting && !o.calibration) throw new RecipeError('--recover bias needs --calibration data (the layer output means it corrects come from it; unlabelled samples are enough)');
  if (correcting && dynamic) throw new RecipeError('--recover bias corrects weight-only or static W8A8 output; --activations dynamic is not supported');
  if (weightMethod === 'gptq' && !o.calibration) throw new RecipeError('--weight-method gptq needs --calibration data (unlabelled samples are enough)');
  if (staticMode && (o.sequential ?? fileQuantize?.sequential) && weightMethod === 'gptq') throw new RecipeError('--sequential with static W8A8 is not supported yet: GPTQ rounds the int8 weights from the float model\'s layer inputs');
  if (dynamic) {
    if (o.calibration && !prune) throw new RecipeError('--activations dynamic quantizes activations at run time and takes no --calibration data; drop one of them');
    if (o.target !== 'ort-cpu') throw new RecipeError(`--activations dynamic runs in ONNX Runtime (DynamicQuantizeLinear + MatMulInteger): it needs --target ort-cpu, got ${o.target}`);
  } else if (o.reduceRange && !staticMode) {
    throw new RecipeError('--reduce-range applies to --activations dynamic and to static W8A8 (--activations int8|uint8 with --calibration)');
  }
  if (o.maxDrop !== undefined && !staticMode) throw new RecipeError('--max-drop applies to static W8A8: give --calibration data (and --activations int8|uint8)');
  for (const [flag, v] of [['--min-cosine', o.minCosine], ['--min-sqnr', o.minSqnr]] as const) {
    if (v === undefined) continue;
    if (!o.calibration) throw new RecipeError(`${flag} needs --calibration data (the outputs are judged on calibration samples)`);
    if (dynamic) throw new RecipeError(`${flag} applies to static W8A8 and weight-only quantization, not --activations dynamic`);
    if (!staticMode && weightMethod === 'gptq' && (o.sequential ?? fileQuantize?.sequential)) throw new RecipeError(`${flag} with --sequential GPTQ is not supported (the gate re-quantizes layers at other widths than the sequential pass rounded); drop --sequential`);
  }
  if (o.minCosine !== undefined && !(Number(o.minCosine) > -1 && Number(o.minCosine) <= 1)) throw new RecipeError(`--min-cosine ${o.minCosine}: a cosine between -1 and 1 (e.g. 0.99)`);
  if (staticMode && !o.calibration) throw new RecipeError(`--activations ${o.activations ?? fileQuantize?.activations} needs --calibration data (static W8A8 computes activation ranges from it), or use --activations dynamic`);

  const compactSparse = sparsify?.pass === 'sparsify' && sparsify.options.format === 'compact';
  if (compactSparse && (palettize || wantsQuantize)) {
    throw new RecipeError(`--sparse-format compact stores the sparse weights as a decode chain that ${palettize ? 'palettize' : 'quantize'} cannot read; keep --sparse-format dense (zeros stay exactly zero through ${palettize ? 'palettization' : 'quantization'}) or drop the later pass`);
  }
  if (sparsify?.pass === 'sparsify' && sparsify.options.method === 'sparsegpt' && o.calibration === undefined) {
    throw new RecipeError('--sparse-method sparsegpt needs --calibration data (unlabelled samples are enough)');
  }
  if (palettize?.pass === 'palettize' && palettize.options.weighting === 'sensitivity' && !o.calibration) throw new RecipeError('--palettize-weighting sensitivity needs --calibration data (unlabelled samples are enough)');
  const passes: PassSpec[] = [...(prune ? [prune] : []), ...(sparsify ? [sparsify] : []), ...(palettize ? [palettize] : [])];
  if (wantsQuantize) {
    const quantizeExclusions = o.exclude?.length ? resolveExclusions(readModel(), o.exclude, '--exclude') : { ops: [], nodes: [], covered: [] };
    if (staticMode) {
      const fileKeys = fileQuantize ? Object.keys(fileQuantize).filter((k) => !['activations', 'biasCorrection', 'reduceRange', 'weightMethod', 'actOrder'].includes(k)) : [];
      checkStaticFlags(o, fileKeys.length > 0);
      if (o.reduceRange === undefined && fileQuantize?.reduceRange) o.reduceRange = true;
      if (!o.activations && fileQuantize?.activations && fileQuantize.activations !== 'dynamic') o.activations = fileQuantize.activations;
      const { calibrationData: _d, preprocess: _p, samples: _s, seed: _seed, ...rest } = staticOptionsFrom(o);
      passes.push({
        pass: 'quantize',
        options: {
          mode: 'static-w8a8', recipe: recipes.parseRecipe({}), biasCorrection: biasCorrection ?? 'off', static: { ...rest, floatNodes: quantizeExclusions.covered },
          weightMethod: weightMethod ?? 'rtn', actOrder: Boolean(o.actOrder ?? fileQuantize?.actOrder),
        },
      });
    } else {
      // Flags become a recipe (validated like a file); with --recipe, flags override the file's global config.
      const flags: RecipeInput = {};
      if (o.weights) flags.weights = o.weights as RecipeInput['weights'];
      if (o.granularity) flags.granularity = o.granularity as RecipeInput['granularity'];
      if (o.blockSize !== undefined) flags.blockSize = int(o.blockSize, '--block-size');
      if (o.symmetric !== undefined) flags.symmetric = o.symmetric;
      if (o.format) flags.format = o.format as RecipeInput['format'];
      if (o.minElements !== undefined) flags.minElements = int(o.minElements, '--min-elements');
      // --target's default (ort-cpu) does not override a recipe's own target.
      if (targetGiven || !fileQuantize) flags.target = o.target as RecipeInput['target'];
      const { activations: _a, reduceRange: fileReduce, weightMethod: _w, actOrder: fileActOrder, sequential: fileSequential, biasCorrection: _b, ...base } = (fileQuantize ?? {}) as QuantizeRecipe;
      const merged: RecipeInput = { ...base, ...flags, opTypes: { ...base.opTypes }, nodes: { ...base.nodes } };
      for (const op of quantizeExclusions.ops) merged.opTypes = { ...merged.opTypes, [op]: null };
      for (const n of quantizeExclusions.nodes) merged.nodes = { ...merged.nodes, [n]: null };
      const recipe = recipes.parseRecipe(merged, o.recipe ? `${o.recipe} + flags` : 'flags');
      const rounding = { weightMethod: weightMethod ?? 'rtn', actOrder: Boolean(o.actOrder ?? fileActOrder), sequential: Boolean(o.sequential ?? fileSequential) } as const;
      passes.push(dynamic
        ? { pass: 'quantize', options: { mode: 'dynamic', recipe, reduceRange: Boolean(o.reduceRange ?? fileReduce), ...rounding } }
        : { pass: 'quantize', options: { mode: 'weight-only', recipe, ...rounding, biasCorrection: biasCorrection ?? 'off', ...(labelFreeGate ? { gate: { minCosine: num(o.minCosine, '--min-cosine'), minSqnrDb: num(o.minSqnr, '--min-sqnr') } } : {}) } });
    }
  }
  if (kd) {
    const q = passes.find((p) => p.pass === 'quantize');
    passes.push({
      pass: 'distill',
      options: {
        epochs: int(o.kdEpochs, '--kd-epochs') ?? fileDistill?.epochs,
        temperature: num(o.kdTemperature, '--kd-temperature') ?? fileDistill?.temperature,
        alpha: num(o.kdAlpha, '--kd-alpha') ?? fileDistill?.alpha,
        learningRate: num(o.kdLr, '--kd-lr') ?? fileDistill?.learningRate,
        output: fileDistill?.output,
        requantize: q?.pass === 'quantize' && q.options.mode === 'weight-only' ? q.options.recipe : undefined,
        staticW8A8: q?.pass === 'quantize' && q.options.mode === 'static-w8a8' ? { reduceRange: q.options.static?.reduceRange } : undefined,
      },
    });
  }
  const calibration: CalibrationSource | undefined = o.calibration
    ? { data: o.calibration, preprocess: preprocessFrom(o), samples: int(o.calibSamples, '--calib-samples'), seed: int(o.seed, '--seed') }
    : undefined;
  return { passes, calibration, staticMode };
}
