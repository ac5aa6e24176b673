// threshold_search: scores many candidate clipping thresholds for one |x| histogram in parallel,
// one thread per candidate. The candidate at bin edge i clips at T = i * bin_width.
//  - method 0, entropy: KL(P || Q) of the clipped reference distribution P against its
//    quantization Q into `levels` bins (the TensorRT / MXNet calibration), after smoothing zeros;
//  - method 1, mse: expected squared error: s^2 / 12 inside [0, T] (s = T / levels) plus the
//    squared clipping error of the bin centres beyond T.
// The CPU reference (threshold-search.ts) computes the same in f64; near-ties are settled there.
//
// Segment record: 1 hist_base, 2 nbins, 3 first candidate, 4 candidates, 5 method, 6 levels,
//                 7 out_base, 8 bin width (f32)

@group(0) @binding(2) var<storage, read> hist: array<u32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;

const MAX_LEVELS: u32 = 256u;
const EPS: f32 = 0.0001;

fn entropy_score(base: u32, nbins: u32, i: u32, nq: u32) -> f32 {
  var outliers = 0.0;
  for (var b = i; b < nbins; b++) { outliers += f32(hist[base + b]); }
  let merged = i / nq;
  var qsum: array<f32, MAX_LEVELS>;
  var qnz: array<f32, MAX_LEVELS>;
  for (var j = 0u; j < nq; j++) { qsum[j] = 0.0; qnz[j] = 0.0; }
  var psum = 0.0;
  var pzeros = 0.0;
  for (var b = 0u; b < i; b++) {
    let h = f32(hist[base + b]);
    var p = h;
    if (b == i - 1u) { p += outliers; }
    let j = min(b / merged, nq - 1u);
    qsum[j] += h;
    if (p != 0.0) { qnz[j] += 1.0; } else { pzeros += 1.0; }
    psum += p;
  }
  // Zeros of Q: bins where P is zero, or whose group is empty.
  var qzeros = 0.0;
  var qtotal = 0.0;
  for (var b = 0u; b < i; b++) {
    let h = f32(hist[base + b]);
    var p = h;
    if (b == i - 1u) { p += outliers; }
    let j = min(b / merged, nq - 1u);
    var q = 0.0;
    if (p != 0.0 && qsum[j] != 0.0) { q = qsum[j] / qnz[j]; }
    if (q == 0.0) { qzeros += 1.0; }
    qtotal += q;
  }
  let n = f32(i);
  let pnz = n - pzeros;
  let qnzc = n - qzeros;
  if (pnz == 0.0 || qnzc == 0.0) { return 3.0e38; }
  let peps = EPS * pzeros / pnz;
  let qeps = EPS * qzeros / qnzc;
  // Smoothed totals: each zero gains EPS, each non-zero loses eps1; totals are unchanged.
  let pt = psum;
  let qt = qtotal;
  var kl = 0.0;
  for (var b = 0u; b < i; b++) {
    let h = f32(hist[base + b]);
    var p = h;
    if (b == i - 1u) { p += outliers; }
    let j = min(b / merged, nq - 1u);
    var q = 0.0;
    if (p != 0.0 && qsum[j] != 0.0) { q = qsum[j] / qnz[j]; }
    var ps = EPS;
    if (p != 0.0) { ps = p - peps; }
    var qs = EPS;
    if (q != 0.0) { qs = q - qeps; }
    let pn = ps / pt;
    let qn = qs / qt;
    kl += pn * log(pn / qn);
  }
  return kl;
}

fn mse_score(base: u32, nbins: u32, i: u32, levels: u32, width: f32) -> f32 {
  let t = f32(i) * width;
  let step = t / f32(levels);
  let noise = step * step / 12.0;
  var err = 0.0;
  var total = 0.0;
  for (var b = 0u; b < nbins; b++) {
    let c = f32(hist[base + b]);
    if (c == 0.0) { continue; }
    total += c;
    let centre = (f32(b) + 0.5) * width;
    if (b < i) {
      err += c * noise;
    } else {
      let d = centre - t;
      err += c * d * d;
    }
  }
  if (total == 0.0) { return 0.0; }
  return err / total;
}

@compute @workgroup_size(256)
fn threshold_search(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let k = (w - seg_word(s, 0u)) * 256u + lid;
  if (k >= seg_word(s, 4u)) { return; }
  let base = seg_word(s, 1u);
  let nbins = seg_word(s, 2u);
  let i = seg_word(s, 3u) + k;
  let levels = seg_word(s, 6u);
  var score = 0.0;
  if (seg_word(s, 5u) == 0u) {
    score = entropy_score(base, nbins, i, levels);
  } else {
    score = mse_score(base, nbins, i, levels, bitcast<f32>(seg_word(s, 8u)));
  }
  scores[seg_word(s, 7u) + k] = score;
}
