/**
 * IDX files (the MNIST / Fashion-MNIST format), gzip or not: images [N, rows, cols] as uint8 and
 * labels [N]. Images are fed to models as f32 pixel / 255 in NCHW [N, 1, rows, cols].
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors.ts';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function readIdx(path: string): IdxArray {
  if (!existsSync(path)) throw new DataError(`data file not found: ${path}`, { path });
  let raw: Uint8Array = readFileSync(path);
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (err) {
      throw new DataError(`${path}: not a valid gzip file (${(err as Error).message})`, { path });
    }
  }
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) throw new DataError(`${path} is not an IDX file (bad magic number)`, { path });
  if (raw[2] !== 0x08) throw new DataError(`${path}: only unsigned-byte IDX data is supported (type 0x${raw[2].toString(16)})`, { path });
  const ndim = raw[3];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * ndim;
  if (raw.length < start + n) throw new DataError(`${path} is truncated: ${raw.length - start} data bytes for dims [${dims.join(', ')}]`, { path });
  return { dims, data: raw.subarray(start, start + n) };
}

/** Finds the images file for `path` (a file, or a folder holding *images-idx3-ubyte[.gz]). */
export function resolveImagesFile(path: string): string {
  if (!existsSync(path)) throw new DataError(`data path not found: ${path}`, { path });
  if (!statSync(path).isDirectory()) return path;
  const files = readdirSync(path).filter((f) => /images-idx3-ubyte(\.gz)?$/.test(f)).sort();
  const pick = files.find((f) => f.startsWith('t10k')) ?? files[0];
  if (!pick) throw new DataError(`no IDX images file (*images-idx3-ubyte[.gz]) in folder ${path}`, { path });
  return join(path, pick);
}

/** The labels file beside an images file (…images-idx3… -> …labels-idx1…), if there is one. */
export function labelsFileFor(images: string): string | null {
  const guess = join(dirname(images), basename(images).replace('images-idx3', 'labels-idx1'));
  return guess !== images && existsSync(guess) ? guess : null;
}

export interface LabelledImages {
  images: IdxArray;
  labels: Uint8Array | null;
  source: string;
}

export function loadIdxDataset(path: string, labelsPath?: string): LabelledImages {
  const imagesFile = resolveImagesFile(path);
  const images = readIdx(imagesFile);
  if (images.dims.length !== 3) throw new DataError(`${imagesFile}: expected images [N, rows, cols], got dims [${images.dims.join(', ')}]`, { path: imagesFile });
  const lf = labelsPath ?? labelsFileFor(imagesFile);
  let labels: Uint8Array | null = null;
  if (lf) {
    const l = readIdx(lf);
    if (l.dims.length !== 1 || l.dims[0] !== images.dims[0]) {
      throw new DataError(`labels ${lf} have dims [${l.dims.join(', ')}] but ${imagesFile} holds ${images.dims[0]} images`, { path: lf });
    }
    labels = l.data;
  }
  return { images, labels, source: imagesFile };
}
