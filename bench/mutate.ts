/** Byte mutations of model files for fuzzing (used by the test suite and `npm run fuzz`). */
import fc from 'fast-check';

export interface Mutation {
  kind: 'flip' | 'truncate' | 'splice' | 'zero';
  at: number;
  len: number;
  byte: number;
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('flip' as const, 'truncate' as const, 'splice' as const, 'zero' as const),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 64 }),
  byte: fc.integer({ min: 0, max: 255 }),
});

export function mutate(bytes: Uint8Array, muts: readonly Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const m of muts) {
    const at = m.at % Math.max(1, b.length);
    if (m.kind === 'flip') b[at] ^= 1 << m.byte % 8;
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'zero') b.fill(0, at, Math.min(b.length, at + m.len));
    else b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.len, m.byte), b.subarray(at)]);
  }
  return b;
}
