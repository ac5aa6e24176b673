// The array conversions between f32 and IEEE half against the scalar definitions (floatToHalf,
// halfToFloat), exhaustively where the domain allows it, and on the values that decide rounding.
import { describe, expect, it } from 'vitest';
import { floatsToHalves, floatToHalf, halfToFloat, halfValues } from '../src/onnx/float16.ts';
import { DataType } from '../src/onnx/dtypes.ts';
import { makeTensor, tensorToFloat32 } from '../src/onnx/tensor.ts';

describe('f32 <-> half arrays', () => {
  it('halfValues holds halfToFloat of every half (65 536, NaNs included)', () => {
    const v = halfValues();
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) if (!Object.is(v[h], Math.fround(halfToFloat(h))) && !(Number.isNaN(v[h]) && Number.isNaN(halfToFloat(h)))) wrong.push(h);
    expect(wrong).toEqual([]);
    expect(v[0x3c00]).toBe(1);
    expect(v[0x8001]).toBe(-(2 ** -24));
  });

  it('floatsToHalves rounds to the nearest half, ties to even (checked against the neighbouring halves\' values), on every half value, every midpoint between neighbours and its f32 neighbours, specials and random bits; floatToHalf agrees', () => {
    const bits: number[] = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x00000001, 0x007fffff, 0x7f7fffff, 0xff7fffff];
    const v = halfValues();
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let h = 0; h < 0x7c00; h++) {
      // The value itself, and the exact midpoint to the next half (a tie) with its f32 neighbours.
      for (const sign of [0, 0x80000000]) {
        f[0] = v[h];
        bits.push((u[0] | sign) >>> 0);
        f[0] = (v[h] + (h + 1 === 0x7c00 ? 65536 : v[h + 1])) / 2;
        const mid = u[0];
        bits.push((mid | sign) >>> 0, ((mid - 1) | sign) >>> 0, ((mid + 1) | sign) >>> 0);
      }
    }
    let s = 12345;
    for (let i = 0; i < 200000; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      bits.push(s);
    }
    const src = new Float32Array(Uint32Array.from(bits).buffer);
    const got = floatsToHalves(src);
    // Magnitude of a half for rounding: Inf counts as 2^16, where rounding overflows to it.
    const mag = (h: number) => (h === 0x7c00 ? 65536 : v[h]);
    const wrong: string[] = [];
    for (let i = 0; i < src.length && wrong.length < 5; i++) {
      const x = src[i];
      const h = got[i];
      const m = h & 0x7fff;
      const why = (w: string) => wrong.push(`${bits[i].toString(16)} -> ${h.toString(16)}: ${w}`);
      if (got[i] !== floatToHalf(x)) why('floatToHalf differs');
      if (Number.isNaN(x)) {
        if (!((m & 0x7c00) === 0x7c00 && (m & 0x3ff) !== 0)) why('NaN must stay NaN');
        continue;
      }
      if ((h & 0x8000) !== (bits[i] & 0x80000000) >>> 16) why('sign');
      const a = Math.abs(x);
      if (a === Infinity) {
        if (m !== 0x7c00) why('Inf');
        continue;
      }
      if (m > 0x7c00) {
        why('NaN for a number');
        continue;
      }
      const d = Math.abs(a - mag(m));
      for (const n of [m - 1, m + 1]) {
        if (n < 0 || n > 0x7c00) continue;
        const dn = Math.abs(a - mag(n));
        if (dn < d || (dn === d && (m & 1) === 1)) why(`half ${n.toString(16)} is nearer, or an even tie`);
      }
    }
    expect(wrong).toEqual([]);
    expect(got.length).toBe(src.length);
  });

  it('FLOAT16 and BFLOAT16 tensors read as f32 through the tables (values exact)', () => {
    const halves = Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x8000]);
    const read = tensorToFloat32(makeTensor('h', DataType.FLOAT16, [halves.length], new Uint8Array(halves.buffer)), '.');
    expect(Array.from(read)).toEqual([1, -2, 2 ** -24, 65504, Infinity, -Infinity, -0]);
    const bf = Uint16Array.from([0x3f80, 0xc040, 0x7f80, 0x0001]);
    const readBf = tensorToFloat32(makeTensor('b', DataType.BFLOAT16, [bf.length], new Uint8Array(bf.buffer)), '.');
    expect(Array.from(readBf)).toEqual([1, -3, Infinity, 2 ** -133]);
  });
});
