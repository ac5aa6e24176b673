#!/usr/bin/env node
/** The modelpress command line: a thin shell over the typed API in src/index.ts. */
import { Command, Option } from 'commander';
import { ModelpressError } from '../errors.ts';
import { createLogger, type LogLevel } from '../log.ts';
import { environmentInfo } from '../info.ts';
import { packageVersion } from '../package-root.ts';
import { Scheduler, type BackendChoice } from '../scheduler/scheduler.ts';
import { selfCheck } from '../selfcheck.ts';
import { formatInfo, formatTable, formatCompressSummary, formatEval, formatInspect } from './format.ts';
import { compressModel, jsonNumbers } from '../compress/compress.ts';
import { evaluateModels, type EvalOptions } from '../eval/evaluate.ts';
import { inspectModel } from '../inspect.ts';
import { loadRecipeFile, parseRecipe, type RecipeInput } from '../recipe/recipe.ts';
import { OnnxModel } from '../onnx/model.ts';
import { RecipeError } from '../errors.ts';
import { ProgressReporter } from './progress.ts';
import { sensitivityAnalysis } from '../compress/static-pipeline.ts';
import type { Preprocess } from '../data/dataset.ts';

interface CommonOptions {
  json?: boolean;
  backend: BackendChoice;
  verbose?: boolean;
  quiet?: boolean;
}

const backendOption = () =>
  new Option('--backend <backend>', 'where kernels run: auto (GPU if an adapter exists), gpu (required), cpu').choices(['auto', 'gpu', 'cpu']).default('auto');

function logLevel(o: CommonOptions): LogLevel {
  return o.verbose ? 'debug' : o.quiet ? 'error' : 'warn';
}

function fail(err: unknown, verbose: boolean): never {
  if (err instanceof ModelpressError) {
    process.stderr.write(`modelpress: error: ${err.message}\n`);
    if (verbose && err.stack) process.stderr.write(err.stack + '\n');
    process.exit(1);
  }
  process.stderr.write(`modelpress: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof Error && err.stack) process.stderr.write((verbose ? err.stack : 'run again with --verbose for the stack trace') + '\n');
  process.exit(70);
}

const program = new Command();
program
  .name('modelpress')
  .description('Compress neural-network models with WGSL compute shaders (WebGPU), with an exact CPU fallback.')
  .version(packageVersion())
  .showHelpAfterError();

program
  .command('info')
  .description('show the runtime, the WebGPU adapter, the limits and features modelpress uses, and which backend auto picks and why')
  .option('--json', 'print the same as JSON on stdout')
  .addOption(backendOption())
  .option('-v, --verbose', 'debug logging and stack traces')
  .action(async (o: CommonOptions) => {
    try {
      const info = await environmentInfo(o.backend, createLogger(logLevel(o)));
      process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : formatInfo(info));
    } catch (err) {
      fail(err, Boolean(o.verbose));
    }
  });

program
  .command('selfcheck')
  .description('run every kernel on built-in example tensors on the chosen backend and compare with the CPU reference')
  .option('--json', 'print the results as JSON on stdout')
  .addOption(backendOption())
  .option('-v, --verbose', 'debug logging and stack traces')
  .action(async (o: CommonOptions) => {
    let s: Scheduler | undefined;
    try {
      // The self-check exercises the GPU path wherever there is an adapter, software ones included.
      s = await Scheduler.create({ backend: o.backend, allowSoftwareAdapter: true, cpuThreshold: 0, logger: createLogger(logLevel(o)) });
      const rows = await selfCheck(s);
      const ok = rows.every((r) => r.ok);
      if (o.json) {
        process.stdout.write(JSON.stringify({ ok, backend: s.info, rows, stats: s.stats }, null, 2) + '\n');
      } else {
        process.stdout.write(`backend: ${s.info.active} (${s.info.reason})\n`);
        process.stdout.write(formatTable(['kernel', 'cases', 'backend', 'result', 'ms', 'detail'],
          rows.map((r) => [r.kernel, String(r.cases), r.backend, r.ok ? 'ok' : 'FAIL', r.ms.toFixed(1), r.detail])));
        process.stdout.write(`${s.stats.dispatches} dispatches in ${s.stats.submits} submits; ${(s.stats.bytesUploaded / 1e6).toFixed(1)} MB up, ${(s.stats.bytesReadBack / 1e6).toFixed(1)} MB back\n`);
        process.stdout.write(ok ? 'self-check passed\n' : 'self-check FAILED\n');
      }
      s.dispose();
      process.exitCode = ok ? 0 : 1;
    } catch (err) {
      s?.dispose();
      fail(err, Boolean(o.verbose));
    }
  });

interface CalibrationFlags {
  calibration?: string;
  calibMethod?: 'minmax' | 'percentile' | 'entropy' | 'mse';
  calibSamples?: string;
  percentile?: string;
  activations?: 'int8' | 'uint8';
  seed?: string;
  imageSize?: string;
  mean?: string;
  std?: string;
  channels?: 'RGB' | 'BGR' | 'GRAY';
  layout?: 'NCHW' | 'NHWC';
  scale?: string;
  letterbox?: boolean;
}

const numList = (v: string | undefined, flag: string, n?: number): number[] | undefined => {
  if (v === undefined) return undefined;
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !Number.isFinite(x)) || (n !== undefined && xs.length !== n)) throw new RecipeError(`${flag} needs ${n ?? 'a list of'} comma-separated numbers, got '${v}'`);
  return xs;
};

function preprocessFrom(o: CalibrationFlags): Preprocess {
  const size = numList(o.imageSize, '--image-size', 2);
  return {
    size: size as [number, number] | undefined, mean: numList(o.mean, '--mean'), std: numList(o.std, '--std'),
    channels: o.channels, layout: o.layout, scale: o.scale !== undefined ? Number(o.scale) : undefined, letterbox: o.letterbox,
  };
}

function calibrationOptions(cmd: Command): Command {
  return cmd
    .option('--calibration <data>', 'calibration data for static W8A8 (activations quantized too): IDX, .npy/.npz, or an image folder')
    .addOption(new Option('--calib-method <m>', 'how activation ranges are chosen').choices(['minmax', 'percentile', 'entropy', 'mse']).default('percentile'))
    .option('--calib-samples <n>', 'calibration samples, drawn with a seed (default 256)')
    .option('--percentile <p>', 'for --calib-method percentile (default 99.99)')
    .addOption(new Option('--activations <t>', 'activation code type').choices(['int8', 'uint8']).default('uint8'))
    .option('--seed <n>', 'seed for sampling calibration data (default 1)')
    .option('--image-size <h,w>', 'image folders: resize to this size (default: the model input size)')
    .option('--letterbox', 'image folders: keep the aspect ratio and pad (detectors)')
    .addOption(new Option('--channels <c>', 'image folders: channel order').choices(['RGB', 'BGR', 'GRAY']))
    .addOption(new Option('--layout <l>', 'image folders: tensor layout').choices(['NCHW', 'NHWC']))
    .option('--scale <x>', 'multiplier for 0..255 pixels (default 1/255)')
    .option('--mean <m0,m1,m2>', 'per-channel mean subtracted after scaling')
    .option('--std <s0,s1,s2>', 'per-channel std divided after subtracting the mean');
}

function staticOptionsFrom(o: CalibrationFlags & { evalData?: string; samples?: string; maxDrop?: string; symmetric?: boolean }) {
  return {
    // In static mode --symmetric / --asymmetric choose the activation ranges (weights are symmetric int8).
    symmetricActivations: o.symmetric,
    calibrationData: o.calibration!, preprocess: preprocessFrom(o), samples: int(o.calibSamples, '--calib-samples'), seed: int(o.seed, '--seed'),
    method: o.calibMethod, percentile: o.percentile !== undefined ? Number(o.percentile) : undefined, activations: o.activations,
    evalData: o.evalData, evalSamples: int(o.samples, '--samples'), maxDrop: o.maxDrop !== undefined ? Number(o.maxDrop) : undefined,
  };
}

interface CompressFlags extends CommonOptions, CalibrationFlags {
  maxDrop?: string;
  output: string;
  recipe?: string;
  weights?: string;
  granularity?: string;
  blockSize?: string;
  symmetric?: boolean;
  format?: string;
  exclude?: string[];
  minElements?: string;
  report?: string;
  force?: boolean;
  evalData?: string;
  samples?: string;
}

const int = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new RecipeError(`${flag} needs an integer, got '${v}'`);
  return n;
};

/** Flags become a recipe (validated like a file); with --recipe, flags override the file's global config. */
function recipeFrom(input: string, o: CompressFlags) {
  const flags: RecipeInput = {};
  if (o.weights) flags.weights = o.weights as RecipeInput['weights'];
  if (o.granularity) flags.granularity = o.granularity as RecipeInput['granularity'];
  if (o.blockSize !== undefined) flags.blockSize = int(o.blockSize, '--block-size');
  if (o.symmetric !== undefined) flags.symmetric = o.symmetric;
  if (o.format) flags.format = o.format as RecipeInput['format'];
  if (o.minElements !== undefined) flags.minElements = int(o.minElements, '--min-elements');
  const base = o.recipe ? loadRecipeFile(o.recipe) : null;
  const merged: RecipeInput = base
    ? { ...base.global, minElements: base.minElements, onNonFinite: base.onNonFinite, opTypes: { ...base.opTypes }, nodes: { ...base.nodes }, ...flags }
    : { ...flags };
  if (o.exclude?.length) {
    const graph = OnnxModel.read(input).msg.graph!;
    const opTypes = new Set(graph.node.map((n) => n.opType));
    for (const x of o.exclude) {
      if (opTypes.has(x)) merged.opTypes = { ...merged.opTypes, [x]: null };
      else if (graph.node.some((n) => n.name === x)) merged.nodes = { ...merged.nodes, [x]: null };
      else throw new RecipeError(`--exclude ${x}: no node or op type of that name in ${input}`);
    }
  }
  return parseRecipe(merged, o.recipe ? `${o.recipe} + flags` : 'flags');
}

calibrationOptions(program
  .command('compress')
  .description('compress a model\'s weights (default: int8 per-channel symmetric, DequantizeLinear) and write a new ONNX model')
  .argument('<model>', 'input ONNX model (never modified)')
  .requiredOption('-o, --output <path>', 'output ONNX model')
  .option('--recipe <file>', 'recipe (YAML or JSON): global config, opTypes and nodes overrides')
  .addOption(new Option('--weights <type>', 'weight type').choices(['int8', 'uint8', 'int4', 'uint4', 'fp16']))
  .addOption(new Option('--granularity <g>', 'scale granularity (int4 defaults to block)').choices(['tensor', 'channel', 'block']))
  .option('--block-size <n>', 'block size for block granularity: 16, 32, 64, 128 or 256 (default 32)')
  .option('--symmetric', 'symmetric quantization (zero point 0; the default)')
  .option('--asymmetric', 'asymmetric quantization (min/max range with a zero point)')
  .addOption(new Option('--format <f>', 'how int4 MatMul/Gemm weights are stored').choices(['qdq', 'matmulnbits']))
  .option('--exclude <nameOrOp...>', 'node names or op types to leave in float')
  .option('--min-elements <n>', 'leave weights smaller than this in float (default 1024)')
  .option('--report <file>', 'write the JSON report (per tensor: scheme, bytes, MSE, SQNR, max error, cosine; skips; manifest)')
  .option('--eval-data <path>', 'after compressing, evaluate both models on IDX data (file or folder; labels found beside it)')
  .option('--samples <n>', 'evaluate at most this many samples')
  .option('--max-drop <points>', 'static W8A8 accuracy gate: keep the most sensitive layers in float until the drop on --eval-data is at most this')
  .option('--force', 'replace an existing output')
  .option('--json', 'print the report as JSON on stdout instead of the summary')
  .addOption(backendOption())
  .option('-q, --quiet', 'no progress bar, errors only')
  .option('-v, --verbose', 'debug logging and stack traces'))
  .action(async (input: string, o: CompressFlags & { asymmetric?: boolean }) => {
    try {
      if (o.asymmetric && o.symmetric) throw new RecipeError('--symmetric and --asymmetric contradict each other');
      if (o.asymmetric) o.symmetric = false;
      if (o.maxDrop !== undefined && !o.calibration) throw new RecipeError('--max-drop applies to static W8A8: give --calibration data');
      const staticMode = Boolean(o.calibration);
      if (staticMode && (o.weights || o.granularity || o.format || o.recipe)) throw new RecipeError('--calibration (static W8A8) quantizes weights int8 per-channel; drop --weights/--granularity/--format/--recipe');
      const recipe = recipeFrom(input, o);
      const progress = new ProgressReporter(!o.quiet && !o.json, staticMode ? '' : 'weights');
      const report = await compressModel(input, o.output, {
        recipe, backend: o.backend, force: o.force, reportPath: o.report, logger: createLogger(logLevel(o)),
        static: staticMode ? staticOptionsFrom(o) : undefined,
        onProgress: (done, total, name) => progress.update(done, total, name),
      });
      progress.stop();
      let evaluation = report.evaluation ?? null;
      if (o.evalData && !staticMode) {
        const ep = new ProgressReporter(!o.quiet && !o.json, 'samples');
        evaluation = await evaluateModels(o.output, input, { data: o.evalData, samples: int(o.samples, '--samples'), onProgress: (d, t) => ep.update(d, t, '') });
        ep.stop();
      }
      if (o.json) process.stdout.write(JSON.stringify(evaluation ? { ...report, evaluation } : report, jsonNumbers, 2) + '\n');
      else process.stdout.write(formatCompressSummary(report, evaluation));
      if (report.gate && !report.gate.met) {
        process.stderr.write(`modelpress: error: the accuracy gate cannot be met: with ${report.gate.floatNodes.length} layers in float the drop is still ${report.gate.finalDropPoints.toFixed(2)} points > --max-drop ${report.gate.maxDrop}\n`);
        process.exitCode = 3;
      }
    } catch (err) {
      fail(err, Boolean(o.verbose));
    }
  });

program
  .command('inspect')
  .description('show opsets, inputs/outputs, op histogram, parameters by type, the largest tensors, and what a default int8 run would quantize or skip (and why)')
  .argument('<model>', 'ONNX model')
  .option('--json', 'print the same as JSON on stdout')
  .option('-v, --verbose', 'stack traces on errors')
  .action((input: string, o: CommonOptions) => {
    try {
      const r = inspectModel(input);
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatInspect(r));
    } catch (err) {
      fail(err, Boolean(o.verbose));
    }
  });

program
  .command('eval')
  .description('run a model and its baseline in ONNX Runtime on the same inputs: per-output agreement, accuracy on labelled IDX data, latency')
  .argument('<model>', 'the model to evaluate (e.g. compressed)')
  .requiredOption('--baseline <model>', 'the reference model (e.g. the original)')
  .option('--data <path>', 'IDX images (MNIST format, gzip or not; labels found beside them), .npy/.npz, or a folder of PNG/JPEG images (labels in labels.txt). Default: seeded random inputs')
  .option('--samples <n>', 'number of samples (default: all data, or 32 random)')
  .option('--seed <n>', 'seed for random inputs (default 1)')
  .option('--shape <name=d0,d1,...>', 'concrete shape for an input with symbolic dims (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--json', 'print the results as JSON on stdout')
  .option('-v, --verbose', 'stack traces on errors')
  .action(async (input: string, o: CommonOptions & { baseline: string; data?: string; samples?: string; seed?: string; shape: string[] }) => {
    try {
      const shapes: Record<string, number[]> = {};
      for (const s of o.shape) {
        const m = /^([^=]+)=(\d+(?:,\d+)*)$/.exec(s);
        if (!m) throw new RecipeError(`--shape ${s}: expected name=d0,d1,... (e.g. x=1,3,48,192)`);
        shapes[m[1]] = m[2].split(',').map(Number);
      }
      const opts: EvalOptions = { data: o.data, samples: int(o.samples, '--samples'), seed: int(o.seed, '--seed'), shapes };
      const r = await evaluateModels(input, o.baseline, opts);
      process.stdout.write(o.json ? JSON.stringify(r, jsonNumbers, 2) + '\n' : formatEval(r));
    } catch (err) {
      fail(err, Boolean(o.verbose));
    }
  });

calibrationOptions(program
  .command('sensitivity')
  .description('static W8A8 one layer at a time: rank layers by the damage (accuracy drop on --eval-data, or output SQNR)')
  .argument('<model>', 'ONNX model')
  .option('--eval-data <path>', 'labelled data to measure the damage (IDX / image folder); without it, output SQNR on seeded random inputs')
  .option('--samples <n>', 'evaluation samples per layer (default: all)')
  .option('--json', 'print the ranking as JSON on stdout')
  .addOption(backendOption())
  .option('-q, --quiet', 'no progress bar, errors only')
  .option('-v, --verbose', 'stack traces on errors'))
  .action(async (input: string, o: CommonOptions & CalibrationFlags & { evalData?: string; samples?: string }) => {
    let s: Scheduler | undefined;
    try {
      if (!o.calibration) throw new RecipeError('sensitivity needs --calibration data');
      s = await Scheduler.create({ backend: o.backend, logger: createLogger(logLevel(o)) });
      const progress = new ProgressReporter(!o.quiet && !o.json, '');
      const ranking = await sensitivityAnalysis(input, { ...staticOptionsFrom(o), scheduler: s, onProgress: (stage, d, t) => progress.update(d, t, stage) });
      progress.stop();
      if (o.json) process.stdout.write(JSON.stringify(ranking, jsonNumbers, 2) + '\n');
      else process.stdout.write(formatTable(['rank', 'node', 'op', 'accuracy drop', 'output SQNR'],
        ranking.map((r, i) => [String(i + 1), r.node, r.op, r.dropPoints === null ? '-' : `${r.dropPoints.toFixed(2)} pts`, Number.isFinite(r.sqnrDb) ? `${r.sqnrDb.toFixed(1)} dB` : 'exact'])));
      s.dispose();
    } catch (err) {
      s?.dispose();
      fail(err, Boolean(o.verbose));
    }
  });

program.parseAsync(process.argv).catch((err) => fail(err, process.argv.includes('--verbose')));
