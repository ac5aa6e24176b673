// palette: the two integer halves of exact k-means palettization.
//
// palette_histogram: counts of every fp16 value ("key") per group. Each weight is scaled by a power
//   of two (exact; it keeps values inside fp16's range), rounded to fp16 (half to even, integer
//   arithmetic, the same as src/onnx/float16.ts), and its bits mapped to an order-preserving 16-bit
//   key, so ascending keys are ascending values: the host's dynamic program walks them in order.
// palette_assign: the cluster index of every weight, the number of its group's boundaries (sorted
//   keys, one per cluster after the first) that are <= its key. Four 8-bit indices per output word.
//
// Groups are contiguous runs of `group_len` elements (the last may be shorter).
// Histogram record: 1 src_base, 2 count, 3 hist_base, 4 mult (f32)
// Assign record:    1 src_base, 2 count, 3 elem_start, 4 out_base, 5 bnd_base, 6 first_group,
//                   7 group_len, 8 nb (boundaries per group), 9 mult (f32)

@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read> bounds: array<u32>;
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> indices: array<u32>;

const PER_THREAD: u32 = 16u;

// f32 bits -> IEEE half bits, round half to even (denormal halves kept, overflow to Inf).
fn half_bits(b: u32) -> u32 {
  let sign = (b >> 16u) & 0x8000u;
  let exp = (b >> 23u) & 0xffu;
  let mant = b & 0x7fffffu;
  if (exp == 0xffu) {
    if (mant != 0u) { return sign | 0x7e00u; }
    return sign | 0x7c00u;
  }
  let e = i32(exp) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    let m = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    let rest = m & ((1u << shift) - 1u);
    var r = m >> shift;
    if (rest > half || (rest == half && (r & 1u) == 1u)) { r += 1u; }
    return sign | r;
  }
  let rest = mant & 0x1fffu;
  var r = (u32(e) << 10u) | (mant >> 13u);
  if (rest > 0x1000u || (rest == 0x1000u && (r & 1u) == 1u)) { r += 1u; }
  return sign | r;
}

// The order-preserving key of a weight after scaling by `mult` (denormals flushed before and after).
fn palette_key(raw: u32, mult: f32) -> u32 {
  var b = flush_denormal_bits(raw);
  if (is_finite_bits(b)) { b = flush_denormal_bits(bitcast<u32>(bitcast<f32>(b) * mult)); }
  let h = half_bits(b);
  if ((h & 0x8000u) != 0u) { return (~h) & 0xffffu; }
  return h | 0x8000u;
}

@compute @workgroup_size(256)
fn palette_histogram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let src_base = seg_word(s, 1u);
  let count = seg_word(s, 2u);
  let hist_base = seg_word(s, 3u);
  let mult = bitcast<f32>(seg_word(s, 4u));
  let first = (w - seg_word(s, 0u)) * 256u * PER_THREAD;
  for (var j = 0u; j < PER_THREAD; j++) {
    let e = first + j * 256u + lid;
    if (e < count) {
      atomicAdd(&counts[hist_base + palette_key(src[src_base + e], mult)], 1u);
    }
  }
}

@compute @workgroup_size(256)
fn palette_assign(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let word = (w - seg_word(s, 0u)) * 256u + lid;
  let count = seg_word(s, 2u);
  let first = word * 4u;
  if (first >= count) { return; }
  let src_base = seg_word(s, 1u);
  let elem_start = seg_word(s, 3u);
  let out_base = seg_word(s, 4u);
  let bnd_base = seg_word(s, 5u);
  let first_group = seg_word(s, 6u);
  let group_len = seg_word(s, 7u);
  let nb = seg_word(s, 8u);
  let mult = bitcast<f32>(seg_word(s, 9u));
  var packed = 0u;
  for (var j = 0u; j < 4u; j++) {
    let e = first + j;
    if (e >= count) { break; }
    let key = palette_key(src[src_base + e], mult);
    let base = bnd_base + ((elem_start + e) / group_len - first_group) * nb;
    var lo = 0u;
    var hi = nb;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (bounds[base + mid] <= key) { lo = mid + 1u; } else { hi = mid; }
    }
    packed |= lo << (j * 8u);
  }
  indices[out_base + word] = packed;
}
