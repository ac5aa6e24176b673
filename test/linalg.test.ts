import { describe, expect, it } from 'vitest';
import { choleskyInPlace, solveSpd } from '../src/linalg/cholesky.ts';
import { choleskyBlocked, lowerInverseBlocked } from '../src/linalg/blocked.ts';
import { gemmSub } from '../src/linalg/gemm.ts';
import { inverseUpperFactor } from '../src/linalg/obs.ts';
import { layerObjective } from '../src/linalg/gptq.ts';
import { MIN_PARALLEL_N, poolThreads, releaseF64, sharedF64, withThreads } from '../src/linalg/pool.ts';
import { OP } from '../src/linalg/pool-steps.ts';
import { WorkerFailureError } from '../src/errors.ts';
import { gramChunkRows, gramKernel } from '../src/kernels/gram.ts';
import { seededRandom } from '../src/random.ts';

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
}

describe('f64 Cholesky solve', () => {
  it('factors a known matrix exactly', () => {
    // A = L Lᵀ with L = [[2,0,0],[6,1,0],[-8,5,3]].
    const a = Float64Array.from([4, 12, -16, 12, 37, -43, -16, -43, 98]);
    expect(choleskyInPlace(a, 3)).toBe(true);
    expect([a[0], a[3], a[4], a[6], a[7], a[8]]).toEqual([2, 6, 1, -8, 5, 3]);
  });

  it('solves a Gram system: the residual of (H + λI) X = B is at f64 rounding level', () => {
    const n = 40;
    const m = 7;
    const rows = 200;
    const x = randomMatrix(rows, n, 1);
    const H = gramKernel.cpu({ a: x, rows, fa: n }).gram;
    const B = Float64Array.from(randomMatrix(n, m, 2));
    const { x: X, damping } = solveSpd(H, B, n, m, { damping: 1e-6 });
    expect(damping).toBe(1e-6);
    let meanDiag = 0;
    for (let i = 0; i < n; i++) meanDiag += H[i * n + i] / n;
    const lambda = damping * meanDiag;
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < m; c++) {
        let s = lambda * X[i * m + c];
        for (let k = 0; k < n; k++) s += H[i * n + k] * X[k * m + c];
        worst = Math.max(worst, Math.abs(s - B[i * m + c]));
      }
    }
    expect(worst).toBeLessThan(1e-9);
  });

  it('a rank-deficient Gram (more features than rows, a dead feature) is solved by raising the damping', () => {
    const n = 30;
    const rows = 10;
    const x = randomMatrix(rows, n, 3);
    for (let r = 0; r < rows; r++) x[r * n + 4] = 0; // a dead feature: zero diagonal
    const H = gramKernel.cpu({ a: x, rows, fa: n }).gram;
    const B = new Float64Array(n).fill(1);
    const out = solveSpd(H, B, n, 1, { damping: 0 });
    expect(out.damping).toBeGreaterThan(0);
    expect(out.dead).toBe(1);
    expect(out.x.every(Number.isFinite)).toBe(true);
  });

  it('the ridge prior pulls the solution toward it: with no data (H = 0) the solution is the prior', () => {
    const n = 5;
    const H = new Float64Array(n * n);
    const prior = Float64Array.from([1, -2, 3, 0.5, 7]);
    const { x } = solveSpd(H, new Float64Array(n), n, 1, { damping: 1, prior });
    for (let i = 0; i < n; i++) expect(x[i]).toBeCloseTo(prior[i], 10);
  });

  it('rejects mismatched sizes with a typed error', () => {
    expect(() => solveSpd(new Float64Array(3), new Float64Array(2), 2, 1)).toThrow(/A has 3 entries/);
  });
});

describe('gram CPU reference', () => {
  it('matches a plain triple loop and is symmetric', () => {
    const rows = 13;
    const fa = 6;
    const fb = 4;
    const a = randomMatrix(rows, fa, 5);
    const b = randomMatrix(rows, fb, 6);
    const g = gramKernel.cpu({ a, rows, fa }).gram;
    const c = gramKernel.cpu({ a, rows, fa, b, fb }).gram;
    for (let i = 0; i < fa; i++) {
      for (let j = 0; j < fa; j++) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += a[r * fa + i] * a[r * fa + j];
        expect(g[i * fa + j]).toBeCloseTo(s, 12);
        expect(g[i * fa + j]).toBe(g[j * fa + i]);
      }
      for (let j = 0; j < fb; j++) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += a[r * fa + i] * b[r * fb + j];
        expect(c[i * fb + j]).toBeCloseTo(s, 12);
      }
    }
  });
  it('validates shapes', () => {
    expect(() => gramKernel.validate({ a: new Float32Array(5), rows: 2, fa: 3 })).toThrow(/needs 6/);
    expect(() => gramKernel.validate({ a: new Float32Array(6), rows: 2, fa: 3, b: new Float32Array(3) })).toThrow(/needs fb/);
  });
});

describe('gram on the CPU path through ONNX Runtime (MLAS)', () => {
  it('matches the f64 reference within the gram tolerance, Gram and cross-Gram, chunked rows', async () => {
    const { ortGram } = await import('../src/cpu/ort-gram.ts');
    const { tolerances } = await import('../src/kernels/tolerances.ts');
    for (const [rows, fa, fb] of [[1300, 37, 0], [700, 19, 33], [9000, 24, 0], [8300, 9, 17], [5, 3, 0], [0, 4, 0]]) {
      const a = randomMatrix(rows, fa, rows + fa);
      const b = fb ? randomMatrix(rows, fb, 99) : undefined;
      const job = b ? { a, rows, fa, b, fb } : { a, rows, fa };
      const want = gramKernel.cpu(job).gram;
      const got = (await ortGram(job)).gram;
      expect(got.length).toBe(want.length);
      let scale = 0;
      for (const x of want) scale = Math.max(scale, Math.abs(x));
      const t = tolerances['gram.values'];
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(t.abs * scale + t.rel * Math.abs(want[i]));
    }
  });
});

describe('the passes\' Gram route: GPU when the result fits a binding, else ONNX Runtime', () => {
  it('with a 64 KiB window a 60-feature Gram runs on the GPU and a 200-feature one through ORT; both match the reference, none falls to the JavaScript loop', async (ctx) => {
    const { gpuScheduler } = await import('./helpers/gpu.ts');
    const { grams } = await import('../src/passes/grams.ts');
    const { tolerances } = await import('../src/kernels/tolerances.ts');
    const gpu = await gpuScheduler({ bindingWindowBytes: 64 * 1024 });
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    try {
      const jobs = [[600, 60], [600, 200]].map(([rows, fa]) => ({ a: randomMatrix(rows, fa, fa), rows, fa }));
      const got = await grams(gpu.scheduler, jobs);
      expect(gpu.scheduler.stats.kernels.gram?.elements).toBe(600 * 60 * 60);
      expect(gpu.scheduler.stats.cpuPasses).toEqual([]);
      jobs.forEach((job, k) => {
        const want = gramKernel.cpu(job).gram;
        let scale = 0;
        for (const x of want) scale = Math.max(scale, Math.abs(x));
        const t = tolerances['gram.values'];
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[k].gram[i] - want[i])).toBeLessThanOrEqual(t.abs * scale + t.rel * Math.abs(want[i]));
      });
    } finally {
      gpu.scheduler.dispose();
    }
  });
});

describe('blocked f64 factorizations (the GPTQ / SparseGPT Hessians)', () => {
  function spd(n: number, seed: number): Float64Array {
    const x = randomMatrix(n, n + 5, seed);
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n + 5; k++) s += x[i * (n + 5) + k] * x[j * (n + 5) + k];
        h[i * n + j] = s;
      }
      h[i * n + i] += 0.1;
    }
    return h;
  }

  it('C −= A·B matches a triple loop on odd shapes, offsets and strides', () => {
    const r = seededRandom(5);
    for (const [m, n, k] of [[1, 1, 1], [3, 5, 2], [4, 4, 4], [9, 7, 13], [17, 6, 1]]) {
      const lda = k + 3;
      const ldb = n + 2;
      const ldc = n + 1;
      const a = Float64Array.from({ length: 2 + m * lda }, () => r() - 0.5);
      const b = Float64Array.from({ length: 1 + k * ldb }, () => r() - 0.5);
      const c = Float64Array.from({ length: 3 + m * ldc }, () => r() - 0.5);
      const want = Float64Array.from(c);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a[2 + i * lda + p] * b[1 + p * ldb + j];
          want[3 + i * ldc + j] -= s;
        }
      }
      gemmSub(c, 3, ldc, a, 2, lda, b, 1, ldb, m, n, k);
      for (let q = 0; q < c.length; q++) expect(c[q]).toBeCloseTo(want[q], 12);
    }
  });

  it('Cholesky and the triangular inverse agree with the unblocked loops to f64 rounding (sizes around the 64-column panels)', () => {
    for (const n of [1, 3, 63, 64, 65, 130, 200]) {
      const h = spd(n, n);
      const ref = Float64Array.from(h);
      expect(choleskyInPlace(ref, n)).toBe(true);
      const l = Float64Array.from(h);
      expect(choleskyBlocked(l, n)).toBe(true);
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) {
        worst = Math.max(worst, Math.abs(l[i * n + j] - ref[i * n + j]));
        scale = Math.max(scale, Math.abs(ref[i * n + j]));
      }
      expect(worst / scale).toBeLessThan(1e-12);
      // L · L⁻¹ = I.
      const x = lowerInverseBlocked(l, n);
      let off = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        if (j > i) expect(x[i * n + j]).toBe(0);
        let s = 0;
        for (let k = j; k <= i; k++) s += l[i * n + k] * x[k * n + j];
        off = Math.max(off, Math.abs(s - (i === j ? 1 : 0)));
      }
      expect(off).toBeLessThan(1e-10);
    }
  });

  it('reports a matrix that is not positive definite, in the first panel or a later one', () => {
    for (const bad of [5, 100]) {
      const n = 130;
      const h = spd(n, 9);
      h[bad * n + bad] = -1;
      expect(choleskyBlocked(Float64Array.from(h), n)).toBe(false);
      expect(choleskyInPlace(Float64Array.from(h), n)).toBe(false);
    }
  });
});

/** A symmetric, diagonally dominant (so positive-definite) n×n matrix: small random off-diagonals. */
function dominantSpd(n: number, seed: number, r = seededRandom(seed)): Float64Array {
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) h[i * n + j] = h[j * n + i] = (r() - 0.5) * 0.02;
    h[i * n + i] += 1 + r();
  }
  return h;
}

describe('the linear-algebra pool (worker threads on shared memory)', () => {
  it('reuses released shared buffers, handed out zeroed; plain arrays are ignored', () => {
    const a = sharedF64(1000);
    a.fill(7);
    const buffer = a.buffer;
    releaseF64(a, new Float64Array(1000), null);
    const b = sharedF64(1000);
    expect(b.buffer).toBe(buffer);
    expect(b.every((x) => x === 0)).toBe(true);
    // A different size does not take it.
    releaseF64(b);
    expect(sharedF64(999).buffer).not.toBe(buffer);
    expect(sharedF64(1000).buffer).toBe(buffer);
  });

  it('gives bit-identical factors, inverses and objectives whatever the thread count', () => {
    const threads = poolThreads();
    if (threads < 2) console.warn(`linear-algebra pool: ${threads} thread (one core, or dist/ not built): the comparison below runs single-threaded on both sides`);
    const n = MIN_PARALLEL_N + 77;
    const r = seededRandom(12);
    const h = dominantSpd(n, 12, r);
    // Plain arrays stay on this thread; shared ones go to the pool.
    const alone = Float64Array.from(h);
    const pooled = sharedF64(n * n);
    pooled.set(h);
    expect(choleskyBlocked(alone, n)).toBe(true);
    expect(choleskyBlocked(pooled, n)).toBe(true);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) expect(pooled[i * n + j]).toBe(alone[i * n + j]);
    const xa = lowerInverseBlocked(alone, n);
    const xp = lowerInverseBlocked(pooled, n);
    expect(Buffer.from(xp.buffer, xp.byteOffset, xp.byteLength).equals(Buffer.from(xa.buffer, xa.byteOffset, xa.byteLength))).toBe(true);
    // U of H⁻¹ (pooled inside) against the factors above: U = P L⁻¹ P.
    const u = inverseUpperFactor(h, n)!;
    for (let k = 0; k < 50; k++) {
      const i = Math.floor(r() * n);
      const j = Math.floor(r() * n);
      expect(Number.isFinite(u[i * n + j])).toBe(true);
      if (j < i) expect(u[i * n + j]).toBe(0);
    }
    // The objective on the pool equals a plain loop's to rounding.
    const rows = 9;
    const w = Float64Array.from({ length: rows * n }, () => r() - 0.5);
    const q = w.map((x) => Math.round(x * 8) / 8);
    let want = 0;
    for (let row = 0; row < rows; row++) {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += h[i * n + j] * (w[row * n + j] - q[row * n + j]);
        want += (w[row * n + i] - q[row * n + i]) * s;
      }
    }
    expect(layerObjective(w, q, h, rows, n)).toBeCloseTo(want, 9);
  });
});

describe('gram chunking on the GPU', () => {
  it('lengthens chunks when the result has enough tiles, so few partial blocks are read back', () => {
    // ResNet-18 layer4 (4608 inputs, 288² tiles): 8192 rows in one chunk instead of 16.
    expect(gramChunkRows(8192, 288 * 288)).toBe(8192);
    // A 16-input layer (one tile): 512-row chunks, for parallelism.
    expect(gramChunkRows(8192, 1)).toBe(512);
    // In between: 1024 / 64 tiles = 16 chunks.
    expect(gramChunkRows(12000, 64)).toBe(750);
    expect(gramChunkRows(100, 64)).toBe(512);
  });
});

describe('the linear-algebra pool, nested', () => {
  it('work started inside a running session stays on this thread (its workers are busy) and is right', () => {
    const n = MIN_PARALLEL_N + 3;
    const h = dominantSpd(n, 8);
    const pooled = sharedF64(n * n);
    pooled.set(h);
    const plain = Float64Array.from(h);
    const outer = sharedF64(MIN_PARALLEL_N * 4);
    expect(withThreads([outer], MIN_PARALLEL_N, () => choleskyBlocked(pooled, n))).toBe(true);
    expect(choleskyBlocked(plain, n)).toBe(true);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) expect(pooled[i * n + j]).toBe(plain[i * n + j]);
  });
});

// Last in this file: it leaves the process's pool broken (later calls run on one thread).
describe('the linear-algebra pool when a worker fails', () => {
  it('throws a typed error instead of hanging, and later work runs on this thread with the same results', (ctx) => {
    if (poolThreads() < 2) return ctx.skip('one thread only: no worker to fail');
    const a = sharedF64(MIN_PARALLEL_N * 4);
    expect(() => withThreads([a], MIN_PARALLEL_N, (step) => step(OP.TEST_THROW, []))).toThrow(WorkerFailureError);
    const n = MIN_PARALLEL_N + 5;
    const h = dominantSpd(n, 4);
    const pooled = sharedF64(n * n);
    pooled.set(h);
    const plain = Float64Array.from(h);
    expect(choleskyBlocked(pooled, n)).toBe(true);
    expect(choleskyBlocked(plain, n)).toBe(true);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) expect(pooled[i * n + j]).toBe(plain[i * n + j]);
  });
});
