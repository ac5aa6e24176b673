// range: per group (tensor / channel / block) min, max, absmax over finite values, NaN and Inf
// counts, and shifted sums for mean / variance. Min/max use order-preserving integer keys, so
// they are exact and identical on every backend; sums are f32 (see tolerances.ts).
//
// Segment record: words 1..12 the reduction head (common.wgsl), 13 part_base (in partials, of 10 words each),
// 14 moments (0: min / max / counts only, one sweep; the sums are left 0).
// Partial: 0 min key, 1 max key, 2 absmax bits, 3 NaN count, 4 Inf count, 5 finite count,
//          6 pivot (f32), 7 sum of d, 8 sum of d^2 where d = x * norm - pivot * norm, 9 norm (f32).
// norm is a power of two near 1 / absmax of the task, found in a first sweep, so the sums stay
// inside f32 range whatever the magnitudes (scaling by 2^k is exact).

@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<u32>;

const PART_WORDS: u32 = 10u;

struct Acc {
  kmin: u32,
  kmax: u32,
  amax: u32,
  nan: u32,
  inf: u32,
  n: u32,
  sum: f32,
  sq: f32,
}

fn acc_empty() -> Acc { return Acc(0xffffffffu, 0u, 0u, 0u, 0u, 0u, 0.0, 0.0); }

// First sweep: the exact integer parts.
fn acc_add(a: Acc, raw: u32) -> Acc {
  var r = a;
  let b = flush_denormal_bits(raw);
  if (!is_finite_bits(b)) {
    if (is_nan_bits(b)) { r.nan += 1u; } else { r.inf += 1u; }
    return r;
  }
  let key = sortable_key(b);
  r.kmin = min(r.kmin, key);
  r.kmax = max(r.kmax, key);
  r.amax = max(r.amax, b & 0x7fffffffu);
  r.n += 1u;
  return r;
}

// Second sweep: shifted, normalized sums.
fn acc_sums(a: Acc, raw: u32, pivot_n: f32, norm: f32) -> Acc {
  var r = a;
  let b = flush_denormal_bits(raw);
  if (!is_finite_bits(b)) { return r; }
  let d = bitcast<f32>(b) * norm - pivot_n;
  r.sum += d;
  r.sq += d * d;
  return r;
}

fn acc_merge(a: Acc, b: Acc) -> Acc {
  return Acc(min(a.kmin, b.kmin), max(a.kmax, b.kmax), max(a.amax, b.amax), a.nan + b.nan, a.inf + b.inf, a.n + b.n,
             a.sum + b.sum, a.sq + b.sq);
}

fn pivot_of(r: Reduction, t: Task) -> f32 {
  if (t.k_begin >= t.k_end) { return 0.0; }
  let b = flush_denormal_bits(src[reduction_index(r, t.g, t.k_begin)]);
  if (!is_finite_bits(b)) { return 0.0; }
  return bitcast<f32>(b);
}

// Elements k, k + step, k + 2·step, k + 3·step of group g: four independent loads in flight per
// thread (a real GPU's memory needs many outstanding requests to reach its bandwidth).
fn load4(r: Reduction, g: u32, k: u32, step: u32) -> vec4<u32> {
  return vec4<u32>(src[reduction_index(r, g, k)], src[reduction_index(r, g, k + step)],
                   src[reduction_index(r, g, k + 2u * step)], src[reduction_index(r, g, k + 3u * step)]);
}

fn acc_add4(a: Acc, x: vec4<u32>) -> Acc { return acc_add(acc_add(acc_add(acc_add(a, x.x), x.y), x.z), x.w); }

fn acc_sums4(a: Acc, x: vec4<u32>, pivot_n: f32, norm: f32) -> Acc {
  return acc_sums(acc_sums(acc_sums(acc_sums(a, x.x, pivot_n, norm), x.y, pivot_n, norm), x.z, pivot_n, norm), x.w, pivot_n, norm);
}

fn write_partial(base: u32, a: Acc, pivot: f32, norm: f32) {
  partials[base + 0u] = a.kmin;
  partials[base + 1u] = a.kmax;
  partials[base + 2u] = a.amax;
  partials[base + 3u] = a.nan;
  partials[base + 4u] = a.inf;
  partials[base + 5u] = a.n;
  partials[base + 6u] = bitcast<u32>(pivot);
  partials[base + 7u] = bitcast<u32>(a.sum);
  partials[base + 8u] = bitcast<u32>(a.sq);
  partials[base + 9u] = bitcast<u32>(norm);
}

var<workgroup> wg_acc: array<Acc, 256>;

@compute @workgroup_size(256)
fn range_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  let t = workgroup_task(r, w - seg_word(s, 0u));
  let pivot = pivot_of(r, t);
  var a = acc_empty();
  var k = t.k_begin + lid;
  for (; k + 768u < t.k_end; k += 1024u) {
    a = acc_add4(a, load4(r, t.g, k, 256u));
  }
  for (; k < t.k_end; k += 256u) {
    a = acc_add(a, src[reduction_index(r, t.g, k)]);
  }
  wg_acc[lid] = a;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_acc[lid] = acc_merge(wg_acc[lid], wg_acc[lid + stride]); }
  }
  let total = workgroupUniformLoad(&wg_acc[0]);
  if (seg_word(s, 14u) == 0u) {
    if (lid == 0u) { write_partial(seg_word(s, 13u) + t.part * PART_WORDS, total, pivot, 1.0); }
    return;
  }
  let norm = norm_for(total.amax);
  var m = acc_empty();
  var j = t.k_begin + lid;
  for (; j + 768u < t.k_end; j += 1024u) {
    m = acc_sums4(m, load4(r, t.g, j, 256u), pivot * norm, norm);
  }
  for (; j < t.k_end; j += 256u) {
    m = acc_sums(m, src[reduction_index(r, t.g, j)], pivot * norm, norm);
  }
  wg_acc[lid] = m;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_acc[lid] = acc_merge(wg_acc[lid], wg_acc[lid + stride]); }
  }
  if (lid == 0u) {
    var out = total;
    out.sum = wg_acc[0].sum;
    out.sq = wg_acc[0].sq;
    write_partial(seg_word(s, 13u) + t.part * PART_WORDS, out, pivot, norm);
  }
}

var<workgroup> wg_lanes: u32;

// Lane variant: `lanes` threads per group, each group's tree log2(lanes) deep.
@compute @workgroup_size(256)
fn range_lane_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  // The lane count through workgroupUniformLoad: uniform, so the barrier loops may run to it.
  if (lid == 0u) { wg_lanes = lanes_for(r); }
  let lanes = workgroupUniformLoad(&wg_lanes);
  let t = lane_task(r, w - seg_word(s, 0u), lid, lanes);
  let lane = lid % lanes;
  let head = lid - lane;
  let pivot = pivot_of(r, t);
  var a = acc_empty();
  // Folded in element order, as one load at a time would (load4).
  var k = t.k_begin + lane;
  for (; k + 3u * lanes < t.k_end; k += 4u * lanes) {
    a = acc_add4(a, load4(r, t.g, k, lanes));
  }
  for (; k < t.k_end; k += lanes) {
    a = acc_add(a, src[reduction_index(r, t.g, k)]);
  }
  wg_acc[lid] = a;
  for (var stride = lanes >> 1u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { wg_acc[lid] = acc_merge(wg_acc[lid], wg_acc[lid + stride]); }
  }
  workgroupBarrier();
  let total = wg_acc[head];
  if (seg_word(s, 14u) == 0u) {
    if (lane == 0u && t.valid) { write_partial(seg_word(s, 13u) + t.part * PART_WORDS, total, pivot, 1.0); }
    return;
  }
  let norm = norm_for(total.amax);
  var m = acc_empty();
  var j = t.k_begin + lane;
  for (; j + 3u * lanes < t.k_end; j += 4u * lanes) {
    m = acc_sums4(m, load4(r, t.g, j, lanes), pivot * norm, norm);
  }
  for (; j < t.k_end; j += lanes) {
    m = acc_sums(m, src[reduction_index(r, t.g, j)], pivot * norm, norm);
  }
  // Every lane has read its group's total before the slots are reused.
  workgroupBarrier();
  wg_acc[lid] = m;
  for (var stride = lanes >> 1u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { wg_acc[lid] = acc_merge(wg_acc[lid], wg_acc[lid + stride]); }
  }
  if (lane == 0u && t.valid) {
    var out = total;
    out.sum = wg_acc[lid].sum;
    out.sq = wg_acc[lid].sq;
    write_partial(seg_word(s, 13u) + t.part * PART_WORDS, out, pivot, norm);
  }
}

@compute @workgroup_size(256)
fn range_small_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  let t = thread_task(r, w - seg_word(s, 0u), lid);
  if (!t.valid) { return; }
  let pivot = pivot_of(r, t);
  var a = acc_empty();
  for (var k = t.k_begin; k < t.k_end; k++) {
    a = acc_add(a, src[reduction_index(r, t.g, k)]);
  }
  if (seg_word(s, 14u) == 0u) {
    write_partial(seg_word(s, 13u) + t.part * PART_WORDS, a, pivot, 1.0);
    return;
  }
  let norm = norm_for(a.amax);
  for (var k = t.k_begin; k < t.k_end; k++) {
    a = acc_sums(a, src[reduction_index(r, t.g, k)], pivot * norm, norm);
  }
  write_partial(seg_word(s, 13u) + t.part * PART_WORDS, a, pivot, norm);
}
