import * as ort from 'onnxruntime-node';
import { OnnxModel } from './dist/src/onnx/model.js';
const s = await ort.InferenceSession.create('/tmp/w8a8.onnx', { optimizedModelFilePath: '/tmp/opt.onnx', graphOptimizationLevel: 'all' });
const m = OnnxModel.read('/tmp/opt.onnx');
const ops = {}; for (const n of m.msg.graph.node) { const k = (n.domain ? n.domain + '.' : '') + n.opType; ops[k] = (ops[k] || 0) + 1; }
console.log(ops);
