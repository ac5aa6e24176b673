// histogram: fixed-bin counts over [lo, hi] (exact u32 counts), accumulated onto existing counts
// so histograms merge across batches. Values below lo / above hi / NaN are counted apart.
// bin = floor((x - lo) * scale) with scale = bins / (hi - lo) computed once on the CPU; x == hi
// falls in the last bin. Denormal inputs and differences are flushed on every backend.
//
// The same pass keeps the exact min / max of the finite values (order-preserving keys, atomics).
//
// Segment record: 1 src_base, 2 count, 3 hist_base, 4 bins, 5 lo (f32), 6 hi (f32), 7 scale (f32)
// Counts region: bins words, then below, above, nan, min key, max key.

@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;

override LOCAL_BINS: u32 = 4094u;
const PER_THREAD: u32 = 16u;

var<workgroup> local_counts: array<atomic<u32>, LOCAL_BINS>;
var<workgroup> local_min: atomic<u32>;
var<workgroup> local_max: atomic<u32>;

// Slot of a value: 0..bins-1, bins (below), bins+1 (above), bins+2 (NaN).
fn slot_of(raw: u32, bins: u32, lo: f32, hi: f32, scale: f32) -> u32 {
  let b = flush_denormal_bits(raw);
  if (is_nan_bits(b)) { return bins + 2u; }
  let x = bitcast<f32>(b);
  if (!is_finite_bits(b)) {
    if ((b & 0x80000000u) != 0u) { return bins; }
    return bins + 1u;
  }
  if (x < lo) { return bins; }
  if (x > hi) { return bins + 1u; }
  let d = bitcast<f32>(flush_denormal_bits(bitcast<u32>(x - lo)));
  let t = d * scale;
  return min(u32(floor(t)), bins - 1u);
}

@compute @workgroup_size(256)
fn histogram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let src_base = seg_word(s, 1u);
  let count = seg_word(s, 2u);
  let hist_base = seg_word(s, 3u);
  let bins = seg_word(s, 4u);
  let lo = bitcast<f32>(seg_word(s, 5u));
  let hi = bitcast<f32>(seg_word(s, 6u));
  let scale = bitcast<f32>(seg_word(s, 7u));
  let first = (w - seg_word(s, 0u)) * 256u * PER_THREAD;
  let slots = bins + 3u;
  let use_local = slots <= LOCAL_BINS;
  if (use_local) {
    for (var i = lid; i < slots; i += 256u) { atomicStore(&local_counts[i], 0u); }
  }
  if (lid == 0u) {
    atomicStore(&local_min, 0xffffffffu);
    atomicStore(&local_max, 0u);
  }
  workgroupBarrier();
  var kmin = 0xffffffffu;
  var kmax = 0u;
  for (var j = 0u; j < PER_THREAD; j++) {
    let e = first + j * 256u + lid;
    if (e < count) {
      let raw = src[src_base + e];
      let slot = slot_of(raw, bins, lo, hi, scale);
      if (use_local) { atomicAdd(&local_counts[slot], 1u); } else { atomicAdd(&counts[hist_base + slot], 1u); }
      let b = flush_denormal_bits(raw);
      if (is_finite_bits(b)) {
        let key = sortable_key(b);
        kmin = min(kmin, key);
        kmax = max(kmax, key);
      }
    }
  }
  atomicMin(&local_min, kmin);
  atomicMax(&local_max, kmax);
  workgroupBarrier();
  if (use_local) {
    for (var i = lid; i < slots; i += 256u) {
      let c = atomicLoad(&local_counts[i]);
      if (c != 0u) { atomicAdd(&counts[hist_base + i], c); }
    }
  }
  if (lid == 0u) {
    atomicMin(&counts[hist_base + bins + 3u], atomicLoad(&local_min));
    atomicMax(&counts[hist_base + bins + 4u], atomicLoad(&local_max));
  }
}
