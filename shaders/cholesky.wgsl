// cholesky: the inverse Cholesky factor of a symmetric positive definite matrix, X = L⁻¹ with
// A = L Lᵀ, in f32 — what GPTQ and SparseGPT factor (the host reverses rows and columns before and
// after to get the upper factor of A⁻¹). One workgroup per matrix: its 256 threads share every
// step, synchronized by barriers, so one dispatch factors many matrices (one segment each).
//
// 1. Right-looking Cholesky in place on `a` (row-major): per column j the pivot, the column below
//    it scaled, then the trailing lower triangle updated A[i][k] −= L[i][j]·L[k][j], threads
//    splitting k so a row is read in consecutive words. L's column j is mirrored into row j
//    (the unused upper triangle) so its reads are consecutive too.
// 2. Forward substitution L X = I row by row into `x`: X[i][c] = (δ_ic − Σ_{c≤k<i} L[i][k] X[k][c])
//    · (1 / L[i][i]), threads splitting c (consecutive words of X[k]).
// A pivot that is not positive stops the workgroup and reports its index in `status` (the host
// retries with more damping); 0xffffffff means success.
//
// Segment record: 1 a_base, 2 x_base, 3 n, 4 status index.

@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: array<u32>;

var<workgroup> pivot_inverse: f32;
var<workgroup> failed: u32;
var<workgroup> size: u32;

@compute @workgroup_size(256)
fn factor(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  // Every thread of a workgroup takes the same branch: the barriers below stay uniform.
  var live = 0u;
  if (w < dispatch_info.workgroup_count) { live = 1u; }
  var s = 0u;
  if (live == 1u) { s = find_segment(w); }
  if (lid == 0u) {
    failed = 0u;
    size = select(0u, seg_word(s, 3u), live == 1u);
  }
  let n = workgroupUniformLoad(&size);
  let a_base = seg_word(s, 1u);
  let x_base = seg_word(s, 2u);
  for (var j = 0u; j < n; j++) {
    if (lid == 0u) {
      let d = a[a_base + j * n + j];
      if (d > 0.0) {
        let p = sqrt(d);
        a[a_base + j * n + j] = p;
        pivot_inverse = 1.0 / p;
      } else {
        failed = j + 1u;
      }
    }
    if (workgroupUniformLoad(&failed) != 0u) { break; }
    let inv = pivot_inverse;
    for (var i = j + 1u + lid; i < n; i += 256u) {
      let v = a[a_base + i * n + j] * inv;
      a[a_base + i * n + j] = v;
      a[a_base + j * n + i] = v;
    }
    storageBarrier();
    workgroupBarrier();
    for (var i = j + 1u; i < n; i++) {
      let lij = a[a_base + j * n + i];
      if (lij != 0.0) {
        for (var k = j + 1u + lid; k <= i; k += 256u) {
          a[a_base + i * n + k] = a[a_base + i * n + k] - lij * a[a_base + j * n + k];
        }
      }
    }
    storageBarrier();
    workgroupBarrier();
  }
  let fail = workgroupUniformLoad(&failed);
  if (fail != 0u) {
    if (lid == 0u) { status[seg_word(s, 4u)] = fail - 1u; }
    return;
  }
  for (var i = 0u; i < n; i++) {
    let lii_inverse = 1.0 / a[a_base + i * n + i];
    for (var c = lid; c <= i; c += 256u) {
      var acc = select(0.0, 1.0, c == i);
      for (var k = c; k < i; k++) {
        acc = acc - a[a_base + i * n + k] * x[x_base + k * n + c];
      }
      x[x_base + i * n + c] = acc * lii_inverse;
    }
    storageBarrier();
    workgroupBarrier();
  }
  if (lid == 0u && live == 1u) { status[seg_word(s, 4u)] = 0xffffffffu; }
}
