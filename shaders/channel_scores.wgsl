// channel_scores: structured-pruning importance per output channel of a weight viewed as
// [channels, row] (conv [Cout, Cin/groups, kh, kw] or linear [Cout, Cin]).
//  - channel_norms: L1 (sum |w|) and squared L2 partial sums per (channel, chunk);
//  - channel_fpgm:  per (channel i, tile of 256 channels j) the sum of ||w_i - w_j||_2 (FPGM, He et al. 2019).
//
// Segment record (norms): 1..12 the reduction head, 13 part_base.
// Segment record (fpgm):  1 src_base, 2 channels, 3 row, 4 tiles, 5 part_base, rest unused.

@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

fn weight(i: u32) -> f32 {
  return bitcast<f32>(flush_denormal_bits(src[i]));
}

var<workgroup> wg_a: array<f32, 256>;
var<workgroup> wg_b: array<f32, 256>;

@compute @workgroup_size(256)
fn channel_norms(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  let t = workgroup_task(r, w - seg_word(s, 0u));
  var l1 = 0.0;
  var l2 = 0.0;
  for (var k = t.k_begin + lid; k < t.k_end; k += 256u) {
    let x = weight(reduction_index(r, t.g, k));
    l1 += abs(x);
    l2 += x * x;
  }
  wg_a[lid] = l1;
  wg_b[lid] = l2;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) {
      wg_a[lid] += wg_a[lid + stride];
      wg_b[lid] += wg_b[lid + stride];
    }
  }
  if (lid == 0u) {
    let base = seg_word(s, 13u) + 2u * t.part;
    partials[base] = wg_a[0];
    partials[base + 1u] = wg_b[0];
  }
}

@compute @workgroup_size(256)
fn channel_norms_small(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  let t = thread_task(r, w - seg_word(s, 0u), lid);
  if (!t.valid) { return; }
  var l1 = 0.0;
  var l2 = 0.0;
  for (var k = t.k_begin; k < t.k_end; k++) {
    let x = weight(reduction_index(r, t.g, k));
    l1 += abs(x);
    l2 += x * x;
  }
  let base = seg_word(s, 13u) + 2u * t.part;
  partials[base] = l1;
  partials[base + 1u] = l2;
}

@compute @workgroup_size(256)
fn channel_fpgm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let base = seg_word(s, 1u);
  let channels = seg_word(s, 2u);
  let row = seg_word(s, 3u);
  let tiles = seg_word(s, 4u);
  let local_wg = w - seg_word(s, 0u);
  let i = local_wg / tiles;
  let j = (local_wg % tiles) * 256u + lid;
  var dist = 0.0;
  if (j < channels && j != i) {
    var acc = 0.0;
    for (var k = 0u; k < row; k++) {
      let d = weight(base + i * row + k) - weight(base + j * row + k);
      acc += d * d;
    }
    dist = sqrt(acc);
  }
  wg_a[lid] = dist;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_a[lid] += wg_a[lid + stride]; }
  }
  if (lid == 0u) { partials[seg_word(s, 5u) + local_wg] = wg_a[0]; }
}
