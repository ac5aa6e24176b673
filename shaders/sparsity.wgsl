// sparsity: keep-masks for magnitude pruning, as bits (integer comparisons on |x|'s bits after
// flushing denormals, so every backend agrees exactly).
//
// sparsity_threshold: one thread per 32 elements; bit j of the output word = |x| > threshold.
// sparsity_nm: one thread per group of up to M (<= 32) elements strided along the input-channel
//   axis of an [outer, dim, inner] view; bit j = element j is among the N largest |x| of its group
//   (ties go to the lower index).
//
// Threshold record: 1 src_base, 2 count, 3 out_base, 4 threshold bits (|t|)
// N:M record:       1 src_base, 2 outer (in this piece), 3 dim, 4 inner, 5 n, 6 m, 7 out_base

@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;

fn magnitude_bits(raw: u32) -> u32 {
  return flush_denormal_bits(raw) & 0x7fffffffu;
}

@compute @workgroup_size(256)
fn sparsity_threshold(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let word = (w - seg_word(s, 0u)) * 256u + lid;
  let count = seg_word(s, 2u);
  let first = word * 32u;
  if (first >= count) { return; }
  let src_base = seg_word(s, 1u);
  let t = seg_word(s, 4u);
  var bits = 0u;
  for (var j = 0u; j < 32u; j++) {
    let e = first + j;
    if (e >= count) { break; }
    if (magnitude_bits(src[src_base + e]) > t) { bits |= 1u << j; }
  }
  mask[seg_word(s, 3u) + word] = bits;
}

@compute @workgroup_size(256)
fn sparsity_nm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let g = (w - seg_word(s, 0u)) * 256u + lid;
  let outer = seg_word(s, 2u);
  let dim = seg_word(s, 3u);
  let inner = seg_word(s, 4u);
  let n = seg_word(s, 5u);
  let m = seg_word(s, 6u);
  let nb = (dim + m - 1u) / m;
  if (g >= outer * nb * inner) { return; }
  let i = g % inner;
  let b = (g / inner) % nb;
  let o = g / (inner * nb);
  let len = min(m, dim - b * m);
  let base = seg_word(s, 1u) + (o * dim + b * m) * inner + i;
  var bits = 0u;
  for (var j = 0u; j < len; j++) {
    let xj = magnitude_bits(src[base + j * inner]);
    var rank = 0u;
    for (var q = 0u; q < len; q++) {
      let xq = magnitude_bits(src[base + q * inner]);
      if (xq > xj || (xq == xj && q < j)) { rank += 1u; }
    }
    if (rank < n) { bits |= 1u << j; }
  }
  mask[seg_word(s, 7u) + g] = bits;
}
