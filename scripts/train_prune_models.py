#!/usr/bin/python3
"""Trains the Fashion-MNIST models the pruning tests and benchmarks use, exported to ONNX:

  residual          ResNet-style: 3x3 convs with batch norm, identity and strided 1x1 shortcuts
  inverted-residual MobileNetV3-style: 1x1 expand, depthwise 3x3, squeeze-excitation, HardSwish
  unet              U-Net-style segmentation: MaxPool down, Resize up, Concat skips; per-pixel
                    labels = the garment class where the pixel is lit (> 0.2), else background
  unet-wide         the same U-Net with twice the channels (16 / 32 / 64; not trained by default)

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), 60000 train images.
Run with Debian's python3 and python3-torch (offline):
    /usr/bin/python3 scripts/train_prune_models.py          -> test/assets/fashion-{residual,inverted-residual,unet}.onnx + .json
    /usr/bin/python3 scripts/train_prune_models.py unet-wide -> test/assets/fashion-unet-wide.onnx + .json
"""
import gzip, json, os, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20261128
torch.manual_seed(SEED)
np.random.seed(SEED)
torch.set_num_threads(2)
here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, '..', 'test', 'assets')
data_dir = '/usr/share/datasets/fashion-mnist'

def idx(path):
    with gzip.open(path + '.gz', 'rb') as f:
        raw = f.read()
    magic, = struct.unpack('>I', raw[:4])
    ndim = magic & 0xff
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

xtr = torch.from_numpy(idx(os.path.join(data_dir, 'train-images-idx3-ubyte')).astype(np.float32) / 255.0).unsqueeze(1)
ytr = torch.from_numpy(idx(os.path.join(data_dir, 'train-labels-idx1-ubyte')).astype(np.int64))
xte = torch.from_numpy(idx(os.path.join(data_dir, 't10k-images-idx3-ubyte')).astype(np.float32) / 255.0).unsqueeze(1)
yte = torch.from_numpy(idx(os.path.join(data_dir, 't10k-labels-idx1-ubyte')).astype(np.int64))

def seg_labels(x, y):
    """Per-pixel class: the garment class + 1 where the pixel is lit, 0 (background) elsewhere."""
    return torch.where(x[:, 0] > 0.2, (y + 1).view(-1, 1, 1).expand(-1, 28, 28), torch.zeros_like(x[:, 0], dtype=torch.int64))

def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))

class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = conv_bn(cin, cout, 3, stride)
        self.c2 = conv_bn(cout, cout, 3)
        self.short = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
    def forward(self, x):
        return F.relu(self.c2(F.relu(self.c1(x))) + self.short(x))

class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 24, 3, 2)
        self.layers = nn.Sequential(Basic(24, 24, 1), Basic(24, 48, 2), Basic(48, 48, 1), Basic(48, 96, 2))
        self.fc = nn.Linear(96, 10)
    def forward(self, x):
        x = self.layers(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)
    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))

class InvertedResidual(nn.Module):
    def __init__(self, cin, hidden, cout, stride, se):
        super().__init__()
        self.expand = conv_bn(cin, hidden, 1)
        self.dw = conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.se = SE(hidden, max(8, hidden // 4)) if se else nn.Identity()
        self.project = conv_bn(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout
    def forward(self, x):
        y = self.project(self.se(F.hardswish(self.dw(F.hardswish(self.expand(x))))))
        return x + y if self.residual else y

class MobileStyle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16, 3, 2)
        self.blocks = nn.Sequential(
            InvertedResidual(16, 64, 24, 2, True), InvertedResidual(24, 72, 24, 1, False),
            InvertedResidual(24, 96, 40, 2, True), InvertedResidual(40, 120, 40, 1, True))
        self.head = conv_bn(40, 128, 1)
        self.fc = nn.Linear(128, 10)
    def forward(self, x):
        x = self.head(self.blocks(F.hardswish(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.hardswish(x), 1), 1))

def double(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())

class UNet(nn.Module):
    def __init__(self, w=8):
        super().__init__()
        self.e1, self.e2, self.mid = double(1, w), double(w, 2 * w), double(2 * w, 4 * w)
        self.d2, self.d1 = double(4 * w + 2 * w, 2 * w), double(2 * w + w, w)
        self.out = nn.Conv2d(w, 11, 1)
        self.up = nn.Upsample(scale_factor=2, mode='nearest')
    def forward(self, x):
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        m = self.mid(F.max_pool2d(b, 2))
        u2 = self.d2(torch.cat([self.up(m), b], 1))
        u1 = self.d1(torch.cat([self.up(u2), a], 1))
        return self.out(u1)

def miou(pred, target, classes=11):
    ious = []
    for c in range(classes):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        if union: ious.append(inter / union)
    return 100 * sum(ious) / len(ious)

def train(name, model, epochs, seg=False):
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * (len(xtr) // 128))
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr) - 127, 128):
            b = perm[i:i + 128]
            x = xtr[b]
            target = seg_labels(x, ytr[b]) if seg else ytr[b]
            loss = F.cross_entropy(model(x), target)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        print(f'{name}: epoch {epoch + 1} loss {loss.item():.4f} ({time.time() - t0:.0f} s)', flush=True)
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(xte[i:i + 500]) for i in range(0, len(xte), 500)])
    if seg:
        metric = {'mIoU': miou(out.argmax(1), seg_labels(xte, yte)), 'pixelAccuracy': 100 * (out.argmax(1) == seg_labels(xte, yte)).float().mean().item()}
    else:
        metric = {'top1': 100 * (out.argmax(1) == yte).float().mean().item()}
    path = os.path.join(out_dir, f'fashion-{name}.onnx')
    torch.onnx.export(model, xte[:1], path, input_names=['image'], output_names=['logits'],
                      dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}}, opset_version=13, do_constant_folding=True)
    params = sum(p.numel() for p in model.parameters())
    meta = {'model': f'fashion-{name}.onnx', 'task': 'segmentation' if seg else 'classification', 'epochs': epochs, 'seed': SEED,
            'data': "Fashion-MNIST IDX files from Debian's dataset-fashion-mnist (60000 train / 10000 test)",
            'test': metric, 'parameters': params, 'trainSeconds': round(time.time() - t0), 'torch': torch.__version__,
            'script': 'scripts/train_prune_models.py'}
    with open(os.path.join(out_dir, f'fashion-{name}.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    print(name, meta['test'], flush=True)

which = sys.argv[1:] or ['residual', 'inverted-residual', 'unet']
if 'residual' in which: train('residual', Residual(), 3)
if 'inverted-residual' in which: train('inverted-residual', MobileStyle(), 3)
if 'unet' in which: train('unet', UNet(), 2, seg=True)
# Twice the channels (16 / 32 / 64): groups whose kept counts, rounded to 8, can take 2-8 sizes.
if 'unet-wide' in which: train('unet-wide', UNet(16), 2, seg=True)
