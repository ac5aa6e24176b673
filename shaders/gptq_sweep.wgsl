// gptq_sweep: GPTQ's column sweep (Frantar et al. 2022) on the GPU. Each row of W is independent
// once H⁻¹'s upper Cholesky factor U is known: one thread per row visits the columns in order,
// rounds the column's weight to its grid (the quantize kernel's exact rule), and spreads the
// rounding error e = (x − q) / U[i][i] over the later columns of its row, W[j] −= e · U[i][j].
// W is stored column-major ([cols][rows]) so a workgroup's threads touch consecutive words; all
// threads read the same U word at once. The code of column i replaces W[i] in place, as an f32
// (exact for codes; a bitcast could be a NaN pattern a GPU may canonicalize): the visited column
// is never read again.
//
// Segment record: 1 w_base, 2 u_base (row-major [cols][cols], diagonal holding 1 / U[i][i]),
// 3 g_base (group of each weight, column-major like W), 4 p_base (per group: inverse scale,
// scale, zero point), 5 rows, 6 cols, 7 qmin (i32 bits), 8 qmax (i32 bits).

@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> u: array<f32>;
@group(0) @binding(4) var<storage, read> groups: array<u32>;
@group(0) @binding(5) var<storage, read> params: array<u32>;

@compute @workgroup_size(64)
fn sweep(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wgi = linear_workgroup(wg);
  if (wgi >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(wgi);
  let rows = seg_word(s, 5u);
  let r = (wgi - seg_word(s, 0u)) * 64u + lid;
  if (r >= rows) { return; }
  let w_base = seg_word(s, 1u);
  let u_base = seg_word(s, 2u);
  let g_base = seg_word(s, 3u);
  let p_base = seg_word(s, 4u);
  let cols = seg_word(s, 6u);
  let qmin = bitcast<i32>(seg_word(s, 7u));
  let qmax = bitcast<i32>(seg_word(s, 8u));
  for (var i = 0u; i < cols; i++) {
    let at = w_base + i * rows + r;
    // Denormals flushed explicitly: GPUs that flush and those that do not agree.
    let xb = flush_denormal_bits(bitcast<u32>(w[at]));
    let x = bitcast<f32>(xb);
    let p = p_base + 3u * groups[g_base + i * rows + r];
    let zp = bitcast<i32>(params[p + 2u]);
    let code = quantize_one(xb, bitcast<f32>(params[p]), zp, qmin, qmax);
    let q = f32(code - zp) * bitcast<f32>(params[p + 1u]);
    let ui = u_base + i * cols;
    let e = (x - q) * u[ui + i];
    w[at] = f32(code);
    if (e != 0.0) {
      for (var j = i + 1u; j < cols; j++) {
        let k = w_base + j * rows + r;
        w[k] = w[k] - e * u[ui + j];
      }
    }
  }
}
