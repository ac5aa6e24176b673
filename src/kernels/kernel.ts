/**
 * The kernel contract (DESIGN.md): a descriptor names its WGSL, its streams and its segment
 * record, cuts each job into pieces that fit one binding window, turns read-back regions into a
 * result, and carries a CPU reference with the same numerics. The scheduler knows nothing else.
 */
export type StreamRole = 'in' | 'out' | 'inout';

export interface StreamSpec {
  /** Binding name in the WGSL (bindings 2.. in this order). */
  readonly name: string;
  /** 'in' is uploaded, 'out' is read back, 'inout' both. */
  readonly role: StreamRole;
}

export interface Upload {
  readonly stream: string;
  /** Word offset relative to the piece's region in that stream. */
  readonly at: number;
  readonly data: ArrayBufferView;
}

/** One slice of one job, placed as one segment of one dispatch. */
export interface Piece {
  readonly entryPoint: string;
  readonly workgroups: number;
  /** 32-bit words the piece occupies in each stream. */
  readonly words: Readonly<Record<string, number>>;
  readonly uploads: readonly Upload[];
  /** Segment record words 1.. (word 0, the first workgroup, is added by the scheduler). */
  record(offsets: Readonly<Record<string, number>>): ArrayLike<number>;
}

/** Read-back words of one piece, by stream name (only 'out' and 'inout' streams). */
export type PieceRegions = Record<string, Uint32Array>;

export interface KernelDescriptor<Job, Result> {
  readonly name: string;
  readonly shader: string;
  readonly entryPoints: readonly string[];
  readonly streams: readonly StreamSpec[];
  /** Words per segment record, word 0 included. */
  readonly recordWords: number;
  /**
   * Threads per workgroup of every entry point (default WORKGROUP_SIZE, 256); checked against the
   * WGSL. Smaller for kernels whose threads each run a long serial loop: more workgroups, more
   * of a GPU's multiprocessors busy.
   */
  readonly workgroupSize?: number;
  /** Values for the WGSL's `override` constants. */
  readonly constants?: Readonly<Record<string, number>>;
  /** Throws InvalidArgumentError naming the problem. */
  validate(job: Job): void;
  /** Elements of work, for the small-work threshold and progress. */
  work(job: Job): number;
  /** The CPU reference: the fallback and the oracle. */
  cpu(job: Job): Result;
  /** Pieces of at most `maxWords` words in every stream; throws UnsliceableError if impossible. */
  pieces(job: Job, maxWords: number): Piece[];
  /** Assembles a result from its pieces' regions, in the order `pieces` returned them. */
  finish(job: Job, regions: PieceRegions[]): Result;
}

export const WORKGROUP_SIZE = 256;

/** Copies a byte view into a Uint32Array-aligned buffer (writeBuffer needs multiples of 4). */
export function paddedWords(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(bytes.byteLength / 4));
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
