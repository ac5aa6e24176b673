/** `modelpress compress`: weight-only compression, or static W8A8 with --calibration. */
import { Option, type Command } from 'commander';
import { RecipeError } from '../../errors.ts';
import type { RecipeInput } from '../../recipe/recipe.ts';
import { backendOption, guarded, int, logLevel, type CommonOptions } from '../common.ts';
import { addCalibrationOptions, staticOptionsFrom, type CalibrationFlags } from '../calibration-flags.ts';

interface CompressFlags extends CommonOptions, CalibrationFlags {
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
  report?: string;
  force?: boolean;
  evalData?: string;
  samples?: string;
  maxDrop?: string;
  reduceRange?: boolean;
}

/**
 * Static W8A8 stores weights one way (int8, per channel, QDQ: what ORT fuses into integer kernels).
 * Flags that say the same are accepted; flags that ask for something else are refused by name.
 */
function checkStaticFlags(o: CompressFlags): void {
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
  if (o.recipe) throw new RecipeError('--recipe describes weight-only compression and conflicts with --calibration (static W8A8); use --exclude to keep layers in float');
  if (o.minElements !== undefined) throw new RecipeError('--min-elements applies to weight-only compression; with --calibration use --exclude to keep layers in float');
  if (o.target === 'tensorrt') {
    // TensorRT's INT8 takes symmetric activations only (zero point 0).
    if (o.activations === 'uint8') throw new RecipeError('--activations uint8 conflicts with --target tensorrt (TensorRT quantizes activations to int8 with zero point 0): use --activations int8');
    if (o.symmetric === false) throw new RecipeError('--asymmetric conflicts with --target tensorrt (TensorRT takes zero points of 0 only)');
    o.activations = 'int8';
    o.symmetric = true;
  }
}

export function addCompressCommand(program: Command): void {
  addCalibrationOptions(program
    .command('compress')
    .description('compress a model\'s weights (default: int8 per-channel symmetric, DequantizeLinear) and write a new ONNX model')
    .argument('<model>', 'input ONNX model (never modified)')
    .requiredOption('-o, --output <path>', 'output ONNX model')
    .option('--recipe <file>', 'recipe (YAML or JSON): global config, opTypes and nodes overrides')
    .addOption(new Option('--weights <type>', 'weight type (with --calibration: int8)').choices(['int8', 'uint8', 'int4', 'uint4', 'fp16']))
    .addOption(new Option('--granularity <g>', 'scale granularity (int4 defaults to block; with --calibration: channel)').choices(['tensor', 'channel', 'block']))
    .option('--block-size <n>', 'block size for block granularity: 16, 32, 64, 128 or 256 (default 32)')
    .option('--symmetric', 'symmetric quantization (zero point 0; the default for weights)')
    .option('--asymmetric', 'asymmetric quantization (min/max range with a zero point)')
    .addOption(new Option('--target <t>', 'where the model will run; picks the weight format: ort-cpu (folded: decoded by ONNX Runtime at load, float speed), qdq (DequantizeLinear for QNN/OpenVINO-style toolchains), tensorrt (QDQ, symmetric only)').choices(['ort-cpu', 'qdq', 'tensorrt']).default('ort-cpu'))
    .addOption(new Option('--format <f>', 'how weights are stored: folded (Cast->Mul, folded by ONNX Runtime at load), qdq (DequantizeLinear, kept at run time), matmulnbits (ORT 4-bit MatMul/Gemm). Default: from --target; with --calibration: qdq').choices(['folded', 'qdq', 'matmulnbits']))
    .option('--exclude <nameOrOp...>', 'node names or op types to leave in float')
    .option('--min-elements <n>', 'leave weights smaller than this in float (default 1024)')
    .option('--report <file>', 'write the JSON report (per tensor: scheme, bytes, MSE, SQNR, max error, cosine; skips; manifest)')
    .option('--eval-data <path>', 'after compressing, evaluate both models on this data (IDX, .npy/.npz, image folder; labels found beside it)')
    .option('--samples <n>', 'evaluate at most this many samples')
    .option('--max-drop <points>', 'static W8A8 accuracy gate: keep the most sensitive layers in float until the drop on --eval-data is at most this')
    .option('--force', 'replace an existing output')
    .option('--json', 'print the report as JSON on stdout instead of the summary')
    .addOption(backendOption())
    .option('-q, --quiet', 'no progress bar, errors only')
    .option('--reduce-range', '--activations dynamic: 7-bit weights, for x86 CPUs without VNNI whose u8 x s8 kernels saturate with full-range int8 weights')
    .option('-v, --verbose', 'debug logging and stack traces'), ['int8', 'uint8', 'dynamic'])
    .action((input: string, o: CompressFlags) => guarded(o.verbose, async () => {
      if (o.asymmetric && o.symmetric) throw new RecipeError('--symmetric and --asymmetric contradict each other');
      if (o.asymmetric) o.symmetric = false;
      const dynamic = (o.activations as string | undefined) === 'dynamic';
      if (dynamic) {
        if (o.calibration) throw new RecipeError('--activations dynamic quantizes activations at run time and takes no --calibration data; drop one of them');
        if (o.target !== 'ort-cpu') throw new RecipeError(`--activations dynamic runs in ONNX Runtime (DynamicQuantizeLinear + MatMulInteger): it needs --target ort-cpu, got ${o.target}`);
      } else if (o.reduceRange) {
        throw new RecipeError('--reduce-range applies to --activations dynamic');
      }
      const staticMode = Boolean(o.calibration);
      if (o.maxDrop !== undefined && !staticMode) throw new RecipeError('--max-drop applies to static W8A8: give --calibration data');
      if (o.activations && !dynamic && !staticMode) throw new RecipeError(`--activations ${o.activations} needs --calibration data (static W8A8 computes activation ranges from it), or use --activations dynamic`);
      if (staticMode) checkStaticFlags(o);
      const [{ compressModel }, { createLogger }, { formatCompressSummary }, { ProgressReporter }, { jsonNumbers }, recipes, { OnnxModel }] = await Promise.all([
        import('../../pipeline/compress.ts'), import('../../log.ts'), import('../format.ts'), import('../progress.ts'),
        import('../../json.ts'), import('../../recipe/recipe.ts'), import('../../onnx/model.ts')]);

      // --exclude names node names or op types; both are resolved against the model (read once).
      const excludeOps: string[] = [];
      const excludeNodes: string[] = [];
      /** Every node the exclusions cover (static W8A8 keeps these in float). */
      let excludedNodes: string[] = [];
      if (o.exclude?.length) {
        const graph = OnnxModel.read(input).msg.graph!;
        const opTypes = new Set(graph.node.map((n) => n.opType));
        for (const x of o.exclude) {
          if (opTypes.has(x)) excludeOps.push(x);
          else if (graph.node.some((n) => n.name === x)) excludeNodes.push(x);
          else throw new RecipeError(`--exclude ${x}: no node or op type of that name in ${input}`);
        }
        excludedNodes = graph.node.filter((n) => excludeNodes.includes(n.name ?? '') || excludeOps.includes(n.opType ?? '')).map((n) => n.name ?? '').filter(Boolean);
      }

      // Flags become a recipe (validated like a file); with --recipe, flags override the file's global config.
      const flags: RecipeInput = {};
      if (!staticMode) {
        if (o.weights) flags.weights = o.weights as RecipeInput['weights'];
        if (o.granularity) flags.granularity = o.granularity as RecipeInput['granularity'];
        if (o.blockSize !== undefined) flags.blockSize = int(o.blockSize, '--block-size');
        if (o.symmetric !== undefined) flags.symmetric = o.symmetric;
        if (o.format) flags.format = o.format as RecipeInput['format'];
        if (o.minElements !== undefined) flags.minElements = int(o.minElements, '--min-elements');
      }
      // --target's default (ort-cpu) does not override a recipe's own target.
      const targetGiven = program.commands.find((c) => c.name() === 'compress')!.getOptionValueSource('target') !== 'default';
      if (!staticMode && (targetGiven || !o.recipe)) flags.target = o.target as RecipeInput['target'];
      const base = o.recipe ? recipes.loadRecipeInput(o.recipe) : {};
      const merged: RecipeInput = { ...base, ...flags, opTypes: { ...base.opTypes }, nodes: { ...base.nodes } };
      for (const op of excludeOps) merged.opTypes = { ...merged.opTypes, [op]: null };
      for (const n of excludeNodes) merged.nodes = { ...merged.nodes, [n]: null };
      const recipe = recipes.parseRecipe(merged, o.recipe ? `${o.recipe} + flags` : 'flags');

      const staticOptions = staticMode ? { ...staticOptionsFrom(o), floatNodes: excludedNodes } : undefined;
      const progress = new ProgressReporter(!o.quiet && !o.json, staticMode ? '' : 'weights');
      const report = await compressModel(input, o.output, {
        recipe, backend: o.backend, force: o.force, reportPath: o.report, logger: createLogger(logLevel(o)),
        static: staticOptions,
        dynamic: dynamic ? { reduceRange: Boolean(o.reduceRange) } : undefined,
        onProgress: (done, total, name) => progress.update(done, total, name),
      });
      progress.stop();
      let evaluation = report.evaluation ?? null;
      if (o.evalData && !staticMode) {
        const { evaluateModels } = await import('../../eval/evaluate.ts');
        const ep = new ProgressReporter(!o.quiet && !o.json, 'samples');
        evaluation = await evaluateModels(o.output, input, { data: o.evalData, samples: int(o.samples, '--samples'), onProgress: (d, t) => ep.update(d, t, '') });
        ep.stop();
      }
      if (o.json) process.stdout.write(JSON.stringify(evaluation ? { ...report, evaluation } : report, jsonNumbers, 2) + '\n');
      else process.stdout.write(formatCompressSummary(report, evaluation));
      if (evaluation?.slowdown) process.stderr.write(`modelpress: warning: ${evaluation.slowdown}\n`);
      if (report.gate && !report.gate.met) {
        process.stderr.write(`modelpress: error: the accuracy gate cannot be met: with ${report.gate.floatNodes.length} layers in float the drop is still ${report.gate.finalDropPoints.toFixed(2)} points > --max-drop ${report.gate.maxDrop}\n`);
        process.exitCode = 3;
      }
    }));
}
