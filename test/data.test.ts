// Calibration / evaluation data: loaders and the errors for data that does not fit the model.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { openDataset, seededSample } from '../src/data/dataset.ts';
import { parseNpy } from '../src/data/npy.ts';
import { DataError } from '../src/errors.ts';
import { MNIST, MNIST_DATA, OCR } from './helpers/models.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-data-'));
const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;

function npy(descr: string, dims: number[], body: Uint8Array): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(body, 10 + header.length);
  return out;
}

const mnistInput = { name: 'image', dims: [1, 28, 28] };

describe('loaders', () => {
  it('.npy float32, float64 and uint8 read as f32', () => {
    expect(Array.from(parseNpy(npy('<f4', [2, 2], new Uint8Array(new Float32Array([1, -2, 3.5, 0]).buffer)), 'a').data)).toEqual([1, -2, 3.5, 0]);
    expect(Array.from(parseNpy(npy('<f8', [3], new Uint8Array(new Float64Array([0.5, 1e3, -7]).buffer)), 'b').data)).toEqual([0.5, 1000, -7]);
    expect(parseNpy(npy('|u1', [2, 3], Uint8Array.from([0, 1, 2, 253, 254, 255])), 'c')).toEqual({ dims: [2, 3], data: Float32Array.from([0, 1, 2, 253, 254, 255]) });
  });

  it('.npz archives: the array named x (or the first)', async () => {
    const p = join(dir, 'calib.npz');
    const x = new Float32Array(2 * 784).map((_, i) => (i % 7) / 7);
    writeFileSync(p, zipSync({ 'x.npy': npy('<f4', [2, 1, 28, 28], new Uint8Array(x.buffer)), 'y.npy': npy('<f4', [2], new Uint8Array(8)) }));
    const ds = await openDataset(p, mnistInput);
    expect(ds.count).toBe(2);
    expect(Array.from((await ds.load([1])).subarray(0, 8))).toEqual(Array.from(x.subarray(784, 792)));
  });

  it('IDX images become NCHW pixel / 255 with labels', async () => {
    const ds = await openDataset(MNIST_DATA, mnistInput);
    expect([ds.count, ds.sampleDims, ds.labels?.length]).toEqual([10000, [1, 28, 28], 10000]);
    const b = await ds.load([0, 1]);
    expect(b.length).toBe(2 * 784);
    expect(Math.max(...b)).toBe(1);
  });

  it('image folders: resize, RGB/BGR, scale, mean/std, NCHW/NHWC, labels.txt', async () => {
    const folder = join(dir, 'images');
    mkdirSync(folder);
    await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toFile(join(folder, 'a.png'));
    await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 0, g: 0, b: 255 } } }).jpeg({ quality: 100 }).toFile(join(folder, 'b.jpg'));
    writeFileSync(join(folder, 'labels.txt'), 'a.png 3\nb.jpg 7\n');
    const rgb = await openDataset(folder, { name: 'x', dims: [3, 4, 4] });
    expect(Array.from(rgb.labels!)).toEqual([3, 7]);
    const x = await rgb.load([0]);
    expect([x[0], x[16], x[32]]).toEqual([1, 0, 0]); // red, NCHW
    const bgr = await openDataset(folder, { name: 'x', dims: [4, 4, 3] }, { channels: 'BGR', layout: 'NHWC', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const y = await bgr.load([0]);
    expect(Array.from(y.subarray(0, 3))).toEqual([-1, -1, 1]); // B, G, R of a red pixel, normalized to [-1, 1]
  });

  it('seeded sampling is reproducible and without repeats', () => {
    const a = seededSample(1000, 100, 7);
    expect(a).toEqual(seededSample(1000, 100, 7));
    expect(new Set(a).size).toBe(100);
    expect(a).not.toEqual(seededSample(1000, 100, 8));
  });
});

describe('data that does not fit: typed errors naming the fix', () => {
  it('shape mismatch between the data and the model input', async () => {
    await expect(openDataset(MNIST_DATA, { name: 'x', dims: [3, 48, 192] })).rejects.toThrow(DataError);
    await expect(openDataset(MNIST_DATA, { name: 'x', dims: [3, 48, 192] })).rejects.toThrow("gives samples of shape [1, 28, 28] but model input 'x' expects [N, 3, 48, 192]");
  });
  it('an empty folder', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    await expect(openDataset(empty, mnistInput)).rejects.toThrow(`folder ${empty} holds no PNG or JPEG images (and no IDX files)`);
  });
  it('an unreadable image', async () => {
    const folder = join(dir, 'broken');
    mkdirSync(folder);
    writeFileSync(join(folder, 'x.png'), 'not a png');
    const ds = await openDataset(folder, { name: 'x', dims: [3, 4, 4] });
    await expect(ds.load([0])).rejects.toThrow(`cannot read image ${join(folder, 'x.png')}`);
  });
  it('labels of the wrong length', async () => {
    const folder = join(dir, 'badlabels');
    mkdirSync(folder);
    await sharp({ create: { width: 4, height: 4, channels: 3, background: 'white' } }).png().toFile(join(folder, 'a.png'));
    writeFileSync(join(folder, 'labels.txt'), '1\n2\n3\n');
    await expect(openDataset(folder, { name: 'x', dims: [3, 4, 4] })).rejects.toThrow('expected one integer label per image (1 images');
  });
  it('dynamic height and width without --image-size', async () => {
    const folder = join(dir, 'dyn');
    mkdirSync(folder);
    await sharp({ create: { width: 4, height: 4, channels: 3, background: 'white' } }).png().toFile(join(folder, 'a.png'));
    await expect(openDataset(folder, { name: 'x', dims: [3, null, null] })).rejects.toThrow("model input 'x' has dynamic height/width: give the image size (--image-size H,W)");
  });
  it('the CLI: calibration data for the wrong model is a one-line error, exit 1', () => {
    const r = spawnSync(process.execPath, [bin, 'compress', `${OCR}ch_ppocr_mobile_v2.0_cls_infer.onnx`, '-o', join(dir, 'x.onnx'), '--backend', 'cpu', '--calibration', MNIST_DATA], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('modelpress:'))).toEqual([
      "modelpress: error: " + `${MNIST_DATA}/t10k-images-idx3-ubyte gives samples of shape [1, 28, 28] but model input 'x' expects [N, 3, ?, ?]`,
    ]);
  });
  it('--max-drop without --calibration is refused', () => {
    const r = spawnSync(process.execPath, [bin, 'compress', MNIST, '-o', join(dir, 'y.onnx'), '--max-drop', '1'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--max-drop applies to static W8A8: give --calibration data');
  });
});
