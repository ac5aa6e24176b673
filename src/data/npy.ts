/** NumPy .npy arrays and .npz archives (float32 / float64 / uint8 / int64 ...), read as f32. */
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { DataError } from '../errors.ts';

export interface NpyArray {
  dims: number[];
  data: Float32Array;
}

const DTYPES: Record<string, (v: DataView, off: number, le: boolean) => number> = {
  f4: (v, o, le) => v.getFloat32(o, le),
  f8: (v, o, le) => v.getFloat64(o, le),
  u1: (v, o) => v.getUint8(o),
  i1: (v, o) => v.getInt8(o),
  i2: (v, o, le) => v.getInt16(o, le),
  u2: (v, o, le) => v.getUint16(o, le),
  i4: (v, o, le) => v.getInt32(o, le),
  u4: (v, o, le) => v.getUint32(o, le),
  i8: (v, o, le) => Number(v.getBigInt64(o, le)),
  u8: (v, o, le) => Number(v.getBigUint64(o, le)),
};

export function parseNpy(bytes: Uint8Array, label: string): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((m, i) => bytes[i] !== m)) throw new DataError(`${label} is not a .npy file (bad magic)`, { path: label });
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major >= 2 ? view.getUint32(8, true) : view.getUint16(8, true);
  const start = (major >= 2 ? 12 : 10) + headerLen;
  const header = new TextDecoder('latin1').decode(bytes.subarray(major >= 2 ? 12 : 10, start));
  const descr = /'descr':\s*'([<>|=])([a-z])(\d+)'/.exec(header);
  const order = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape) throw new DataError(`${label}: unreadable .npy header: ${header.trim()}`, { path: label });
  if (order?.[1] === 'True') throw new DataError(`${label}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`, { path: label });
  const key = `${descr[2]}${descr[3]}`;
  const read = DTYPES[key];
  if (!read) throw new DataError(`${label}: dtype ${descr[1]}${key} is not supported (use float32, float64, or an integer type)`, { path: label });
  const le = descr[1] !== '>';
  const dims = shape[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const size = Number(descr[3]);
  if (bytes.length < start + n * size) throw new DataError(`${label} is truncated: needs ${n * size} data bytes, has ${bytes.length - start}`, { path: label });
  const data = new Float32Array(n);
  if (key === 'f4' && le && (bytes.byteOffset + start) % 4 === 0) data.set(new Float32Array(bytes.buffer, bytes.byteOffset + start, n));
  else for (let i = 0; i < n; i++) data[i] = read(view, start + i * size, le);
  return { dims, data };
}

/** A .npy file, or one array of a .npz archive (`name`, else 'x', else the first). */
export function readNpyFile(path: string, name?: string): NpyArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new DataError(`data file not found: ${path}`, { path });
  }
  if (!path.endsWith('.npz')) return parseNpy(bytes, path);
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (err) {
    throw new DataError(`${path} is not a valid .npz (zip) archive: ${(err as Error).message}`, { path });
  }
  const names = Object.keys(files).filter((f) => f.endsWith('.npy'));
  const pick = name ? `${name}.npy` : names.includes('x.npy') ? 'x.npy' : names[0];
  if (!pick || !files[pick]) throw new DataError(`${path} has no array ${name ?? ''} (arrays: ${names.map((n) => n.replace('.npy', '')).join(', ') || 'none'})`, { path });
  return parseNpy(files[pick], `${path}:${pick}`);
}

/** A float32 .npy file (version 1.0, header padded to 64 bytes as NumPy writes it). */
export function encodeNpyFloat32(dims: readonly number[], data: Float32Array): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
