// quantize: f32 -> int8/uint8/int4/uint4 codes, saturating, round half to even.
// One thread writes one u32 of output: 4 eight-bit codes or 8 four-bit codes (low nibble first).
//
// Segment record: 0 wg_start, 1 src_base, 2 count, 3 elem_start, 4 out_base, 5 param_base,
//                 6 mode, 7 dim, 8 inner, 9 blk, 10 bits, 11 qmin (i32), 12 qmax (i32)
// qparams holds two words per group: the f32 inverse scale, then the i32 zero point.

// Read as 16-byte vectors: a thread's 4 (8-bit) or 8 (4-bit) elements are one or two aligned
// vectors (regions start 16-byte aligned, packing.ts), so each thread issues wide, independent
// loads instead of a chain of scalar ones (what keeps a real GPU's memory busy).
@group(0) @binding(2) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> qparams: array<u32>;
@group(0) @binding(4) var<storage, read_write> codes: array<u32>;

// quantize_one (common.wgsl): the rounding rule every kernel that makes codes shares.

@compute @workgroup_size(256)
fn quantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let word = (w - seg_word(s, 0u)) * 256u + lid;
  let count = seg_word(s, 2u);
  let bits = seg_word(s, 10u);
  let per = 32u / bits;
  let first = word * per;
  if (first >= count) { return; }
  let src_base = seg_word(s, 1u);
  let elem_start = seg_word(s, 3u);
  let param_base = seg_word(s, 5u);
  let mode = seg_word(s, 6u);
  let dim = seg_word(s, 7u);
  let inner = seg_word(s, 8u);
  let blk = seg_word(s, 9u);
  let qmin = bitcast<i32>(seg_word(s, 11u));
  let qmax = bitcast<i32>(seg_word(s, 12u));
  let mask = (1u << bits) - 1u;
  let v = (src_base + first) / 4u;
  var x = array<vec4<u32>, 2>(src[v], vec4<u32>(0u));
  if (per == 8u && first + 4u < count) { x[1] = src[v + 1u]; }
  // Group of each element without a division per element: axis groups (mode 0) advance by one
  // every `inner` elements, wrapping at `dim`.
  let idx0 = elem_start + first;
  var q = idx0 / inner;
  var r = idx0 - q * inner;
  var g = q % dim;
  var packed = 0u;
  for (var j = 0u; j < per; j++) {
    let e = first + j;
    if (e >= count) { break; }
    var gj = g;
    if (mode != 0u) { gj = group_of(mode, dim, inner, blk, idx0 + j); }
    let inv = bitcast<f32>(qparams[param_base + 2u * gj]);
    let zp = bitcast<i32>(qparams[param_base + 2u * gj + 1u]);
    let qv = quantize_one(x[j / 4u][j % 4u], inv, zp, qmin, qmax);
    packed |= (bitcast<u32>(qv) & mask) << (j * bits);
    r += 1u;
    if (r == inner) {
      r = 0u;
      g += 1u;
      if (g == dim) { g = 0u; }
    }
  }
  codes[seg_word(s, 4u) + word] = packed;
}
