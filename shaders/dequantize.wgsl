// dequantize: codes -> f32 ((q - zero_point) * scale), and in the same pass the round-trip error
// against the original values, reduced per statistics group (tensor or channel).
//
// Segment record: 1..12 the reduction head over the statistics view (src_base = arena offset of
// the original values), 13 part_base, 14 code_base (word), 15 code_elem_base (element index of the
// first code in that word), 16 values_base, 17 has_orig, 18 write_values, 19 q_mode, 20 q_dim,
// 21 q_inner, 22 q_blk, 23 bits, 24 signed, 25 param_base.
// qparams: per quantization group, the f32 scale then the i32 zero point.
// Partial (7 words): sum err^2, sum x^2, sum xhat^2, sum x*xhat (f32, all of values scaled by norm),
// max |err| (f32 bits, unscaled), non-finite originals, norm (f32). norm is a power of two near
// 1 / max(|x|, |xhat|) over the task, found in a first sweep, so squares stay inside f32 range.

@group(0) @binding(2) var<storage, read> orig: array<u32>;
@group(0) @binding(3) var<storage, read> codes: array<u32>;
@group(0) @binding(4) var<storage, read> qparams: array<u32>;
@group(0) @binding(5) var<storage, read_write> values: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<u32>;

const PART_WORDS: u32 = 7u;

struct Stats {
  e2: f32,
  x2: f32,
  h2: f32,
  xh: f32,
  emax: u32,
  bad: u32,
}

fn stats_merge(a: Stats, b: Stats) -> Stats {
  return Stats(a.e2 + b.e2, a.x2 + b.x2, a.h2 + b.h2, a.xh + b.xh, max(a.emax, b.emax), a.bad + b.bad);
}

// The segment's dequantization fields, loaded once per invocation rather than per element.
struct Deq {
  code_base: u32,
  code_elem_base: u32,
  values_base: u32,
  has_orig: u32,
  write_values: u32,
  q_mode: u32,
  q_dim: u32,
  q_inner: u32,
  q_blk: u32,
  bits: u32,
  signed: u32,
  param_base: u32,
  // log2(codes per u32 word): shifts, not integer division (scalarized on CPU-based adapters).
  per_shift: u32,
  // The statistics groups are the quantization groups (the task's group is the element's).
  same_groups: bool,
}

fn load_deq(s: u32, r: Reduction) -> Deq {
  let q_mode = seg_word(s, 19u);
  let q_dim = seg_word(s, 20u);
  let q_inner = seg_word(s, 21u);
  let same = q_mode == 0u && r.mode == 0u && q_dim == r.dim && q_inner == r.inner;
  return Deq(seg_word(s, 14u), seg_word(s, 15u), seg_word(s, 16u), seg_word(s, 17u), seg_word(s, 18u), q_mode, q_dim, q_inner,
             seg_word(s, 22u), seg_word(s, 23u), seg_word(s, 24u), seg_word(s, 25u), countTrailingZeros(32u / seg_word(s, 23u)), same);
}

// One element's inputs, loaded before any arithmetic so a thread can keep several loads in flight.
struct Loaded {
  idx: u32,
  code_word: u32,
  orig_bits: u32,
}

fn load_element(d: Deq, r: Reduction, g: u32, k: u32) -> Loaded {
  let idx = task_element(r, g, k);
  let word = codes[d.code_base + ((idx - d.code_elem_base) >> d.per_shift)];
  var xb = 0u;
  if (d.has_orig != 0u) { xb = orig[r.src_base + idx - r.elem_start]; }
  return Loaded(idx, word, xb);
}

fn dequantize_loaded(d: Deq, g: u32, l: Loaded) -> f32 {
  let ci = l.idx - d.code_elem_base;
  let raw = (l.code_word >> ((ci & ((1u << d.per_shift) - 1u)) * d.bits)) & ((1u << d.bits) - 1u);
  var q = i32(raw);
  if (d.signed != 0u) { q = bitcast<i32>(raw << (32u - d.bits)) >> (32u - d.bits); }
  var qg = 0u;
  if (d.same_groups) {
    qg = g;
  } else if (!(d.q_mode == 0u && d.q_dim == 1u)) {
    qg = group_of(d.q_mode, d.q_dim, d.q_inner, d.q_blk, l.idx);
  }
  let pb = d.param_base + 2u * qg;
  let scale = bitcast<f32>(qparams[pb]);
  let zp = bitcast<i32>(qparams[pb + 1u]);
  return f32(q - zp) * scale;
}

// First sweep: the largest magnitude among finite originals and their dequantized values.
fn magnitude(d: Deq, g: u32, l: Loaded) -> u32 {
  if (d.has_orig == 0u) { return 0u; }
  let xb = flush_denormal_bits(l.orig_bits);
  if (!is_finite_bits(xb)) { return 0u; }
  let hb = bitcast<u32>(dequantize_loaded(d, g, l)) & 0x7fffffffu;
  return max(xb & 0x7fffffffu, hb);
}

fn visit(d: Deq, r: Reduction, g: u32, l: Loaded, a: Stats, norm: f32) -> Stats {
  let local = l.idx - r.elem_start;
  let xh = dequantize_loaded(d, g, l);
  if (d.write_values != 0u) { values[d.values_base + local] = xh; }
  if (d.has_orig == 0u) { return a; }
  let xb = flush_denormal_bits(l.orig_bits);
  var out = a;
  if (!is_finite_bits(xb)) {
    out.bad += 1u;
    return out;
  }
  let x = bitcast<f32>(xb);
  let e = x - xh;
  let xn = x * norm;
  let hn = xh * norm;
  let en = e * norm;
  out.e2 += en * en;
  out.x2 += xn * xn;
  out.h2 += hn * hn;
  out.xh += xn * hn;
  out.emax = max(out.emax, bitcast<u32>(e) & 0x7fffffffu);
  return out;
}

// A task's elements k0, k0 + step, ... (step = threads on the task): the two sweeps, two loads
// in flight per thread, folded in element order (the order the CPU reference uses).
fn sweep_magnitude(d: Deq, r: Reduction, g: u32, k0: u32, k_end: u32, step: u32) -> u32 {
  var mag = 0u;
  var k = k0;
  for (; k + step < k_end; k += 2u * step) {
    let l0 = load_element(d, r, g, k);
    let l1 = load_element(d, r, g, k + step);
    mag = max(mag, max(magnitude(d, g, l0), magnitude(d, g, l1)));
  }
  for (; k < k_end; k += step) { mag = max(mag, magnitude(d, g, load_element(d, r, g, k))); }
  return mag;
}

fn sweep_stats(d: Deq, r: Reduction, g: u32, k0: u32, k_end: u32, step: u32, norm: f32) -> Stats {
  var a = Stats(0.0, 0.0, 0.0, 0.0, 0u, 0u);
  var k = k0;
  for (; k + step < k_end; k += 2u * step) {
    let l0 = load_element(d, r, g, k);
    let l1 = load_element(d, r, g, k + step);
    a = visit(d, r, g, l1, visit(d, r, g, l0, a, norm), norm);
  }
  for (; k < k_end; k += step) { a = visit(d, r, g, load_element(d, r, g, k), a, norm); }
  return a;
}

fn write_partial(base: u32, a: Stats, norm: f32) {
  partials[base + 0u] = bitcast<u32>(a.e2);
  partials[base + 1u] = bitcast<u32>(a.x2);
  partials[base + 2u] = bitcast<u32>(a.h2);
  partials[base + 3u] = bitcast<u32>(a.xh);
  partials[base + 4u] = a.emax;
  partials[base + 5u] = a.bad;
  partials[base + 6u] = bitcast<u32>(norm);
}

var<workgroup> wg_stats: array<Stats, 256>;
var<workgroup> wg_mag: array<u32, 256>;

@compute @workgroup_size(256)
fn dequantize_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  let t = workgroup_task(r, w - seg_word(s, 0u));
  let d = load_deq(s, r);
  wg_mag[lid] = sweep_magnitude(d, r, t.g, t.k_begin + lid, t.k_end, 256u);
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_mag[lid] = max(wg_mag[lid], wg_mag[lid + stride]); }
  }
  let norm = norm_for(workgroupUniformLoad(&wg_mag[0]));
  wg_stats[lid] = sweep_stats(d, r, t.g, t.k_begin + lid, t.k_end, 256u, norm);
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_stats[lid] = stats_merge(wg_stats[lid], wg_stats[lid + stride]); }
  }
  if (lid == 0u) { write_partial(seg_word(s, 13u) + t.part * PART_WORDS, wg_stats[0], norm); }
}

var<workgroup> wg_lanes: u32;

// Lane variant: `lanes` threads per group, each group's trees log2(lanes) deep.
@compute @workgroup_size(256)
fn dequantize_lane_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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
  let d = load_deq(s, r);
  wg_mag[lid] = sweep_magnitude(d, r, t.g, t.k_begin + lane, t.k_end, lanes);
  for (var stride = lanes >> 1u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { wg_mag[lid] = max(wg_mag[lid], wg_mag[lid + stride]); }
  }
  workgroupBarrier();
  let norm = norm_for(wg_mag[head]);
  wg_stats[lid] = sweep_stats(d, r, t.g, t.k_begin + lane, t.k_end, lanes, norm);
  for (var stride = lanes >> 1u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { wg_stats[lid] = stats_merge(wg_stats[lid], wg_stats[lid + stride]); }
  }
  if (lane == 0u && t.valid) { write_partial(seg_word(s, 13u) + t.part * PART_WORDS, wg_stats[lid], norm); }
}

@compute @workgroup_size(256)
fn dequantize_small_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let r = load_reduction(s);
  let t = thread_task(r, w - seg_word(s, 0u), lid);
  if (!t.valid) { return; }
  let d = load_deq(s, r);
  let norm = norm_for(sweep_magnitude(d, r, t.g, t.k_begin, t.k_end, 1u));
  let a = sweep_stats(d, r, t.g, t.k_begin, t.k_end, 1u, norm);
  write_partial(seg_word(s, 13u) + t.part * PART_WORDS, a, norm);
}
