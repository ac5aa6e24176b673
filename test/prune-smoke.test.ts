import { test, expect } from 'vitest';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { mobileNetV2, resnet18 } from './helpers/zoo.ts';
import { buildChannelGraph } from '../src/analysis/channel-groups.ts';
import { layerCosts } from '../src/analysis/macs.ts';
import { prunePass } from '../src/passes/prune/prune.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import * as ort from 'onnxruntime-node';

test('smoke', async () => {
  for (const [name, msg] of [['mbv2', mobileNetV2({ size: 64 })], ['r18', resnet18({ size: 64 } as never)]] as const) {
    const m = OnnxModel.fromBytes(encodeModel(msg), '.');
    const cg = buildChannelGraph(m);
    console.log(name, cg.groups.length, cg.groups.slice(0, 6).map((g) => `${g.producers.length}p ${g.channels}c ${g.components}comp ${g.prunable}ok ${g.reasons.join('|')}`));
    console.log(layerCosts(m).macs / 1e6, 'MMACs');
    const s = await Scheduler.create({ backend: 'cpu' });
    const r = await prunePass(m, s, { ratio: 0.5 });
    console.log(r.macsBefore / 1e6, r.macsAfter / 1e6, r.paramsBefore, r.paramsAfter, r.channelsRemoved);
    const sess = await ort.InferenceSession.create(m.toBytes());
    const out = await sess.run({ input: new ort.Tensor('float32', new Float32Array(3 * 64 * 64), [1, 3, 64, 64]) });
    console.log(Object.values(out)[0].dims);
  }
}, 60000);
