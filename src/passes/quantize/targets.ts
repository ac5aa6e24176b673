/**
 * Which weights a weight-only run touches, how (axis per op), and why the others are skipped.
 * A weight may be shared by several nodes: it is quantized once, and the nodes must agree.
 */
import { RecipeError } from '../../errors.ts';
import { DataType, FLOAT_TYPES, dataTypeName } from '../../onnx/dtypes.ts';
import type { GraphIR, WeightRef } from '../../onnx/graph.ts';
import type { NodeMsg } from '../../onnx/proto.ts';
import { numberAttr } from '../../onnx/attributes.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import { configFor, defaultFormat, parseRecipe, type DeploymentTarget, type Recipe, type WeightConfig } from '../../recipe/recipe.ts';

export interface Target {
  weight: WeightRef;
  shape: number[];
  nodes: NodeMsg[];
  opType: string;
  config: WeightConfig;
  /** Output-channel axis of the weight for its consumer op. */
  axis: number;
  /** The recipe's deployment target (it chose the default format). */
  deployment: DeploymentTarget;
}

export interface Skip {
  name: string;
  opType: string;
  shape: number[];
  reason: string;
}


/** The weight input slot of each supported op and the axis of its output channels. */
function weightAxis(node: NodeMsg, index: number, rank: number): number | string {
  const op = node.opType ?? '';
  if ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx') return `${node.domain}.${op} is not rewritten`;
  switch (op) {
    case 'Conv':
      if (index === 1) return 0;
      return index === 2 ? 'bias' : `input ${index} of Conv`;
    case 'ConvTranspose':
      // W is [Cin, Cout / group, kh, kw]: output channels are axis 1.
      if (index === 1) return 1;
      return index === 2 ? 'bias' : `input ${index} of ConvTranspose`;
    case 'Gemm':
      if (index === 1) return numberAttr(node, 'transB', 0) ? 0 : 1;
      if (index === 2) return 'bias';
      return 'input A of Gemm (an activation slot)';
    case 'MatMul':
      if (index === 1 && rank >= 2) return rank - 1;
      return index === 0 ? 'input A of MatMul (an activation slot)' : 'rank-1 MatMul weight';
    default:
      return `used by ${op} (no safe weight-only rewrite)`;
  }
}

export function findTargets(graph: GraphIR, recipe: Recipe): { targets: Target[]; skipped: Skip[] } {
  const targets: Target[] = [];
  const skipped: Skip[] = [];
  for (const w of graph.weights.values()) {
    const shape = tensorDims(w.tensor);
    const uses = graph.uses(w.name);
    const opType = uses[0]?.node.opType ?? '(unused)';
    const skip = (reason: string) => skipped.push({ name: w.name, opType, shape, reason });
    const type = w.tensor.dataType ?? 0;
    if (uses.length === 0) continue; // shape constants of subgraphs, unused tensors: not weights
    if (!FLOAT_TYPES.has(type)) {
      if (uses.some((u) => ['Conv', 'Gemm', 'MatMul', 'ConvTranspose'].includes(u.node.opType ?? ''))) skip(`not a float tensor (${dataTypeName(type)})`);
      continue;
    }
    const elements = shape.reduce((a, b) => a * b, 1);
    const axes = uses.map((u) => weightAxis(u.node, u.index, shape.length));
    const why = axes.find((a) => typeof a === 'string');
    if (why !== undefined) {
      skip(why === 'bias' ? 'bias (kept in float: it is added to the accumulator)' : String(why));
      continue;
    }
    if (graph.isGraphOutput(w.name)) {
      skip('is also a graph output');
      continue;
    }
    if (elements < recipe.minElements) {
      skip(`small (${elements} elements < minElements ${recipe.minElements})`);
      continue;
    }
    const configs = uses.map((u) => ({ node: u.node, config: configFor(recipe, u.node) }));
    const first = configs[0];
    for (const c of configs.slice(1)) {
      if (JSON.stringify(c.config) !== JSON.stringify(first.config)) {
        throw new RecipeError(
          `weight '${w.name}' is shared by nodes '${first.node.name}' (${first.node.opType}) and '${c.node.name}' (${c.node.opType}), ` +
            `which the recipe configures differently (${JSON.stringify(first.config)} vs ${JSON.stringify(c.config)}); give them the same config`,
          { weight: w.name, nodes: [first.node.name, c.node.name] },
        );
      }
    }
    if (!first.config) {
      skip('excluded by the recipe (null)');
      continue;
    }
    const axisSet = new Set(axes as number[]);
    const config = { ...first.config };
    // Block-wise storage and MatMulNBits are for MatMul/Gemm; convolutions get per-channel scales
    // in the target's own format.
    if (opType === 'Conv' || opType === 'ConvTranspose') {
      if (config.granularity === 'block') config.granularity = 'channel';
      if (config.format === 'matmulnbits') config.format = defaultFormat(recipe.target);
    }
    targets.push({ weight: w, shape, nodes: uses.map((u) => u.node), opType, config, axis: axisSet.size === 1 ? [...axisSet][0] : -1, deployment: recipe.target });
  }
  return { targets, skipped };
}

/**
 * The float weights a pass that rewrites weights in place (sparsify, palettize) may change: the
 * weight-only eligibility above, less the excluded nodes / op types and non-FLOAT tensors.
 */
export function floatWeightTargets(graph: GraphIR, pass: string, minElements: number, exclude?: ReadonlySet<string>): { targets: Target[]; skipped: Skip[] } {
  const { targets: all, skipped } = findTargets(graph, parseRecipe({ minElements }));
  const targets: Target[] = [];
  for (const t of all) {
    const skip = (reason: string) => skipped.push({ name: t.weight.name, opType: t.opType, shape: t.shape, reason });
    const type = t.weight.tensor.dataType ?? 0;
    if (t.nodes.some((n) => exclude?.has(n.name ?? '') || exclude?.has(n.opType ?? ''))) skip('excluded (--exclude / recipe exclude)');
    else if (type !== DataType.FLOAT) skip(`${pass} reads FLOAT weights, this one is ${dataTypeName(type)}`);
    else targets.push(t);
  }
  return { targets, skipped };
}
