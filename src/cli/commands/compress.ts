/** `modelpress compress`: the compression pipeline (prune, then quantize: weight-only, dynamic or static W8A8). */
import { statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { backendOption, guarded, int, logLevel, type CommonOptions } from '../common.ts';
import { addCalibrationOptions } from '../calibration-flags.ts';
import type { CompressFlags as PlanFlags } from '../compress-plan.ts';

interface CompressFlags extends CommonOptions, PlanFlags {
  report?: string;
  reportHtml?: string;
  force?: boolean;
}

/** The compress command's arguments and options (shared with sweep, which parses recipe flags with them). */
export function defineCompressOptions(cmd: Command): Command {
  return addCalibrationOptions(cmd
    .description('compress a model and write a new ONNX model: passes run in order on one in-memory model — prune (--prune, --prune-macs), sparsify (--sparsity, --nm), palettize (--palettize), then quantize (default when no other pass is named: int8 per-channel symmetric weights, folded for ONNX Runtime)')
    .addHelpText('after', `
Passes and calibration data:
  prune      --prune / --prune-macs; reads --calibration to score channels (energy, obs) and to re-fit
             pruned layers (--recover lsq|bn)
  sparsify   --sparsity / --nm; reads --calibration for SparseGPT (each layer's input Gram matrix)
             and to re-fit the kept weights to the float model's outputs (--recover lsq, the default)
  palettize  --palettize <bits>; with --palettize-weighting sensitivity it reads --calibration to
             weigh k-means by each layer's input Gram diagonal
  quantize   --weights/--format/... (weight-only), --activations dynamic, or static W8A8 with
             --activations int8|uint8, which reads --calibration for activation ranges;
             --weight-method gptq reads --calibration for each layer's inputs;
             --recover bias reads it for layer output means (with weight flags such as
             --weights int4 it corrects weight-only output)
  distill    --recover kd: re-fits the head to the input model's logits on --calibration data
             (labels beside the data add cross-entropy); a quantized head is encoded again
  --calibration alone (no other pass named) keeps its old meaning: static W8A8 with uint8 activations.
  A recipe file may hold quantize keys at the top level, or a list:
    passes:
      - prune: { ratio: 0.3, round: 8, recover: lsq }
      - sparsify: { nm: "2:4", method: sparsegpt }
      - palettize: { bits: 4, groupSize: 8 }
      - quantize: { weights: int8 }
      - distill: { epochs: 100, temperature: 2 }`)
    .argument('<model>', 'input ONNX model (never modified)')
    .requiredOption('-o, --output <path>', 'output ONNX model')
    .option('--recipe <file>', 'recipe (YAML or JSON): quantize keys (global config, opTypes and nodes overrides), or a passes: list')
    .addOption(new Option('--weights <type>', 'weight type; int3 / uint3: a 3-bit grid (8 levels) stored as INT4 / UINT4 (with --calibration: int8)').choices(['int8', 'uint8', 'int4', 'uint4', 'int3', 'uint3', 'fp16']))
    .addOption(new Option('--granularity <g>', 'scale granularity (int4 and int3 default to block; with --calibration: channel)').choices(['tensor', 'channel', 'block']))
    .option('--block-size <n>', 'block size for block granularity: 16, 32, 64, 128 or 256 (default 32)')
    .option('--symmetric', 'symmetric quantization (zero point 0; the default for weights)')
    .option('--asymmetric', 'asymmetric quantization (min/max range with a zero point)')
    .addOption(new Option('--target <t>', 'where the model will run; picks the weight format: ort-cpu (folded: decoded by ONNX Runtime at load, float speed), qdq (DequantizeLinear for QNN/OpenVINO-style toolchains), tensorrt (QDQ, symmetric only)').choices(['ort-cpu', 'qdq', 'tensorrt']).default('ort-cpu'))
    .addOption(new Option('--format <f>', 'how weights are stored: folded (Cast->Mul, folded by ONNX Runtime at load), qdq (DequantizeLinear, kept at run time), matmulnbits (ORT 4-bit MatMul/Gemm). Default: from --target; with --calibration: qdq').choices(['folded', 'qdq', 'matmulnbits']))
    .option('--exclude <nameOrOp...>', 'node names or op types to leave alone: kept in float, and their channels are not pruned')
    .option('--min-elements <n>', 'leave weights smaller than this in float (default 1024)')
    .option('--report <file>', 'write the JSON report (per tensor: scheme, bytes, MSE, SQNR, max error, cosine; skips; manifest)')
    .option('--report-html <file>', 'write this run as a self-contained HTML file: per-layer SQNR/cosine, LUT sizes, pruned channels, sensitivity ranking, suggested exclusions')
    .option('--eval-data <path>', 'after compressing, evaluate both models on this data (IDX, .npy/.npz, image folder; labels found beside it)')
    .option('--samples <n>', 'evaluate at most this many samples')
    .option('--max-drop <points>', 'static W8A8 accuracy gate: keep the most sensitive layers in float until the drop on --eval-data is at most this')
    .option('--min-cosine <c>', 'label-free gate (static W8A8, or weight-only with --calibration): keep the most damaging layers in float — weight-only: give 4-bit layers 8 bits first — until the lowest output cosine against the float model is at least this (e.g. 0.99); judged on calibration samples range calibration did not read (static: --eval-data when given)')
    .option('--min-sqnr <dB>', 'label-free gate: the same with the lowest output SQNR in dB (e.g. 25)')
    .option('--force', 'replace an existing output')
    .option('--json', 'print the report as JSON on stdout instead of the summary')
    .addOption(backendOption())
    .option('-q, --quiet', 'no progress bar, errors only')
    .option('--prune <ratio>', 'structured channel pruning: remove this fraction of every channel group (0.3 = 30 %); runs before quantization')
    .option('--prune-macs <fraction>', 'structured channel pruning to a global target: remove this fraction of the MACs (per-group ratios from normalized scores)')
    .option('--prune-round <n>', 'kept channel counts are multiples of n (default 8: ONNX Runtime\'s NCHWc convolutions need it on AVX2; 16 for AVX-512)')
    .addOption(new Option('--prune-allocation <a>', '--prune-macs: per-group ratios from a global threshold on scores normalized per group (threshold, the default) or from the output error each group causes on --calibration data after the chosen --recover (sensitivity, AIMET-style: more accurate on small models, but one recovery per probe — minutes to hours on ImageNet-size CNNs)').choices(['sensitivity', 'threshold']))
    .option('--prune-max-ratio <r>', 'no group loses more than this fraction of its channels (default 0.9)')
    .option('--prune-steps <n>', 'prune in n steps (1-10, default 1), each recovered against the original model before the next is chosen: better at high ratios on some models (inverted residual at 50 % fewer MACs: -4.1 -> -3.0 points), n times the work')
    .addOption(new Option('--prune-criterion <c>', 'channel importance summed over every member of a group: weight norms l1, l2, fpgm, or energy (activation energy x consumer weight norm on --calibration data), or obs (energy sets how many per group; which ones by the output error a least-squares refit cannot recover: pairs with --recover lsq). Default: energy with --calibration, l2 without').choices(['l1', 'l2', 'fpgm', 'energy', 'obs']))
    .option('--recover <methods>', 'recovery from --calibration data, a comma list: after pruning, re-fit the layers whose inputs lost channels with lsq (least squares, the default with --calibration) or bn (bias/statistics correction); after sparsity (--sparsity / --nm), lsq (the default with --calibration) re-fits each sparse layer\'s kept weights to the float model\'s outputs (zeros stay zero); bias: empirical bias correction of the quantized layers (weight-only or static W8A8; helps int4 round-to-nearest most) — or, when no quantization is asked, of the sparsified / palettized layers; kd: knowledge distillation of the head (the last Gemm/MatMul/1x1 Conv) to the input model\'s logits, after the other passes; none: no recovery. Given twice, the lists add up', (v: string, prev?: string) => (prev ? `${prev},${v}` : v))
    .option('--kd-epochs <n>', '--recover kd: most epochs of Adam (default 100; stops earlier when held-out samples stop improving)')
    .option('--kd-temperature <T>', '--recover kd: softmax temperature of the KL term (default 2)')
    .option('--kd-lr <rate>', '--recover kd: Adam learning rate (default 0.01)')
    .option('--kd-alpha <a>', '--recover kd: weight of the KL term against cross-entropy on labels, when the calibration data has labels (default 0.5; 1 without labels)')
    .addOption(new Option('--weight-method <m>', 'how weights are rounded: rtn (round to nearest) or gptq (GPTQ: column by column, errors spread by the inverse Hessian of each layer\'s inputs on --calibration data; same output format)').choices(['rtn', 'gptq']))
    .option('--act-order', '--weight-method gptq: quantize input columns in order of decreasing Hessian diagonal')
    .option('--sequential', '--weight-method gptq / --sparse-method sparsegpt: read each layer\'s inputs from the model whose earlier layers are already rounded or sparse (one ONNX Runtime pass per wave of layers)')
    .option('--sparsity <fraction>', 'sparsity: set this fraction of every layer\'s weights to zero (0.5 = half); runs before palettization and quantization, which keep the zeros exactly zero')
    .option('--nm <N:M>', 'N:M sparsity: keep N of every M consecutive weights along the input-channel axis (2:4 is what TensorRT\'s sparse kernels take)')
    .addOption(new Option('--sparse-scope <s>', '--sparsity: one magnitude threshold per layer (layer, the default) or over all layers (global)').choices(['layer', 'global']))
    .addOption(new Option('--sparse-method <m>', 'how weights are chosen: magnitude, or sparsegpt (masks and updates of the kept weights from each layer\'s input Gram matrix on --calibration data). Default: sparsegpt with --calibration, magnitude without').choices(['magnitude', 'sparsegpt']))
    .addOption(new Option('--sparse-format <f>', 'dense (default: zeros in the float tensor, any runtime) or compact (a keep-bitmask + the kept values decoded by a chain ONNX Runtime folds at load, or ONNX sparse_initializer when smaller)').choices(['dense', 'compact']))
    .option('--palettize <bits>', 'weight sharing: each weight becomes an index into a look-up table of 2^bits values — 1, 2, 3, 4, 6 or 8 bits; exact k-means by default; stored as indices + LUT decoded by a chain ONNX Runtime folds at load (float speed)')
    .addOption(new Option('--palettize-mode <m>', 'kmeans (optimal 1-D k-means, the default), uniform (evenly spaced values), unique (the distinct values; fails if there are more than 2^bits)').choices(['kmeans', 'uniform', 'unique']))
    .option('--group-size <n>', '--palettize: output channels per look-up table (default: one table per tensor; a count that does not divide leaves the last group smaller)')
    .option('--per-channel-scale', '--palettize: divide each output channel by its largest magnitude before clustering (one float scale per channel)')
    .addOption(new Option('--lut-dtype <t>', '--palettize: look-up table values as float32 (default) or int8 with a scale per table').choices(['float32', 'int8']))
    .addOption(new Option('--palettize-weighting <w>', '--palettize: weigh k-means by the diagonal of each layer\'s input Gram matrix on --calibration data (sensitivity) or not (none, the default: sensitivity measured no better on the bundled CNNs, README)').choices(['sensitivity', 'none']))
    .option('--reduce-range', '--activations dynamic or static W8A8: int8 weights from a 7-bit range, for x86 CPUs without VNNI (AVX2 only), whose fused u8 x s8 kernels saturate with full-range weights and lose accuracy (measured on Fashion-MNIST: README)')
    .option('-v, --verbose', 'debug logging and stack traces'), ['int8', 'uint8', 'dynamic']);
}

export function addCompressCommand(program: Command): void {
  defineCompressOptions(program.command('compress'))
    .action((input: string, o: CompressFlags) => guarded(o.verbose, async () => {
      // The manifest's input hash reads the whole file on a worker thread: started before the
      // pipeline's modules load, it overlaps them instead of being the run's tail.
      const inputSha256 = (await startInputHash(input))?.sha256;
      const [{ compressModel }, { createLogger }, { formatCompressSummary }, { ProgressReporter }, { jsonNumbers }, { planCompress }] = await Promise.all([
        import('../../pipeline/compress.ts'), import('../../log.ts'), import('../format.ts'), import('../progress.ts'),
        import('../../json.ts'), import('../compress-plan.ts')]);
      // --target's default (ort-cpu) does not override a recipe's own target.
      const targetGiven = program.commands.find((c) => c.name() === 'compress')!.getOptionValueSource('target') !== 'default';
      const plan = await planCompress(o, input, targetGiven);
      const staticMode = plan.staticMode;
      const progress = new ProgressReporter(!o.quiet && !o.json, plan.passes.length === 1 && !staticMode ? 'weights' : '');
      const report = await compressModel(input, o.output, {
        passes: plan.passes, calibration: plan.calibration, backend: o.backend, force: o.force, reportPath: o.report, logger: createLogger(logLevel(o)), inputSha256,
        onProgress: (done, total, name) => progress.update(done, total, name),
      });
      progress.stop();
      let evaluation = report.evaluation ?? null;
      // Static W8A8 evaluates its own output; a later pass (distill) needs the written file evaluated.
      if (o.evalData && (!staticMode || !evaluation)) {
        const { evaluateModels } = await import('../../eval/evaluate.ts');
        const ep = new ProgressReporter(!o.quiet && !o.json, 'samples');
        evaluation = await evaluateModels(o.output, input, { data: o.evalData, samples: int(o.samples, '--samples'), onProgress: (d, t) => ep.update(d, t, '') });
        ep.stop();
      }
      if (o.reportHtml) {
        const { compressReportData, writeReportHtml } = await import('../../report/html.ts');
        writeReportHtml(o.reportHtml, compressReportData(input, report, evaluation));
      }
      if (o.json) process.stdout.write(JSON.stringify(evaluation ? { ...report, evaluation } : report, jsonNumbers, 2) + '\n');
      else process.stdout.write(formatCompressSummary(report, evaluation));
      if (evaluation?.slowdown) process.stderr.write(`modelpress: warning: ${evaluation.slowdown}\n`);
      if (staticMode && !o.reduceRange && !o.quiet) {
        const { cpuHasVnni } = await import('../../benchmark/environment.ts');
        if (cpuHasVnni() === false) process.stderr.write('modelpress: note: this CPU has no VNNI: ONNX Runtime\'s fused u8 x s8 kernels saturate with full-range int8 weights here (measured: 0.5-0.7 points of Fashion-MNIST accuracy lost); if the model will run on such CPUs, compress with --reduce-range\n');
      }
      if (report.prune && !report.prune.reached) {
        process.stderr.write(`modelpress: error: --prune-macs ${report.prune.options.macs} cannot be reached: pruned as far as the groups allow (max ratio ${report.prune.options.maxRatio}, round ${report.prune.options.round}), ${(100 * (1 - report.prune.macsAfter / report.prune.macsBefore)).toFixed(1)} % fewer MACs\n`);
        process.exitCode = 3;
      }
      const weightGate = (report.passes.find((p) => p.pass === 'quantize')?.report as { weightGate?: typeof report.gate } | undefined)?.weightGate;
      const gate = report.gate ?? weightGate;
      if (gate && !gate.met) {
        const { formatGate } = await import('../format.ts');
        process.stderr.write(`modelpress: error: the accuracy gate cannot be met: ${formatGate(gate).replace(/^accuracy gate NOT met: /, '')}\n`);
        process.exitCode = 3;
      }
    }));
}

/** Starts hashing the input file when it is a readable file; compressModel reports a bad path itself. */
async function startInputHash(input: string): Promise<{ sha256: Promise<string> } | undefined> {
  let size: number;
  try {
    const st = statSync(input);
    if (!st.isFile()) return undefined;
    size = st.size;
  } catch {
    return undefined;
  }
  const { sha256FileInBackground } = await import('../../file-hash.ts');
  const hashing = sha256FileInBackground(input, size);
  // Handled here too: a run that fails before awaiting it must not also report the hash's rejection.
  hashing.catch(() => undefined);
  // Wrapped: an async function returning the promise itself would wait for the hash.
  return { sha256: hashing };
}
