/**
 * Upgrades the ai.onnx opset of a model from 7–9 to 10, which QuantizeLinear / DequantizeLinear and
 * ONNX Runtime's integer kernels (QLinearConv) need. Between 9 and 10 only Slice changed for the
 * ops handled here (its starts / ends / axes became inputs); models with other changed ops
 * (TopK, Upsample, Dropout with a ratio attribute) are refused with the reason.
 */
import { ModelError } from '../errors.ts';
import { DataType } from './dtypes.ts';
import type { OnnxModel } from './model.ts';
import { int64 } from './proto.ts';
import { bytesOf, makeTensor } from './tensor.ts';

const CHANGED_IN_10 = new Set(['TopK', 'Upsample']);

export function upgradeToOpset10(model: OnnxModel): { from: number; rewrittenSlices: number } {
  const from = model.opset('');
  if (from >= 10) return { from, rewrittenSlices: 0 };
  const g = model.msg.graph!;
  const blocking = g.node.filter((n) => (n.domain ?? '') === '' && (CHANGED_IN_10.has(n.opType ?? '') || (n.opType === 'Dropout' && n.attribute.some((a) => a.name === 'ratio'))));
  if (blocking.length) {
    throw new ModelError('UNSUPPORTED_MODEL', `static quantization needs ai.onnx opset 10 and the model imports ${from}; upgrading ${blocking[0].opType} (node '${blocking[0].name}') is not supported`, { node: blocking[0].name });
  }
  let rewritten = 0;
  for (const n of g.node) {
    if (n.opType !== 'Slice' || (n.domain ?? '') !== '') continue;
    const get = (name: string) => n.attribute.find((a) => a.name === name)?.ints.map(int64);
    const starts = get('starts');
    const ends = get('ends');
    const axes = get('axes');
    if (!starts || !ends) continue;
    const inputs = [['starts', starts], ['ends', ends], ...(axes ? [['axes', axes] as const] : [])] as Array<[string, number[]]>;
    for (const [k, v] of inputs) {
      const t = makeTensor(model.graph.uniqueName(`${n.name || n.output[0]}_${k}`), DataType.INT64, [v.length], bytesOf(BigInt64Array.from(v, (x) => BigInt(x))));
      g.initializer.push(t);
      n.input.push(t.name!);
    }
    n.attribute = n.attribute.filter((a) => !['starts', 'ends', 'axes'].includes(a.name ?? ''));
    rewritten++;
  }
  for (const o of model.msg.opsetImport) if ((o.domain ?? '') === '' || o.domain === 'ai.onnx') o.version = 10;
  model.reindex();
  return { from, rewrittenSlices: rewritten };
}
