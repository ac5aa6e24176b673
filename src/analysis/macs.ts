/**
 * Multiply-accumulates and parameters per layer, per sample (axis 0 is the batch). Convolutions,
 * transposed convolutions, Gemm and MatMul carry nearly all the arithmetic of the models modelpress
 * targets; other ops are counted as zero.
 */
import type { OnnxModel } from '../onnx/model.ts';
import type { NodeMsg } from '../onnx/proto.ts';
import { tensorElements } from '../onnx/tensor.ts';
import { attrInt, inferShapes, numel, type Shape } from './shapes.ts';

export interface LayerCost {
  node: string;
  op: string;
  /** Per sample; null when a shape it needs is unknown. */
  macs: number | null;
  /** Elements of the node's constant inputs (weights, biases). */
  params: number;
}

export interface CostSummary {
  layers: LayerCost[];
  macs: number;
  params: number;
  /** Layers whose MACs could not be computed (unknown shapes). */
  unknown: number;
}

const COUNTED = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

function layerMacs(node: NodeMsg, shapes: Map<string, Shape>): number | null {
  const w = shapes.get(node.input[1]);
  const x = shapes.get(node.input[0]);
  const y = shapes.get(node.output[0]);
  if (!w || !x || !y) return null;
  switch (node.opType) {
    case 'Conv': {
      const perOutput = numel(w.slice(1));
      const outs = numel(y.slice(1));
      return perOutput === null || outs === null ? null : perOutput * outs;
    }
    case 'ConvTranspose': {
      // Every input element scatters into Cout/group · kernel outputs.
      const perInput = numel(w.slice(1));
      const ins = numel(x.slice(1));
      return perInput === null || ins === null ? null : perInput * ins;
    }
    case 'Gemm': {
      const k = attrInt(node, 'transA', 0) ? x[0] : x[1];
      const n = y[1];
      return typeof k === 'number' && typeof n === 'number' ? k * n : null;
    }
    case 'MatMul': {
      const k = x[x.length - 1];
      const outs = y.length > 1 ? numel(y.slice(1)) : numel(y);
      return typeof k === 'number' && outs !== null ? k * outs : null;
    }
    default:
      return null;
  }
}

export function layerCosts(model: OnnxModel, shapes: Map<string, Shape> = inferShapes(model)): CostSummary {
  const layers: LayerCost[] = [];
  let macs = 0;
  let params = 0;
  let unknown = 0;
  for (const node of model.msg.graph!.node) {
    const op = node.opType ?? '';
    if (!COUNTED.has(op) || ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx')) continue;
    let p = 0;
    for (const i of node.input) {
      const w = i ? model.graph.weights.get(i) : undefined;
      if (w) p += tensorElements(w.tensor);
    }
    const m = layerMacs(node, shapes);
    if (m === null) unknown++;
    else macs += m;
    params += p;
    layers.push({ node: node.name || node.output[0], op, macs: m, params: p });
  }
  return { layers, macs, params, unknown };
}
