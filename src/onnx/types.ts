/**
 * Element types of the values in a graph, propagated from inputs, initializers and Constant
 * nodes through simple per-op rules (enough to tell float activations from shape arithmetic).
 */
import { DataType } from './dtypes.ts';
import { int64, type GraphMsg } from './proto.ts';

const BOOL_OPS = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

export function elemTypes(g: GraphMsg): Map<string, number> {
  const t = new Map<string, number>();
  for (const i of [...g.input, ...g.valueInfo, ...g.output]) {
    const e = i.type?.tensorType?.elemType;
    if (e) t.set(i.name ?? '', e);
  }
  for (const init of g.initializer) t.set(init.name ?? '', init.dataType ?? 0);
  for (const n of g.node) {
    const op = n.opType ?? '';
    let out: number | undefined;
    if (op === 'Constant') out = n.attribute.find((a) => a.name === 'value')?.t?.dataType;
    else if (op === 'Cast') out = int64(n.attribute.find((a) => a.name === 'to')?.i);
    else if (BOOL_OPS.has(op)) out = DataType.BOOL;
    else if (INT64_OPS.has(op)) out = DataType.INT64;
    else if (op === 'QuantizeLinear') out = t.get(n.input[2]) ?? DataType.UINT8;
    else if (op === 'DequantizeLinear') out = t.get(n.input[1]) ?? DataType.FLOAT;
    else out = n.input.map((i) => t.get(i)).find((x) => x !== undefined);
    n.output.forEach((o, k) => {
      if (!o || t.has(o)) return;
      if (op === 'TopK' && k === 1) t.set(o, DataType.INT64);
      else if (out !== undefined) t.set(o, out);
    });
  }
  return t;
}
