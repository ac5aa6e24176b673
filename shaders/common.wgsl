// Prelude shared by every kernel family (prepended by src/kernels/shader-source.ts).
// Multi-tensor apply: one dispatch covers many tensor slices ("segments"). The segment table
// holds one record of `record_words` u32 per segment; word 0 is the segment's first workgroup.

struct DispatchInfo {
  segment_count: u32,
  workgroup_count: u32,
  grid_x: u32,
  record_words: u32,
}

@group(0) @binding(0) var<uniform> dispatch_info: DispatchInfo;
@group(0) @binding(1) var<storage, read> segments: array<u32>;

// Grids over 65535 workgroups are laid out in 2-D; this gives the linear workgroup index.
fn linear_workgroup(wg: vec3<u32>) -> u32 {
  return wg.x + wg.y * dispatch_info.grid_x;
}

fn seg_word(s: u32, field: u32) -> u32 {
  return segments[s * dispatch_info.record_words + field];
}

// The segment whose workgroup range contains workgroup `w` (binary search on word 0).
fn find_segment(w: u32) -> u32 {
  var lo = 0u;
  var hi = dispatch_info.segment_count - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (seg_word(mid, 0u) <= w) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

const EXP_MASK: u32 = 0x7f800000u;

fn is_finite_bits(b: u32) -> bool { return (b & EXP_MASK) != EXP_MASK; }
fn is_nan_bits(b: u32) -> bool { return (b & EXP_MASK) == EXP_MASK && (b & 0x007fffffu) != 0u; }

// Denormals are flushed explicitly so that GPUs that flush and those that do not agree.
fn flush_denormal_bits(b: u32) -> u32 {
  if ((b & EXP_MASK) == 0u) { return b & 0x80000000u; }
  return b;
}

// 2^-e for the exponent e of |x|'s bits: a normal power of two that brings |x| near 1. Sums of
// squares of values scaled by it stay inside f32 range (scaling by 2^k is exact).
fn norm_for(amax_bits: u32) -> f32 {
  let e = (amax_bits >> 23u) & 0xffu;
  return bitcast<f32>(clamp(254u - min(e, 253u), 1u, 254u) << 23u);
}

// Order-preserving map from f32 bits to u32: min/max become exact integer operations.
fn sortable_key(b: u32) -> u32 {
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

// Flat index of the k-th element of group g in the [outer, dim, inner] view (see layout.ts).
fn group_element(mode: u32, dim: u32, inner: u32, blk: u32, g: u32, k: u32) -> u32 {
  if (mode == 0u) {
    return ((k / inner) * dim + g) * inner + (k % inner);
  }
  let nb = (dim + blk - 1u) / blk;
  let i = g % inner;
  let t = g / inner;
  let b = t % nb;
  let o = t / nb;
  return (o * dim + b * blk + k) * inner + i;
}

fn group_length(mode: u32, outer: u32, dim: u32, inner: u32, blk: u32, g: u32) -> u32 {
  if (mode == 0u) { return outer * inner; }
  let nb = (dim + blk - 1u) / blk;
  let b = (g / inner) % nb;
  return min(blk, dim - b * blk);
}

// Group of the element at flat index idx.
fn group_of(mode: u32, dim: u32, inner: u32, blk: u32, idx: u32) -> u32 {
  let d = (idx / inner) % dim;
  if (mode == 0u) { return d; }
  let nb = (dim + blk - 1u) / blk;
  let i = idx % inner;
  let o = idx / (inner * dim);
  return (o * nb + d / blk) * inner + i;
}

// ---- Reductions over groups (range, dequantize statistics, channel norms) ----
// A reduction segment record starts (after wg_start) with 12 words:
//   1 src_base, 2 elem_start, 3 mode, 4 dim, 5 inner, 6 blk, 7 outer, 8 g0, 9 ngroups, 10 k0, 11 k1, 12 nchunks
// Workgroup variant: one workgroup per (group, chunk of REDUCE_CHUNK elements).
// Thread variant (small groups): one thread per group.

override REDUCE_CHUNK: u32 = 16384u;

struct Reduction {
  src_base: u32,
  elem_start: u32,
  mode: u32,
  dim: u32,
  inner: u32,
  blk: u32,
  outer: u32,
  g0: u32,
  ngroups: u32,
  k0: u32,
  k1: u32,
  nchunks: u32,
}

fn load_reduction(s: u32) -> Reduction {
  return Reduction(seg_word(s, 1u), seg_word(s, 2u), seg_word(s, 3u), seg_word(s, 4u), seg_word(s, 5u), seg_word(s, 6u),
                   seg_word(s, 7u), seg_word(s, 8u), seg_word(s, 9u), seg_word(s, 10u), seg_word(s, 11u), seg_word(s, 12u));
}

struct Task {
  valid: bool,
  g: u32,
  k_begin: u32,
  k_end: u32,
  // Index of this task's partial within the segment.
  part: u32,
}

fn reduction_end(r: Reduction, g: u32, k_end: u32) -> u32 {
  return min(k_end, group_length(r.mode, r.outer, r.dim, r.inner, r.blk, g));
}

fn workgroup_task(r: Reduction, local_wg: u32) -> Task {
  let g = r.g0 + local_wg / r.nchunks;
  let c = local_wg % r.nchunks;
  let kb = r.k0 + c * REDUCE_CHUNK;
  let ke = reduction_end(r, g, min(r.k1, kb + REDUCE_CHUNK));
  return Task(true, g, kb, ke, local_wg);
}

// Lane variant (groups of 65..4096 elements): `lanes` threads per group, 256 / lanes groups per
// workgroup; lane l of a group visits its elements k0 + l, k0 + l + lanes, ... Must match
// lanesFor in src/kernels/reduction.ts: the next power of two >= ceil(len / 32), in [2, 128].
fn lanes_for(r: Reduction) -> u32 {
  let want = (r.k1 - r.k0 + 31u) / 32u;
  var lanes = 2u;
  while (lanes < want && lanes < 128u) { lanes = lanes * 2u; }
  return lanes;
}

fn lane_task(r: Reduction, local_wg: u32, lid: u32, lanes: u32) -> Task {
  let gl = local_wg * (256u / lanes) + lid / lanes;
  let g = r.g0 + gl;
  if (gl >= r.ngroups) { return Task(false, g, 0u, 0u, gl); }
  return Task(true, g, r.k0, reduction_end(r, g, r.k1), gl);
}

fn thread_task(r: Reduction, local_wg: u32, lid: u32) -> Task {
  let gl = local_wg * 256u + lid;
  let g = r.g0 + gl;
  if (gl >= r.ngroups) { return Task(false, g, 0u, 0u, gl); }
  return Task(true, g, r.k0, reduction_end(r, g, r.k1), gl);
}

// Element index of the k-th element of group g. Contiguous groups (channel mode with one outer
// row: per-tensor, or channels of the first axis) need no division per element.
fn task_element(r: Reduction, g: u32, k: u32) -> u32 {
  if (r.mode == 0u && r.outer == 1u) { return g * r.inner + k; }
  return group_element(r.mode, r.dim, r.inner, r.blk, g, k);
}

// Arena index of the k-th element of group g.
fn reduction_index(r: Reduction, g: u32, k: u32) -> u32 {
  return r.src_base + task_element(r, g, k) - r.elem_start;
}

// One f32 (as bits) to its code: denormals flushed, NaN to the zero point, ±Inf and overflow to
// the range ends, round half to even — QuantizeLinear's rule (quantize, gptq_sweep).
fn quantize_one(xb_raw: u32, inv: f32, zp: i32, qmin: i32, qmax: i32) -> i32 {
  let xb = flush_denormal_bits(xb_raw);
  if (!is_finite_bits(xb)) {
    if (is_nan_bits(xb)) { return clamp(zp, qmin, qmax); }
    if ((xb & 0x80000000u) != 0u) { return qmin; }
    return qmax;
  }
  let v = bitcast<f32>(xb) * inv;
  let vb = bitcast<u32>(v);
  if (!is_finite_bits(vb)) {
    if ((vb & 0x80000000u) != 0u) { return qmin; }
    return qmax;
  }
  // Clamping before rounding equals clamping after: the bounds are integers.
  let c = clamp(v, f32(qmin - zp), f32(qmax - zp));
  return i32(round(c)) + zp;
}
