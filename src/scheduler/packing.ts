/**
 * Packs pieces (slices of many jobs) into dispatches: one dispatch per entry point runs as many
 * segments as fit in every stream's binding window ("multi-tensor apply").
 */
import type { Piece } from '../kernels/kernel.ts';

export interface PlacedPiece {
  job: number;
  /** Index of this piece among its job's pieces. */
  index: number;
  piece: Piece;
  /** Word offset of the piece's region in each stream of its dispatch. */
  offsets: Record<string, number>;
  firstWorkgroup: number;
}

export interface Dispatch {
  entryPoint: string;
  pieces: PlacedPiece[];
  /** Words used per stream. */
  words: Record<string, number>;
  workgroups: number;
}

export interface PackLimits {
  maxWords: number;
  maxWorkgroups: number;
  maxSegments: number;
}

export function packDispatches(
  jobPieces: Piece[][],
  streams: readonly string[],
  limits: PackLimits,
): Dispatch[] {
  const open = new Map<string, Dispatch>();
  const done: Dispatch[] = [];
  const fresh = (entryPoint: string): Dispatch => ({
    entryPoint,
    pieces: [],
    words: Object.fromEntries(streams.map((s) => [s, 0])),
    workgroups: 0,
  });
  jobPieces.forEach((pieces, job) => {
    pieces.forEach((piece, index) => {
      if (piece.workgroups === 0) return;
      const need = (s: string) => Math.ceil((piece.words[s] ?? 0) / 4) * 4;
      let d = open.get(piece.entryPoint);
      const fits = (x: Dispatch) =>
        x.pieces.length < limits.maxSegments &&
        x.workgroups + piece.workgroups <= limits.maxWorkgroups &&
        streams.every((s) => x.words[s] + need(s) <= limits.maxWords);
      if (d && !fits(d)) {
        done.push(d);
        d = undefined;
      }
      if (!d) {
        d = fresh(piece.entryPoint);
        open.set(piece.entryPoint, d);
      }
      const offsets: Record<string, number> = {};
      for (const s of streams) {
        offsets[s] = d.words[s];
        // Regions start 16-byte aligned (vec4-friendly, and cheap).
        d.words[s] += need(s);
      }
      d.pieces.push({ job, index, piece, offsets, firstWorkgroup: d.workgroups });
      d.workgroups += piece.workgroups;
    });
  });
  for (const d of open.values()) if (d.pieces.length) done.push(d);
  return done;
}
