/** Seeded data for kernel cases (no Math.random: every run and backend sees the same numbers). */
import { seededRandom } from '../../src/random.ts';

export const rng = seededRandom;

export type DataKind = 'random' | 'zeros' | 'constant' | 'special' | 'denormal' | 'wide' | 'ties';

/** Arrays with the degenerate contents the kernel contract asks for. */
export function makeData(n: number, kind: DataKind, seed = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (kind) {
      case 'zeros':
        out[i] = 0;
        break;
      case 'constant':
        out[i] = 0.7431;
        break;
      case 'random':
        out[i] = (r() * 2 - 1) * 3;
        break;
      case 'special': {
        const u = r();
        out[i] = u < 0.05 ? NaN : u < 0.08 ? Infinity : u < 0.11 ? -Infinity : u < 0.13 ? -0 : (r() - 0.5) * 8;
        break;
      }
      case 'denormal':
        out[i] = r() < 0.5 ? (r() - 0.5) * 1e-39 : (r() - 0.5) * 2e-3;
        break;
      case 'wide':
        out[i] = (r() < 0.5 ? -1 : 1) * Math.pow(10, r() * 60 - 30);
        break;
      case 'ties':
        // Exact halves of the scale used by quantize cases: exercises round-half-to-even.
        out[i] = (Math.floor(r() * 64) - 32 + 0.5) * 0.125;
        break;
    }
  }
  return out;
}
