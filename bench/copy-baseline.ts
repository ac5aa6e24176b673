/**
 * The yardstick of the CPU kernel targets, `Float32Array.prototype.set` between two plain arrays,
 * measured by size, and the one large copy whose speed depends on the two arrays' relative
 * placement in memory. Explains why the kernels' ratios to "copy" drop between 16 M and 64 M
 * elements while their own per-element time barely moves.
 * `npm run build && node dist/bench/copy-baseline.js [out.md]`.
 */
import { appendFileSync } from 'node:fs';
import { formatTable } from '../src/cli/format.ts';

const out = process.argv.slice(2).find((a) => a.endsWith('.md'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const reps = 9;

function timed(fn: () => void): number {
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    t.push(performance.now() - t0);
  }
  return median(t);
}

// 1. Plain -> plain copies by size (both arrays touched first: bandwidth, not page faults).
const bySize: string[][] = [];
for (const mb of [16, 32, 64, 128, 192, 256]) {
  const n = (mb << 20) / 4;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n).fill(2);
  const ms = timed(() => b.set(a));
  bySize.push([`${mb} MB`, `${n / 2 ** 20}M`, ms.toFixed(1), ((mb * 2 ** 20) / ms / 1e6).toFixed(2)]);
}

// 2. One 256 MB copy out of a WebAssembly memory (where the CPU engine keeps tensors) into a plain
// array, with the source moved by a few bytes: the destination's address is fixed, so this shifts
// (destination - source) modulo the 4 KiB page.
const n = 64 << 20;
const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536 });
memory.grow(((n * 4) >> 16) + 2);
new Float32Array(memory.buffer).fill(3);
const dst = new Float32Array(n).fill(1);
const base = 1 << 16;
const byShift: string[][] = [];
for (const shift of [0, 16, 64, 2048, 4080]) {
  const src = new Float32Array(memory.buffer, base + shift, n);
  const ms = timed(() => dst.set(src));
  byShift.push([`${shift}`, ms.toFixed(1), ((n * 4) / ms / 1e6).toFixed(2)]);
}
const plain = new Float32Array(n).fill(4);
const plainMs = timed(() => dst.set(plain));
byShift.push(['plain source', plainMs.toFixed(1), ((n * 4) / plainMs / 1e6).toFixed(2)]);

const text = 'Float32Array#set between plain arrays, by size (medians of ' + reps + ')\n' +
  formatTable(['bytes', 'f32 elements', 'ms', 'GB/s'], bySize) +
  '\n256 MB from a WebAssembly memory into a plain array, source shifted by N bytes\n' +
  formatTable(['source shift', 'ms', 'GB/s'], byShift);
process.stdout.write(text);
if (out) appendFileSync(out, '\n```\n' + text + '```\n');
