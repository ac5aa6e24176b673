/**
 * Input datasets for calibration and evaluation: IDX images, .npy / .npz arrays, or a folder of
 * PNG / JPEG images with a declared preprocessing. Samples are loaded batch by batch, never all
 * at once, and validated against the model's input shape with a clear error naming the fix.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { DataError } from '../errors.ts';
import { loadIdxDataset } from './idx.ts';
import { readNpyFile } from './npy.ts';
import { seededRandom } from '../random.ts';

export interface Preprocess {
  /** Target [height, width]; default: the model input's spatial dims. */
  size?: [number, number];
  /** Pad to keep the aspect ratio (detectors) instead of stretching. */
  letterbox?: boolean;
  channels?: 'RGB' | 'BGR' | 'GRAY';
  layout?: 'NCHW' | 'NHWC';
  /** Multiplier applied to 0..255 pixels (default 1/255). */
  scale?: number;
  mean?: number[];
  std?: number[];
}

export interface Dataset {
  description: string;
  count: number;
  /** Dims of one sample (no batch dim). */
  sampleDims: number[];
  load(indices: readonly number[]): Promise<Float32Array>;
  labels: ArrayLike<number> | null;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg']);

/** Model input dims with the batch dim removed; symbolic dims are null. */
export type InputDims = Array<number | null>;

function checkDims(sample: number[], model: InputDims, source: string, input: string): void {
  const ok = sample.length === model.length && model.every((d, i) => d === null || d === sample[i]);
  if (!ok) {
    throw new DataError(
      `${source} gives samples of shape [${sample.join(', ')}] but model input '${input}' expects [N, ${model.map((d) => d ?? '?').join(', ')}]` +
        (sample.length === 2 && model.length === 3 ? ' (grayscale images need a channel dim: [N, 1, H, W])' : ''),
      { source, input },
    );
  }
}

export function seededSample(count: number, n: number, seed: number): number[] {
  const idx = Array.from({ length: count }, (_, i) => i);
  const next = seededRandom(seed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, Math.min(n, count)).sort((x, y) => x - y);
}

function readLabelsFile(dir: string, files: string[]): Int32Array | null {
  const candidates = ['labels.txt', 'labels.csv'].map((f) => join(dir, f)).filter(existsSync);
  if (!candidates.length) return null;
  const lines = readFileSync(candidates[0], 'utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const byName = new Map<string, number>();
  const plain: number[] = [];
  for (const l of lines) {
    const parts = l.split(/[,\s]+/);
    if (parts.length >= 2) byName.set(parts[0], Number(parts[1]));
    else plain.push(Number(parts[0]));
  }
  const labels = byName.size ? files.map((f) => byName.get(f) ?? NaN) : plain;
  if (labels.length !== files.length || labels.some((x) => !Number.isInteger(x))) {
    throw new DataError(`${candidates[0]}: expected one integer label per image (${files.length} images; lines "file label" or one label per line in file-name order), got ${byName.size || plain.length}`, { path: candidates[0] });
  }
  return Int32Array.from(labels);
}

export async function openDataset(path: string, input: { name: string; dims: InputDims }, pre: Preprocess = {}): Promise<Dataset> {
  if (!existsSync(path)) throw new DataError(`data path not found: ${path}`, { path });
  const isDir = statSync(path).isDirectory();
  const images = isDir ? readdirSync(path).filter((f) => IMAGE_EXT.has(extname(f).toLowerCase())).sort() : [];
  if (isDir && images.length === 0 && readdirSync(path).some((f) => /idx\d-ubyte/.test(f))) return idxDataset(path, input, pre);
  if (isDir) {
    if (images.length === 0) throw new DataError(`folder ${path} holds no PNG or JPEG images (and no IDX files)`, { path });
    return imageDataset(path, images, input, pre);
  }
  if (path.endsWith('.npy') || path.endsWith('.npz')) {
    const arr = readNpyFile(path);
    const sampleDims = arr.dims.slice(1);
    checkDims(sampleDims, input.dims, path, input.name);
    const per = sampleDims.reduce((a, b) => a * b, 1);
    return {
      description: `${path} (${arr.dims[0]} samples)`, count: arr.dims[0], sampleDims, labels: null,
      load: async (indices) => {
        const out = new Float32Array(indices.length * per);
        indices.forEach((s, k) => out.set(arr.data.subarray(s * per, (s + 1) * per), k * per));
        return out;
      },
    };
  }
  return idxDataset(path, input, pre);
}

function idxDataset(path: string, input: { name: string; dims: InputDims }, pre: Preprocess): Dataset {
  const ds = loadIdxDataset(path);
  const [count, rows, cols] = ds.images.dims;
  const sampleDims = [1, rows, cols];
  checkDims(sampleDims, input.dims, ds.source, input.name);
  const scale = pre.scale ?? 1 / 255;
  const mean = pre.mean?.[0] ?? 0;
  const std = pre.std?.[0] ?? 1;
  const px = rows * cols;
  return {
    description: `${ds.source} (${count} images)`, count, sampleDims, labels: ds.labels,
    load: async (indices) => {
      const out = new Float32Array(indices.length * px);
      indices.forEach((s, k) => {
        for (let j = 0; j < px; j++) out[k * px + j] = (ds.images.data[s * px + j] * scale - mean) / std;
      });
      return out;
    },
  };
}

function imageDataset(dir: string, files: string[], input: { name: string; dims: InputDims }, pre: Preprocess): Dataset {
  const layout = pre.layout ?? 'NCHW';
  const channels = pre.channels ?? 'RGB';
  const c = channels === 'GRAY' ? 1 : 3;
  const md = input.dims;
  if (md.length !== 3) throw new DataError(`image folders feed 4-D inputs [N, C, H, W] or [N, H, W, C]; model input '${input.name}' has ${md.length + 1} dims`, { input: input.name });
  const [mh, mw] = layout === 'NCHW' ? [md[1], md[2]] : [md[0], md[1]];
  const size = pre.size ?? (mh && mw ? [mh, mw] : null);
  if (!size) throw new DataError(`model input '${input.name}' has dynamic height/width: give the image size (--image-size H,W)`, { input: input.name });
  const [h, w] = size;
  const sampleDims = layout === 'NCHW' ? [c, h, w] : [h, w, c];
  checkDims(sampleDims, md, dir, input.name);
  const scale = pre.scale ?? 1 / 255;
  const mean = pre.mean ?? new Array(c).fill(0);
  const std = pre.std ?? new Array(c).fill(1);
  if (mean.length !== c || std.length !== c) throw new DataError(`mean and std need ${c} values for ${channels} images`, {});
  const labels = readLabelsFile(dir, files);
  const per = c * h * w;
  return {
    description: `${dir} (${files.length} images, ${channels} ${layout} ${h}x${w}${pre.letterbox ? ' letterboxed' : ''})`,
    count: files.length, sampleDims, labels,
    load: async (indices) => {
      // sharp (libvips) loads only when images are read: IDX / .npy data never pays for it.
      const { default: sharp } = await import('sharp');
      const out = new Float32Array(indices.length * per);
      for (let k = 0; k < indices.length; k++) {
        const file = join(dir, files[indices[k]]);
        let raw: Buffer;
        try {
          let img = sharp(file).removeAlpha();
          img = c === 1 ? img.grayscale() : img.toColourspace('srgb');
          img = img.resize(w, h, pre.letterbox ? { fit: 'contain', background: { r: 114, g: 114, b: 114 } } : { fit: 'fill' });
          raw = await img.raw().toBuffer();
        } catch (err) {
          throw new DataError(`cannot read image ${file}: ${(err as Error).message}`, { path: file });
        }
        const chans = raw.length / (h * w);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            for (let ch = 0; ch < c; ch++) {
              const srcCh = channels === 'BGR' ? 2 - ch : ch;
              const v = (raw[(y * w + x) * chans + Math.min(srcCh, chans - 1)] * scale - mean[ch]) / std[ch];
              const at = layout === 'NCHW' ? ch * h * w + y * w + x : (y * w + x) * c + ch;
              out[k * per + at] = v;
            }
          }
        }
      }
      return out;
    },
  };
}
