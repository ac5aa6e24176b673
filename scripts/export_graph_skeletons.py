#!/usr/bin/python3
"""Exports torchvision detection / segmentation graphs as *skeletons*: the ONNX graph with every
weight's values removed (dims kept; doc_string 'modelpress:skeleton'), so the repository holds the
graph structure in kilobytes. Tests refill the weights with seeded random values in TypeScript
(test/helpers/skeletons.ts): these models exercise the pruning rules on real architectures
(coverage), not accuracy.

    /usr/bin/python3 scripts/export_graph_skeletons.py   -> test/assets/skeletons/*.onnx

Graphs: SSDlite320-MobileNetV3-Large (backbone + SSD heads, without the NMS post-processing that
deployments run outside the model) and LRASPP-MobileNetV3-Large (semantic segmentation), both at a
fixed 320x320 input, opset 13, random weights (torchvision's weights are not downloaded).
"""
import os
import torch
import torch.nn as nn
import onnx
import torchvision
from torchvision.models.detection import ssdlite320_mobilenet_v3_large
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

torch.manual_seed(0)
here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, '..', 'test', 'assets', 'skeletons')
os.makedirs(out_dir, exist_ok=True)

class SsdHeads(nn.Module):
    def __init__(self):
        super().__init__()
        m = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91).eval()
        self.backbone, self.head = m.backbone, m.head
    def forward(self, x):
        feats = list(self.backbone(x).values())
        h = self.head(feats)
        return h['bbox_regression'], h['cls_logits']

class Lraspp(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).eval()
    def forward(self, x):
        return self.m(x)['out']

def skeleton(path):
    model = onnx.load(path)
    stripped = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims: n *= d
        if t.data_type == onnx.TensorProto.FLOAT and n > 64:
            t.ClearField('raw_data'); t.ClearField('float_data')
            t.doc_string = 'modelpress:skeleton'
            stripped += 1
    onnx.save(model, path)
    return stripped

for name, module, outputs in [('ssdlite320-mobilenet-v3', SsdHeads(), ['bbox_regression', 'cls_logits']), ('lraspp-mobilenet-v3', Lraspp(), ['out'])]:
    module.eval()
    path = os.path.join(out_dir, f'{name}.onnx')
    with torch.no_grad():
        torch.onnx.export(module, torch.randn(1, 3, 320, 320), path, input_names=['image'], output_names=outputs,
                          opset_version=13, do_constant_folding=True)
    print(name, 'weights stripped:', skeleton(path), 'bytes:', os.path.getsize(path))
print('torch', torch.__version__, 'torchvision', torchvision.__version__)
