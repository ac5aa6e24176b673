/** Plain-text rendering for the CLI (tables and the info report). */
import type { EnvironmentInfo } from '../info.ts';
import type { CompressReport } from '../pipeline/compress.ts';
import type { EvalReport } from '../eval/evaluate.ts';
import type { InspectReport } from '../inspect.ts';
import type { QuantizeReport } from '../passes/quantize/pass.ts';
import type { GateReport } from '../passes/quantize/static-pipeline.ts';
import type { SparsifyReport } from '../passes/sparsify/pass.ts';
import type { RecoveryReport } from '../passes/prune/recover.ts';
import type { PalettizeReport } from '../passes/palettize/pass.ts';
import type { DistillReport } from '../passes/distill/fit.ts';
import type { BenchComparison } from '../benchmark/isolated.ts';
import { DRIFT_WARNING } from '../benchmark/stats.ts';

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n';
  return line(header) + line(widths.map((w) => '-'.repeat(w))) + rows.map(line).join('');
}

export function formatInfo(info: EnvironmentInfo): string {
  const b = info.backend;
  const lines = [
    `modelpress ${info.modelpress}`,
    `runtime:  ${info.runtime.name} ${info.runtime.version} (${info.runtime.platform}-${info.runtime.arch})`,
  ];
  if (b.adapter) {
    const a = b.adapter;
    lines.push(
      `adapter:  ${a.description || '(no description)'}`,
      `          vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}, device ${a.device || '?'}, ${a.software ? 'software (CPU emulation)' : 'hardware'}`,
      `features: ${b.features.length ? b.features.join(', ') : '(none requested)'}${b.timestamps ? '' : ' — no timestamp queries: kernel times are wall-clock only'}`,
      'limits:',
      ...Object.entries(b.limits ?? {}).map(([k, v]) => `  ${k.padEnd(36)} ${v}`),
    );
  } else {
    lines.push('adapter:  none');
  }
  lines.push(`backend:  ${b.active} (requested ${b.requested}): ${b.reason}`);
  const c = info.cpu;
  lines.push(`cpu path: ${c.engine === 'wasm' ? `WebAssembly SIMD on up to ${c.threads} thread${c.threads > 1 ? 's' : ''} (MODELPRESS_THREADS sets it)` : 'TypeScript reference (MODELPRESS_CPU_ENGINE=js, or no WebAssembly SIMD)'}`);
  lines.push(`kernels:  ${info.kernels.join(', ')}`);
  return lines.join('\n') + '\n';
}

const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const db = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} dB` : 'exact');

/** One line on a least-squares / bias recovery: layers re-fitted and the held-out output error. */
function recoverySummary(rec: RecoveryReport): string {
  const acc = rec.layers.filter((l) => l.accepted);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return `${rec.method} on ${rec.samples} samples: ${acc.length} of ${rec.layers.length} layers re-fitted; held-out output error ${mean(rec.layers.map((l) => l.errorBefore).filter(Number.isFinite)).toFixed(4)} -> ${mean(rec.layers.map((l) => l.errorAfter).filter(Number.isFinite)).toFixed(4)} (mean relative)`;
}

export function formatCompressSummary(r: CompressReport, e: EvalReport | null): string {
  const t = r.totals;
  const lines: string[] = [];
  lines.push(`${r.manifest.input.path} -> ${r.manifest.output.path}`);
  lines.push(`size:      ${mb(t.modelBytesBefore)} -> ${mb(t.modelBytesAfter)} (${t.ratio.toFixed(2)}x smaller); weights ${mb(t.weightBytesBefore)} -> ${mb(t.weightBytesAfter)}`);
  if (r.passes.length > 1 || r.prune) lines.push(`passes:    ${r.passes.map((p) => `${p.pass} ${(p.timeMs / 1000).toFixed(2)} s${p.usedCalibration ? ' (read calibration data)' : ''}`).join(', ')}`);
  if (r.prune) {
    const p = r.prune;
    const m = (x: number) => `${(x / 1e6).toFixed(1)} M`;
    lines.push(`pruning:   MACs ${m(p.macsBefore)} -> ${m(p.macsAfter)} (${(100 * (1 - p.macsAfter / (p.macsBefore || 1))).toFixed(1)} % fewer), parameters ${m(p.paramsBefore)} -> ${m(p.paramsAfter)}; ${p.channelsRemoved} coupled channels removed from ${p.groups.filter((g) => g.removed > 0).length} of ${p.groups.length} groups`);
    const stopped = p.groups.filter((g) => g.prunable === 0);
    if (stopped.length) lines.push(`           ${stopped.length} groups kept whole: ${[...new Set(stopped.flatMap((g) => g.reasons))].slice(0, 3).join('; ')}${stopped.length > 3 ? '; ...' : ''}`);
    if (p.recovery) lines.push(`recovery:  ${recoverySummary(p.recovery)}`);
  }
  const sp = r.passes.find((p) => p.pass === 'sparsify')?.report as SparsifyReport | undefined;
  if (sp) {
    const fell = sp.tensors.filter((x) => x.fallback).length;
    lines.push(`sparsity:  ${(100 * sp.sparsity).toFixed(1)} % of the weights of ${sp.tensors.length} layers are zero (${sp.options.nm ? `${sp.options.nm} ` : ''}${sp.options.method}${fell ? `; ${fell} layers by magnitude` : ''}); stored ${sp.options.format}`);
    if (sp.reconstruction) lines.push(`recovery:  ${recoverySummary(sp.reconstruction)}`);
  }
  const pal = r.passes.find((p) => p.pass === 'palettize')?.report as PalettizeReport | undefined;
  if (pal) {
    const o = pal.options;
    lines.push(`palettize: ${o.bits}-bit ${o.mode}${o.groupSize ? `, ${o.groupSize} channels per LUT` : ', one LUT per tensor'}${o.lutDtype === 'int8' ? ', int8 LUT' : ''}${o.weighting === 'sensitivity' ? ', sensitivity-weighted' : ''}: ${pal.tensors.length} tensors, ${mb(pal.bytesBefore)} -> ${mb(pal.bytesAfter)}; indices as ${pal.indexStorage}`);
    for (const w of pal.warnings) lines.push(`           warning: ${w}`);
  }
  if (r.mode !== 'float' || r.tensors.length) lines.push(`tensors:   ${t.tensorsQuantized} compressed, ${t.tensorsSkipped} left in float`);
  lines.push(`backend:   ${r.manifest.backend.active} (${r.manifest.backend.reason}); ${r.stats.submits} submits, ${r.stats.dispatches} dispatches; ${(r.timeMs / 1000).toFixed(2)} s`);
  const reasons = new Map<string, number>();
  for (const s of r.skipped) {
    const k = s.reason.replace(/\(\d+ elements < minElements \d+\)/, '(< minElements)');
    reasons.set(k, (reasons.get(k) ?? 0) + 1);
  }
  if (reasons.size) lines.push('skipped:   ' + [...reasons].map(([k, v]) => `${v} × ${k}`).join('\n           '));
  const worst = [...r.tensors].sort((a, b) => a.sqnrDb - b.sqnrDb).slice(0, 5);
  let out = lines.join('\n') + '\n';
  if (worst.length) {
    out += '\nworst layers by SQNR:\n' + formatTable(['tensor', 'op', 'scheme', 'SQNR', 'cosine', 'max err'],
      worst.map((w) => [w.name, w.op, w.scheme, db(w.sqnrDb), w.cosine.toFixed(5), w.maxAbsError.toPrecision(3)]));
  }
  if (r.activations) {
    const c = r.calibration!;
    out += `\nstatic W8A8: ${r.activations.length} activations quantized (${c.method}, ${c.samples} calibration samples; ONNX Runtime ${(c.ortMs / 1000).toFixed(2)} s, statistics ${(c.statsMs / 1000).toFixed(2)} s), ${c.biases} int32 biases\n`;
  }
  const bc = (r.passes.find((p) => p.pass === 'quantize')?.report as QuantizeReport | undefined)?.biasCorrection;
  if (bc) {
    const h = bc.heldOut;
    const figures = h ? `: held-out output SQNR ${db(h.before.sqnrDb)} -> ${db(h.after.sqnrDb)}, cosine ${h.before.cosine.toFixed(5)} -> ${h.after.cosine.toFixed(5)} (${h.after.samples} samples)` : '';
    out += `bias correction (${bc.mode}): ${bc.layers.length} layers on ${bc.fitSamples} samples${figures}; ${bc.kept ? 'kept' : 'not kept (it did not help)'}${bc.skipped.length ? `; ${bc.skipped.length} layers not corrected` : ''}\n`;
  }
  if (r.gate) out += formatGate(r.gate) + '\n';
  const wg = (r.passes.find((p) => p.pass === 'quantize')?.report as QuantizeReport | undefined)?.weightGate;
  if (wg) out += formatGate(wg) + '\n';
  const kd = r.passes.find((p) => p.pass === 'distill')?.report as DistillReport | undefined;
  if (kd) {
    const m = (x: DistillReport['before']) => x.mse !== null ? `MSE ${x.mse.toPrecision(3)}` : `KL ${x.kl!.toFixed(4)}, agreement ${x.agreement!.toFixed(2)} %${x.accuracy !== null ? `, accuracy ${x.accuracy.toFixed(2)} %` : ''}`;
    out += `distillation (${kd.head}, ${kd.loss}, T ${kd.temperature}): ${kd.samples.fit} samples, ${kd.epochs} epochs (best ${kd.bestEpoch}); held-out ${kd.samples.heldOut} samples: ${m(kd.before)} -> ${m(kd.after)}; ${kd.kept ? 'kept' : 'not kept (it did not help)'}\n`;
  }
  if (e) out += '\n' + formatEval(e);
  return out;
}

/** The gate's bounds and where it ended: "drop 0.21 <= 0.3 points, cosine 0.9931 >= 0.99". */
export function formatGate(g: GateReport): string {
  const parts: string[] = [];
  if (g.maxDrop !== null) parts.push(`drop ${g.finalDropPoints!.toFixed(2)} ${g.finalDropPoints! <= g.maxDrop ? '<=' : '>'} ${g.maxDrop} points`);
  if (g.minCosine !== null) parts.push(`output cosine ${g.finalCosine.toFixed(5)} ${g.finalCosine >= g.minCosine ? '>=' : '<'} ${g.minCosine}`);
  if (g.minSqnrDb !== null) parts.push(`output SQNR ${g.finalSqnrDb.toFixed(1)} ${g.finalSqnrDb >= g.minSqnrDb ? '>=' : '<'} ${g.minSqnrDb} dB`);
  const int8 = (g as GateReport & { int8Nodes?: string[] }).int8Nodes ?? [];
  const kept = [
    ...(int8.length ? [`${int8.length} layers given 8 bits: ${int8.join(', ')}`] : []),
    g.floatNodes.length ? `${g.floatNodes.length} layers kept in float: ${g.floatNodes.join(', ')}` : int8.length ? '' : 'no layer kept in float',
  ].filter(Boolean).join('; ');
  return g.met ? `accuracy gate: ${parts.join(', ')} (on ${g.data}); ${kept}` : `accuracy gate NOT met: ${parts.join(', ')} (on ${g.data}) even with ${kept}`;
}

export function formatEval(e: EvalReport): string {
  const rows: string[][] = [['size', mb(e.bytes.baseline), `${mb(e.bytes.model)} (${(e.bytes.baseline / e.bytes.model).toFixed(2)}x smaller)`]];
  if (e.accuracy) rows.push(['accuracy (top-1)', `${e.accuracy.baseline.toFixed(2)}%`, `${e.accuracy.model.toFixed(2)}% (${e.accuracy.dropPoints > 0 ? '-' : e.accuracy.dropPoints < 0 ? '+' : '±'}${Math.abs(e.accuracy.dropPoints).toFixed(2)} points)`]);
  if (e.accuracy) rows.push(['accuracy (top-5)', `${e.accuracy.top5Baseline.toFixed(2)}%`, `${e.accuracy.top5Model.toFixed(2)}%`]);
  const first = e.outputs[0];
  if (first?.top1Agreement !== null && first) rows.push([`top-1 agreement (${first.name})`, '', pct(first.top1Agreement!)]);
  if (e.latencyMs.model > 0) rows.push([`latency (median, batch ${e.latencyMs.batch})`, `${e.latencyMs.baseline.toFixed(2)} ms`, `${e.latencyMs.model.toFixed(2)} ms`]);
  let out = `evaluation on ${e.samples} samples (${e.inputs}), ONNX Runtime CPU:\n` + formatTable(['', 'baseline', 'model'], rows);
  out += formatTable(['output', 'top-1 agreement', 'cosine', 'SQNR', 'max abs diff'],
    e.outputs.map((o) => [o.name, o.top1Agreement === null ? '-' : pct(o.top1Agreement), o.cosine.toFixed(6), db(o.sqnrDb), o.maxAbsDiff.toPrecision(3)]));
  return out;
}

export function formatInspect(r: InspectReport): string {
  const lines = [
    `${r.path}: ${mb(r.bytes)}, IR ${r.irVersion}, producer ${r.producer || '?'}`,
    `opsets:   ${Object.entries(r.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`,
    ...r.inputs.map((v) => `input:    ${v.name} ${v.type} [${v.shape.join(', ')}]`),
    ...r.outputs.map((v) => `output:   ${v.name} ${v.type} [${v.shape.join(', ')}]`),
    `ops:      ${Object.entries(r.ops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `params:   ${r.parameters.count.toLocaleString('en')} (${mb(r.parameters.bytes)}): ${Object.entries(r.parameters.byType).map(([k, v]) => `${k} ${v.count.toLocaleString('en')} (${mb(v.bytes)})`).join(', ')}`,
    '',
    'largest tensors:',
  ];
  let out = lines.join('\n') + '\n' + formatTable(['tensor', 'type', 'shape', 'bytes', 'stored as'], r.largest.map((t) => [t.name, t.type, `[${t.shape.join(', ')}]`, String(t.bytes), t.source]));
  const e = r.encodings;
  const held = [[e.folded, 'folded weights (Cast->Mul, decoded at load)'], [e.dequantizedWeights, 'DequantizeLinear weights (decoded at every run)'],
    [e.quantizedActivations, 'quantized activations (static W8A8)'], [e.matMulNBits, 'MatMulNBits'], [e.dynamic, 'dynamic activation quantizers'], [e.fp16Casts, 'fp16 weights'],
    [e.palettized, 'palettized weights (indices -> Gather(LUT), decoded at load)'], [e.sparseBitmask, 'sparse weights (keep-bitmask + values, decoded at load)'],
    [e.sparseInitializers, 'sparse_initializer weights (densified at load)']] as const;
  const found = held.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
  out += `\nencodings: ${found.length ? found.join(', ') : 'none (a float model)'}\n`;
  const c = r.compute;
  const g = (x: number) => (x >= 1e9 ? `${(x / 1e9).toFixed(2)} G` : `${(x / 1e6).toFixed(2)} M`);
  const at = Object.entries(c.inputShapes).map(([k, v]) => `${k} [${v.join(', ')}]`).join(', ');
  out += `\ncompute:  ${g(c.macs)}MACs per sample${at ? ` at ${at} (symbolic sizes set for counting)` : ''} in ${c.layers.length} Conv/Gemm/MatMul layers${c.unknown ? ` (${c.unknown} with unknown shapes not counted)` : ''}, ${c.params.toLocaleString('en')} of their parameters\n`;
  const heavy = [...c.layers].filter((l) => l.macs !== null).sort((a, b) => b.macs! - a.macs!).slice(0, 5);
  if (heavy.length) out += formatTable(['layer', 'op', 'MACs', 'share', 'params'], heavy.map((l) => [l.node, l.op, g(l.macs!), pct(l.macs! / (c.macs || 1)), l.params.toLocaleString('en')]));
  const groups = r.channelGroups;
  const prunable = groups.filter((x) => x.prunable > 0);
  out += `\nchannel groups (structured pruning): ${groups.length}, ${prunable.length} prunable\n`;
  if (groups.length) {
    out += formatTable(['group', 'producers', 'channels', 'removable', 'why channels stay'], groups.map((x) => [
      String(x.id), x.producers.length > 3 ? `${x.producers.slice(0, 3).join(', ')} +${x.producers.length - 3}` : x.producers.join(', '),
      String(x.components), `${x.prunable}`, x.reasons.join('; ') || '-',
    ]));
  }
  out += `\ndefault weight-only run (${r.plan.recipe}): ${r.plan.quantize.length} quantized, ${r.plan.skip.length} skipped\n`;
  if (r.plan.quantize.length) {
    out += formatTable(['quantize', 'op', 'shape', 'scheme', 'encoding'], r.plan.quantize.map((q) => [q.name, q.op, `[${q.shape.join(', ')}]`, q.scheme, q.encoding]));
    const whys = [...new Set(r.plan.quantize.map((q) => `${q.encoding}: ${q.why}`))];
    out += whys.map((w) => `  ${w}\n`).join('');
  }
  if (r.plan.skip.length) out += formatTable(['skip', 'op', 'shape', 'reason'], r.plan.skip.map((q) => [q.name, q.op, `[${q.shape.join(', ')}]`, q.reason]));
  return out;
}

const BENCH_HEADER = ['model', 'size', 'session ms', 'first ms', 'p50 ms', 'p90 ms', 'p95 ms', 'p99 ms', 'mean ms', 'min ms', 'max ms', 'samples/s', 'peak RSS MiB', 'speed-up', 'size ratio'];

function benchRows(c: BenchComparison): string[][] {
  return c.results.map((r, i) => {
    const l = r.latencyMs;
    const f = (x: number) => x.toFixed(x < 10 ? 3 : 2);
    return [r.model, mb(r.bytes), r.sessionCreateMs.toFixed(1), r.firstRunMs.toFixed(2), f(l.p50), f(l.p90), f(l.p95), f(l.p99), f(l.mean), f(l.min), f(l.max),
      r.throughput.samplesPerS.toFixed(1), r.rssMiB.peak.toFixed(0), `${c.ratios[i].speedup.toFixed(2)}x`, `${c.ratios[i].sizeRatio.toFixed(3)}`];
  });
}

/** The `bench` comparison: the environment, then one row per model (ratios against the first). */
export function formatBench(c: BenchComparison): string {
  const r0 = c.results[0];
  const e = r0.environment;
  const threads = e.intraOpThreads === 'ort-default' ? 'ORT default threads' : `${e.intraOpThreads} intra-op threads`;
  const lines = [
    `environment: ${e.cpu}, ${e.logicalCores} logical cores, ${e.memoryGiB} GiB; ${e.os}; Node ${e.node}; ONNX Runtime ${e.onnxruntime}, ${e.executionProvider} EP, ${threads}, optimization ${e.graphOptimization}`,
    `runs: ${r0.warmup} warm-up excluded, ${r0.runs} timed, batch ${r0.batch}, concurrency ${r0.concurrency}; inputs ${r0.inputs}${c.interleaved ? '; models interleaved round-robin in one process' : c.isolated ? '; each model in a process of its own' : ''}`,
    '',
    formatTable(BENCH_HEADER, benchRows(c)).trimEnd(),
  ];
  if (c.results.length > 1) lines.push('', `speed-up and size ratio against ${r0.model} (speed-up = its p50 / this p50)`);
  for (const r of c.results) {
    const d = r.latencyMs.drift;
    if (d !== null && d > DRIFT_WARNING) lines.push(`warning: ${r.model}: latency drifted ${((d - 1) * 100).toFixed(0)} % between blocks of runs (something else used the cores part of the time): measure again${c.results.length > 1 && !c.interleaved ? ', or compare with --interleave' : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** A CSV field, quoted when it holds a comma, quote or newline (RFC 4180). */
export const csvCell = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/** CSV: one row per model, plain numbers (bytes, milliseconds, MiB). */
export function benchCsv(c: BenchComparison): string {
  const header = ['model', 'bytes', 'batch', 'concurrency', 'warmup', 'runs', 'session_create_ms', 'first_run_ms', 'p50_ms', 'p90_ms', 'p95_ms', 'p99_ms', 'mean_ms', 'min_ms', 'max_ms', 'stdev_ms', 'drift', 'samples_per_s', 'rss_before_mib', 'rss_peak_mib', 'speedup', 'size_ratio', 'cpu', 'onnxruntime', 'execution_provider', 'intra_op_threads'];
  const rows = c.results.map((r, i) => {
    const l = r.latencyMs;
    return [r.model, r.bytes, r.batch, r.concurrency, r.warmup, r.runs, r.sessionCreateMs, r.firstRunMs, l.p50, l.p90, l.p95, l.p99, l.mean, l.min, l.max, l.stdev, l.drift ?? '', r.throughput.samplesPerS,
      r.rssMiB.before, r.rssMiB.peak, c.ratios[i].speedup, c.ratios[i].sizeRatio, r.environment.cpu, r.environment.onnxruntime, r.environment.executionProvider, r.environment.intraOpThreads].map((v) => csvCell(String(v)));
  });
  return [header, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}
