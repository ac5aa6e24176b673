/** inspectModel: what a model holds and what a default weight-only int8 run would do to it. */
import { OnnxModel, allTensors } from './onnx/model.ts';
import { dataTypeName, rawByteLength } from './onnx/dtypes.ts';
import { int64, type ValueInfoMsg } from './onnx/proto.ts';
import { tensorDims } from './onnx/tensor.ts';
import { parseRecipe, type Recipe } from './recipe/recipe.ts';
import { findTargets } from './passes/quantize/targets.ts';
import { plannedEncoding } from './passes/quantize/weight-only.ts';
import { summarizeEncodings, type EncodingSummary } from './analysis/encodings.ts';
import { buildChannelGraph, type ChannelGroup } from './analysis/channel-groups.ts';
import { layerCosts, type CostSummary } from './analysis/macs.ts';
import { prepareForPruning } from './passes/prune/prune.ts';
import { nominalInputShapes } from './analysis/shapes.ts';

export interface ValueDescription {
  name: string;
  type: string;
  shape: Array<number | string>;
}

export interface InspectReport {
  path: string;
  bytes: number;
  irVersion: number;
  producer: string;
  opsets: Record<string, number>;
  inputs: ValueDescription[];
  outputs: ValueDescription[];
  ops: Record<string, number>;
  parameters: { count: number; bytes: number; byType: Record<string, { count: number; bytes: number }> };
  largest: Array<{ name: string; type: string; shape: number[]; bytes: number; source: string }>;
  /** What the model already holds (a compressed model shows its encodings here). */
  encodings: EncodingSummary;
  /** Multiply-accumulates per sample and parameters, per Conv/ConvTranspose/Gemm/MatMul and in total. */
  compute: CostSummary & { inputShapes: Record<string, Array<number | string | null>> };
  /** Channel dependency groups for structured pruning: producers, coupled channels, why a group cannot shrink. */
  channelGroups: ChannelGroup[];
  plan: {
    recipe: string;
    /** Per weight: the scheme, the encoding it would get (folded, qdq, ...) and why. */
    quantize: Array<{ name: string; op: string; shape: number[]; scheme: string; encoding: string; why: string }>;
    skip: Array<{ name: string; op: string; shape: number[]; reason: string }>;
  };
}

function describeValue(v: ValueInfoMsg): ValueDescription {
  const t = v.type?.tensorType;
  return {
    name: v.name ?? '',
    type: t ? dataTypeName(t.elemType).toLowerCase() : 'non-tensor',
    shape: (t?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? int64(d.dimValue) : '?')),
  };
}

export function inspectModel(path: string, recipe: Recipe = parseRecipe({})): InspectReport {
  const m = OnnxModel.read(path);
  const g = m.msg.graph!;
  const inits = new Set(g.initializer.map((t) => t.name));
  const ops: Record<string, number> = {};
  for (const n of g.node) {
    const k = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : (n.opType ?? '');
    ops[k] = (ops[k] ?? 0) + 1;
  }
  const byType: Record<string, { count: number; bytes: number }> = {};
  let count = 0;
  let bytes = 0;
  const sizes: InspectReport['largest'] = [];
  const constantOf = new Map<object, string>();
  for (const w of m.graph.weights.values()) if (w.source === 'constant') constantOf.set(w.tensor, w.name);
  for (const t of allTensors(m.msg)) {
    const dims = tensorDims(t);
    const n = dims.reduce((a, b) => a * b, 1);
    const b = rawByteLength(t.dataType ?? 0, n);
    const type = dataTypeName(t.dataType).toLowerCase();
    byType[type] ??= { count: 0, bytes: 0 };
    byType[type].count += n;
    byType[type].bytes += b;
    count += n;
    bytes += b;
    sizes.push({ name: constantOf.get(t) ?? t.name ?? '', type, shape: dims, bytes: b, source: constantOf.has(t) ? 'Constant' : 'initializer' });
  }
  sizes.sort((a, b) => b.bytes - a.bytes);
  const { targets, skipped } = findTargets(m.graph, recipe);
  const planned = targets.map((t) => ({ t, enc: plannedEncoding(m, t) }));
  // The groups as the prune pass sees them (on a copy: Identity-routed and shared constants
  // resolved). The copy is a second lazy read of the file: large payloads stay on disk, where
  // encoding the model would read every weight.
  const forPruning = OnnxModel.read(path);
  prepareForPruning(forPruning);
  const inputShapes = nominalInputShapes(forPruning);
  const cg = buildChannelGraph(forPruning, { inputShapes });
  const opsets: Record<string, number> = {};
  for (const o of m.msg.opsetImport) opsets[o.domain || 'ai.onnx'] = int64(o.version);
  return {
    path,
    bytes: m.sourceBytes,
    irVersion: int64(m.msg.irVersion),
    producer: `${m.msg.producerName ?? ''} ${m.msg.producerVersion ?? ''}`.trim(),
    opsets,
    inputs: g.input.filter((i) => !inits.has(i.name)).map(describeValue),
    outputs: g.output.map(describeValue),
    ops,
    parameters: { count, bytes, byType },
    largest: sizes.slice(0, 10),
    encodings: summarizeEncodings(m),
    compute: { ...layerCosts(forPruning, cg.shapes), inputShapes: Object.fromEntries(inputShapes) },
    channelGroups: cg.groups,
    plan: {
      recipe: `${recipe.global.weights} ${recipe.global.granularity}${recipe.global.symmetric ? ' symmetric' : ' asymmetric'}, target ${recipe.target} (minElements ${recipe.minElements})`,
      quantize: planned.flatMap((p) => ('skip' in p.enc ? [] : [{
        name: p.t.weight.name, op: p.t.opType, shape: p.t.shape, scheme: `${p.t.config.weights} ${p.t.config.granularity}${p.t.config.granularity === 'channel' ? ` axis ${p.t.axis}` : ''}`,
        encoding: p.enc.encoding, why: p.enc.why,
      }])),
      skip: [...skipped.map((s) => ({ name: s.name, op: s.opType, shape: s.shape, reason: s.reason })),
        ...planned.flatMap((p) => ('skip' in p.enc ? [{ name: p.t.weight.name, op: p.t.opType, shape: p.t.shape, reason: p.enc.skip }] : []))],
    },
  };
}
