import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { groupElement, groupLength, groupOf, groupView, sliceView, UnsliceableError, type Granularity } from '../src/kernels/layout.ts';
import { InvalidArgumentError } from '../src/errors.ts';
import { roundHalfEven, sortableKey, keyToF32, flushDenormal } from '../src/kernels/numerics.ts';
import { codeRange, computeQuantParams } from '../src/kernels/qparams.ts';

describe('group views', () => {
  it('per-block groups follow the ONNX blocked-scale layout (dim[axis] -> ceil(dim / block))', () => {
    // [K=5, N=3] blocked along axis 0 with block 2: scale shape [3, 3], row-major.
    const v = groupView([5, 3], { kind: 'block', axis: 0, blockSize: 2 });
    expect(v.groups).toBe(9);
    expect(groupOf(v, 0 * 3 + 1)).toBe(1); // k=0, n=1 -> block 0, column 1
    expect(groupOf(v, 3 * 3 + 2)).toBe(1 * 3 + 2); // k=3 -> block 1
    expect(groupOf(v, 4 * 3 + 0)).toBe(2 * 3 + 0); // k=4 -> partial block 2
    expect(groupLength(v, 6)).toBe(1);
  });

  it('enumerates every element exactly once per granularity', () => {
    const shapes = [[4, 6, 5], [7], [3, 1, 8]];
    for (const shape of shapes) {
      const grans: Granularity[] = [{ kind: 'tensor' }, ...shape.map((_, a) => ({ kind: 'channel' as const, axis: a })), ...shape.map((_, a) => ({ kind: 'block' as const, axis: a, blockSize: 3 }))];
      for (const g of grans) {
        const v = groupView(shape, g);
        const seen = new Uint8Array(v.elements);
        for (let grp = 0; grp < v.groups; grp++) {
          for (let k = 0; k < groupLength(v, grp); k++) {
            const idx = groupElement(v, grp, k);
            expect(groupOf(v, idx)).toBe(grp);
            seen[idx]++;
          }
        }
        expect(Array.from(seen).every((c) => c === 1)).toBe(true);
      }
    }
  });

  it('slices cover each tensor exactly, within the window, for every granularity (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 8, max: 200 }),
        (shape, gsel, window) => {
          const rank = shape.length;
          const g: Granularity = gsel === 0 ? { kind: 'tensor' } : gsel < 3 ? { kind: 'channel', axis: (gsel - 1) % rank } : { kind: 'block', axis: gsel % rank, blockSize: 2 };
          const v = groupView(shape, g);
          let slices;
          try {
            slices = sliceView(v, window);
          } catch (e) {
            expect(e).toBeInstanceOf(UnsliceableError);
            return;
          }
          const seen = new Uint8Array(v.elements);
          for (const s of slices) {
            expect(s.elemCount).toBeLessThanOrEqual(window);
            for (let grp = s.g0; grp < s.g1; grp++) {
              for (let k = s.k0; k < Math.min(s.k1, groupLength(v, grp)); k++) {
                const idx = groupElement(v, grp, k);
                expect(idx).toBeGreaterThanOrEqual(s.elemStart);
                expect(idx).toBeLessThan(s.elemStart + s.elemCount);
                seen[idx]++;
              }
            }
          }
          expect(Array.from(seen).every((c) => c === 1)).toBe(true);
        },
      ),
      { seed: 42, numRuns: 500 },
    );
  });

  it('rejects bad axes and block sizes with typed errors', () => {
    expect(() => groupView([2, 3], { kind: 'channel', axis: 2 })).toThrow(InvalidArgumentError);
    expect(() => groupView([2, 3], { kind: 'channel', axis: 2 })).toThrow('axis 2 is out of range for a tensor of rank 2');
    expect(() => groupView([2, 3], { kind: 'block', axis: 0, blockSize: 0 })).toThrow('block size must be a positive integer, got 0');
  });
});

describe('numerics', () => {
  it('rounds half to even like WGSL round and ONNX QuantizeLinear', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999999, 3.5].map((x) => roundHalfEven(x) + 0)).toEqual([0, 2, 2, 0, -2, -2, 2, 4]);
  });
  it('sortable keys order floats like numbers, -0 below +0', () => {
    const xs = [-Infinity, -3.5, -1e-30, -0, 0, 1e-30, 2, Infinity];
    const keys = xs.map((x) => sortableKey(new Uint32Array(new Float32Array([x]).buffer)[0]));
    expect([...keys].sort((a, b) => a - b)).toEqual(keys);
    expect(keys.map(keyToF32)).toEqual(xs.map(Math.fround));
  });
  it('flushes denormals to signed zero', () => {
    expect(flushDenormal(1e-40)).toBe(0);
    expect(Object.is(flushDenormal(-1e-40), -0)).toBe(true);
    expect(flushDenormal(1e-37)).toBeCloseTo(1e-37, 44);
  });
});

describe('quantization parameters', () => {
  it('code ranges for every bit width, signedness and narrow range', () => {
    expect(codeRange(8, true)).toEqual({ qmin: -128, qmax: 127 });
    expect(codeRange(8, true, true)).toEqual({ qmin: -127, qmax: 127 });
    expect(codeRange(8, false)).toEqual({ qmin: 0, qmax: 255 });
    expect(codeRange(4, true)).toEqual({ qmin: -8, qmax: 7 });
    expect(codeRange(4, false)).toEqual({ qmin: 0, qmax: 15 });
  });
  it('a zero-range or empty group gets scale 1, never 0 or NaN', () => {
    const p = computeQuantParams([0, NaN, 1e-42], [0, NaN, 1e-42], { bits: 8, signed: true, symmetric: true, granularity: { kind: 'tensor' } });
    expect(Array.from(p.scale)).toEqual([1, 1, 1]);
    expect(Array.from(p.zeroPoint)).toEqual([0, 0, 0]);
  });
  it('asymmetric uint8 maps min to 0 and max to 255', () => {
    const p = computeQuantParams([-1], [3], { bits: 8, signed: false, symmetric: false, granularity: { kind: 'tensor' } });
    expect(p.scale[0]).toBeCloseTo(4 / 255, 7);
    expect(p.zeroPoint[0]).toBe(64);
  });
});
