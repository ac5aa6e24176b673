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
// 1 / max(|x|, |xhat|) over the task, so squares stay inside f32 range. One sweep: each thread
// scales by the largest magnitude it has seen so far and rescales its sums (by powers of two,
// exactly) when a larger one comes; the workgroup then brings every thread to the largest.

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

// The biased exponent of max(|x|, |xhat|) for a finite original (0 otherwise): what the scale
// of the sums follows.
fn magnitude_exp(d: Deq, g: u32, l: Loaded, xh: f32) -> u32 {
  if (d.has_orig == 0u) { return 0u; }
  let xb = flush_denormal_bits(l.orig_bits);
  if (!is_finite_bits(xb)) { return 0u; }
  return max(xb & 0x7fffffffu, bitcast<u32>(xh) & 0x7fffffffu) >> 23u;
}

// Sums scaled by norm_for(e) brought to norm_for(to) (to >= e): two multiplications by a power of
// two <= 1, exact unless a sum falls below the normal range (then it is negligible against the
// larger values that forced the rescale).
fn rescale(a: Stats, e: u32, to: u32) -> Stats {
  if (to <= e) { return a; }
  let f = norm_for(to << 23u) / norm_for(e << 23u);
  return Stats(a.e2 * f * f, a.x2 * f * f, a.h2 * f * f, a.xh * f * f, a.emax, a.bad);
}

// Running statistics of one thread: the sums and the exponent their scale follows.
struct Running {
  a: Stats,
  e: u32,
}

fn visit(d: Deq, r: Reduction, g: u32, l: Loaded, run: Running) -> Running {
  let local = l.idx - r.elem_start;
  let xh = dequantize_loaded(d, g, l);
  if (d.write_values != 0u) { values[d.values_base + local] = xh; }
  if (d.has_orig == 0u) { return run; }
  let xb = flush_denormal_bits(l.orig_bits);
  var out = run;
  if (!is_finite_bits(xb)) {
    out.a.bad += 1u;
    return out;
  }
  let m = magnitude_exp(d, g, l, xh);
  if (m > out.e) {
    out.a = rescale(out.a, out.e, m);
    out.e = m;
  }
  let norm = norm_for(out.e << 23u);
  let x = bitcast<f32>(xb);
  let e = x - xh;
  let xn = x * norm;
  let hn = xh * norm;
  let en = e * norm;
  out.a.e2 += en * en;
  out.a.x2 += xn * xn;
  out.a.h2 += hn * hn;
  out.a.xh += xn * hn;
  out.a.emax = max(out.a.emax, bitcast<u32>(e) & 0x7fffffffu);
  return out;
}

// A task's elements k0, k0 + step, ... (step = threads on the task) in one sweep, two loads in
// flight per thread, folded in element order (the order the CPU reference uses).
fn sweep(d: Deq, r: Reduction, g: u32, k0: u32, k_end: u32, step: u32) -> Running {
  var run = Running(Stats(0.0, 0.0, 0.0, 0.0, 0u, 0u), 0u);
  var k = k0;
  for (; k + step < k_end; k += 2u * step) {
    let l0 = load_element(d, r, g, k);
    let l1 = load_element(d, r, g, k + step);
    run = visit(d, r, g, l1, visit(d, r, g, l0, run));
  }
  for (; k < k_end; k += step) { run = visit(d, r, g, load_element(d, r, g, k), run); }
  return run;
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
  let run = sweep(d, r, t.g, t.k_begin + lid, t.k_end, 256u);
  wg_mag[lid] = run.e;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_mag[lid] = max(wg_mag[lid], wg_mag[lid + stride]); }
  }
  let e = workgroupUniformLoad(&wg_mag[0]);
  wg_stats[lid] = rescale(run.a, run.e, e);
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { wg_stats[lid] = stats_merge(wg_stats[lid], wg_stats[lid + stride]); }
  }
  if (lid == 0u) { write_partial(seg_word(s, 13u) + t.part * PART_WORDS, wg_stats[0], norm_for(e << 23u)); }
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
  let run = sweep(d, r, t.g, t.k_begin + lane, t.k_end, lanes);
  wg_mag[lid] = run.e;
  for (var stride = lanes >> 1u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { wg_mag[lid] = max(wg_mag[lid], wg_mag[lid + stride]); }
  }
  workgroupBarrier();
  let e = wg_mag[head];
  wg_stats[lid] = rescale(run.a, run.e, e);
  for (var stride = lanes >> 1u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lane < stride) { wg_stats[lid] = stats_merge(wg_stats[lid], wg_stats[lid + stride]); }
  }
  if (lane == 0u && t.valid) { write_partial(seg_word(s, 13u) + t.part * PART_WORDS, wg_stats[lid], norm_for(e << 23u)); }
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
  let run = sweep(d, r, t.g, t.k_begin, t.k_end, 1u);
  write_partial(seg_word(s, 13u) + t.part * PART_WORDS, run.a, norm_for(run.e << 23u));
}
