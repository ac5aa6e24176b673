/**
 * gram: G = Aᵀ B for activation matrices A [rows, fa] and B [rows, fb] (B absent: the Gram matrix
 * Aᵀ A). The linear algebra of data-aware methods — layer-wise least squares after pruning, GPTQ,
 * SparseGPT — starts here. GPU: compensated f32 sums over chunks of ≥ GRAM_CHUNK rows, added in f64 on the host;
 * CPU reference: f64 throughout. Float results: see tolerances.ts.
 */
import { InvalidArgumentError } from '../errors.ts';
import { UnsliceableError } from './layout.ts';
import { type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export interface GramJob {
  /** Row-major [rows, fa]. */
  a: Float32Array;
  rows: number;
  fa: number;
  /** Row-major [rows, fb]; absent: B = A. */
  b?: Float32Array;
  fb?: number;
}

export interface GramResult {
  /** Row-major [fa, fb] (fb = fa without B). */
  gram: Float64Array;
}

/** Fewest rows one workgroup sums (compensated, in f32) before the host's f64 sum. */
export const GRAM_CHUNK = 512;

/** Workgroups a piece should keep busy: chunks are lengthened while tiles × chunks stays above it. */
const BUSY_WORKGROUPS = 1024;

/**
 * Rows per chunk for a piece of `rows` rows: 512, or longer when the result has enough tiles to
 * keep the GPU busy — every chunk is one fa × fb block read back (a 4608-input GPTQ layer read back
 * 16 blocks of 85 MB per 8192 rows with 512-row chunks; now one or two).
 */
export function gramChunkRows(rows: number, tiles: number): number {
  const chunksWanted = Math.max(1, Math.ceil(BUSY_WORKGROUPS / tiles));
  return Math.max(GRAM_CHUNK, Math.ceil(rows / chunksWanted));
}

const fbOf = (job: GramJob) => (job.b ? job.fb ?? 0 : job.fa);

function validate(job: GramJob): void {
  const { rows, fa } = job;
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(fa) || fa < 0) throw new InvalidArgumentError(`gram: rows (${rows}) and fa (${fa}) must be non-negative integers`);
  if (job.a.length !== rows * fa) throw new InvalidArgumentError(`gram: A has ${job.a.length} elements but [rows ${rows}, fa ${fa}] needs ${rows * fa}`);
  if (job.b) {
    const fb = job.fb;
    if (fb === undefined || !Number.isInteger(fb) || fb < 0) throw new InvalidArgumentError('gram: B needs fb, its feature count');
    if (job.b.length !== rows * fb) throw new InvalidArgumentError(`gram: B has ${job.b.length} elements but [rows ${rows}, fb ${fb}] needs ${rows * fb}`);
  }
}

function cpu(job: GramJob): GramResult {
  const { a, rows, fa } = job;
  const fb = fbOf(job);
  const g = new Float64Array(fa * fb);
  if (!job.b) {
    // Symmetric: the upper triangle row by row (contiguous inner loop), mirrored at the end.
    for (let r = 0; r < rows; r++) {
      const row = r * fa;
      for (let i = 0; i < fa; i++) {
        const x = a[row + i];
        if (x === 0) continue;
        const gi = i * fa;
        for (let j = i; j < fa; j++) g[gi + j] += x * a[row + j];
      }
    }
    for (let i = 0; i < fa; i++) for (let j = 0; j < i; j++) g[i * fa + j] = g[j * fa + i];
    return { gram: g };
  }
  const b = job.b;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < fa; i++) {
      const x = a[r * fa + i];
      if (x === 0) continue;
      const gi = i * fb;
      const br = r * fb;
      for (let j = 0; j < fb; j++) g[gi + j] += x * b[br + j];
    }
  }
  return { gram: g };
}

interface Plan {
  /** Per piece: first row and row count. */
  slices: Array<{ row: number; rows: number; chunks: number }>;
}
const plans = new WeakMap<GramJob, Plan>();

function pieces(job: GramJob, maxWords: number): Piece[] {
  const { fa } = job;
  const fb = fbOf(job);
  const out: Piece[] = [];
  const slices: Plan['slices'] = [];
  plans.set(job, { slices });
  if (job.rows === 0 || fa === 0 || fb === 0) return out;
  if (fa * fb > maxWords) throw new UnsliceableError(`gram: a ${fa}x${fb} result does not fit one binding window of ${maxWords} words`);
  const perRow = fa + (job.b ? fb : 0);
  const tilesA = Math.ceil(fa / 16);
  const tilesB = Math.ceil(fb / 16);
  // Rows per piece: inputs within the window, and partials (one fa x fb block per chunk) too.
  const byInput = Math.floor(maxWords / perRow);
  const byPartials = Math.floor(maxWords / (fa * fb)) * GRAM_CHUNK;
  const step = Math.max(1, Math.min(byInput, byPartials));
  if (byInput < 1) throw new UnsliceableError(`gram: one row (${perRow} words) does not fit one binding window of ${maxWords} words`);
  for (let row = 0; row < job.rows; row += step) {
    const rows = Math.min(step, job.rows - row);
    const chunkRows = gramChunkRows(rows, tilesA * tilesB);
    const chunks = Math.ceil(rows / chunkRows);
    slices.push({ row, rows, chunks });
    const uploads = [{ stream: 'a', at: 0, data: job.a.subarray(row * fa, (row + rows) * fa) }];
    if (job.b) uploads.push({ stream: 'b', at: 0, data: job.b.subarray(row * fb, (row + rows) * fb) });
    out.push({
      entryPoint: 'gram',
      workgroups: chunks * tilesA * tilesB,
      words: { a: rows * fa, b: job.b ? rows * fb : 0, partials: chunks * fa * fb },
      uploads,
      record: (o) => [o.a, o.b, rows, fa, fb, tilesA, tilesB, o.partials, chunkRows, job.b ? 0 : 1],
    });
  }
  return out;
}

function finish(job: GramJob, regions: PieceRegions[]): GramResult {
  const fb = fbOf(job);
  const size = job.fa * fb;
  const g = new Float64Array(size);
  const { slices } = plans.get(job)!;
  slices.forEach((s, i) => {
    const r = regions[i].partials;
    const p = new Float32Array(r.buffer, r.byteOffset, r.length);
    for (let c = 0; c < s.chunks; c++) {
      const base = c * size;
      for (let k = 0; k < size; k++) g[k] += p[base + k];
    }
  });
  return { gram: g };
}

export const gramKernel: KernelDescriptor<GramJob, GramResult> = {
  name: 'gram',
  shader: 'gram',
  entryPoints: ['gram'],
  streams: [
    { name: 'a', role: 'in' },
    { name: 'b', role: 'in' },
    { name: 'partials', role: 'out' },
  ],
  recordWords: 11,
  validate,
  work: (job) => job.rows * job.fa * fbOf(job),
  cpu,
  pieces,
  finish,
};
