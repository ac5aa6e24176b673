/** Waves of layers for the sequential methods (GPTQ, bias correction, pruning's and sparsity's reconstruction). */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { layerWaves } from '../src/passes/layer-rows.ts';

/** x -> conv a -> Relu -> conv b -> conv c -> Flatten -> Gemm fc, plus conv d reading x beside a. */
function chain(): OnnxModel {
  const b = new GraphBuilder('waves');
  const x = b.input('x', [1, 2, 4, 4]);
  const w = (name: string, dims: number[]) => b.init(name, dims, new Float32Array(dims.reduce((p, q) => p * q, 1)).fill(0.1));
  const a = b.op('Conv', [x, w('wa', [2, 2, 1, 1])], {}, 'a');
  const b1 = b.op('Conv', [b.op('Relu', [a]), w('wb', [2, 2, 1, 1])], {}, 'b');
  const c = b.op('Conv', [b1, w('wc', [2, 2, 1, 1])], {}, 'c');
  const d = b.op('Conv', [x, w('wd', [2, 2, 1, 1])], {}, 'd');
  const fc = b.op('Gemm', [b.op('Flatten', [b.op('Add', [c, d])]), w('wf', [3, 32])], { transB: 1 }, 'fc');
  b.output(fc, [1, 3]);
  return OnnxModel.fromBytes(encodeModel(b.build(13)), '.');
}

describe('layerWaves', () => {
  it('puts every layer after the layers upstream of it, whatever order they are listed in', () => {
    const model = chain();
    const byName = new Map(model.msg.graph!.node.map((n) => [n.name, n]));
    const names = (waves: Array<Array<{ node: { name?: string | null } }>>) => waves.map((w) => w.map((t) => t.node.name).sort());
    const want = [['a', 'd'], ['b'], ['c'], ['fc']];
    // Graph order, reversed, and as the sparsify pass lists weights (by name: fc's before b's).
    for (const order of [['a', 'b', 'c', 'd', 'fc'], ['fc', 'd', 'c', 'b', 'a'], ['fc', 'a', 'c', 'b', 'd']]) {
      expect(names(layerWaves(model, order.map((n) => ({ node: byName.get(n)! })))), order.join(',')).toEqual(want);
    }
  });
});
