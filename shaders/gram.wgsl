// gram: products of activation matrices for data-aware methods (pruning reconstruction, GPTQ,
// SparseGPT): G = Aᵀ B over rows, A [rows, fa] and B [rows, fb] row-major (B = A for a Gram
// matrix). One workgroup computes a 16×16 tile of G over a chunk of rows, in f32, tiles of A and
// B staged in workgroup memory; the host sums the chunks' partials in f64. Each 16-row step's
// products are summed plainly, the steps compensated (Kahan), so a chunk of thousands of rows is
// as accurate as 512 plain ones: long chunks keep the partials read back few.
//
// Segment record: 1 a_base, 2 b_base, 3 rows, 4 fa, 5 fb, 6 tiles_a, 7 tiles_b, 8 part_base,
// 9 chunk_rows, 10 b_is_a.

@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;

var<workgroup> tile_a: array<f32, 256>;
var<workgroup> tile_b: array<f32, 256>;

@compute @workgroup_size(256)
fn gram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let a_base = seg_word(s, 1u);
  let b_base = seg_word(s, 2u);
  let rows = seg_word(s, 3u);
  let fa = seg_word(s, 4u);
  let fb = seg_word(s, 5u);
  let tiles_a = seg_word(s, 6u);
  let tiles_b = seg_word(s, 7u);
  let part_base = seg_word(s, 8u);
  let chunk_rows = seg_word(s, 9u);
  let b_is_a = seg_word(s, 10u) != 0u;
  let local_wg = w - seg_word(s, 0u);
  let tiles = tiles_a * tiles_b;
  let chunk = local_wg / tiles;
  let ti = (local_wg % tiles) / tiles_b;
  let tj = local_wg % tiles_b;
  let ly = lid / 16u;
  let lx = lid % 16u;
  let r0 = chunk * chunk_rows;
  let r1 = min(rows, r0 + chunk_rows);
  var acc = 0.0;
  var comp = 0.0;
  for (var r = r0; r < r1; r += 16u) {
    let rr = r + ly;
    let ca = ti * 16u + lx;
    let cb = tj * 16u + lx;
    var va = 0.0;
    var vb = 0.0;
    if (rr < r1 && ca < fa) { va = a[a_base + rr * fa + ca]; }
    if (rr < r1 && cb < fb) {
      if (b_is_a) { vb = a[a_base + rr * fa + cb]; } else { vb = b[b_base + rr * fb + cb]; }
    }
    tile_a[lid] = va;
    tile_b[lid] = vb;
    workgroupBarrier();
    var step = 0.0;
    for (var k = 0u; k < 16u; k++) {
      step += tile_a[k * 16u + ly] * tile_b[k * 16u + lx];
    }
    let y = step - comp;
    let t = acc + y;
    comp = (t - acc) - y;
    acc = t;
    workgroupBarrier();
  }
  let i = ti * 16u + ly;
  let j = tj * 16u + lx;
  if (i < fa && j < fb) {
    partials[part_base + (chunk * fa + i) * fb + j] = acc - comp;
  }
}
