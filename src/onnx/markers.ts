/**
 * Stand-ins for tensor payloads inside protobuf messages: 16 bytes naming a kind and an index.
 * The lazy reader leaves payloads on disk behind `lazy` markers; the streaming writer swaps
 * payloads for `splice` markers while protobufjs encodes the small rest. Also the varint encoding
 * both need to write length prefixes.
 */
const PREFIXES = {
  lazy: [0x4d, 0x50, 0x4c, 0x41, 0x5a, 0x59, 0x21, 0x21], // "MPLAZY!!"
  splice: [0x4d, 0x50, 0x53, 0x50, 0x4c, 0x49, 0x43, 0x45], // "MPSPLICE"
} as const;
const CHECK = 0xa5a5a5a5;

export type MarkerKind = keyof typeof PREFIXES;

export function marker(kind: MarkerKind, index: number): Uint8Array {
  const m = new Uint8Array(16);
  m.set(PREFIXES[kind]);
  const v = new DataView(m.buffer);
  v.setUint32(8, index, true);
  v.setUint32(12, CHECK, true);
  return m;
}

/** The index a marker of this kind names, or -1 for ordinary bytes. */
export function markerIndex(kind: MarkerKind, bytes: Uint8Array | undefined): number {
  if (!bytes || bytes.length !== 16) return -1;
  const prefix = PREFIXES[kind];
  for (let i = 0; i < 8; i++) if (bytes[i] !== prefix[i]) return -1;
  const v = new DataView(bytes.buffer, bytes.byteOffset, 16);
  return v.getUint32(12, true) === CHECK ? v.getUint32(8, true) : -1;
}

/** Protobuf base-128 varint of a non-negative integer (lengths beyond 2^32 included). */
export function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}
