// distill_loss: knowledge-distillation loss per row of student / teacher logits [N, C].
//   KL(teacher_T || student_T) * T^2 (softmax at temperature T, max-subtracted),
//   cross-entropy of the student (T = 1) against the hard label,
//   gradient of  (alpha * KL * T^2 + (1 - alpha) * CE) / N  with respect to the student logits.
// One workgroup per row. Segment record: 1 student_base, 2 teacher_base, 3 label_base, 4 rows,
// 5 classes, 6 T (f32), 7 alpha (f32), 8 inv_batch (f32, 1/N of the whole batch), 9 grad_base, 10 row_base.
// rowloss: two f32 per row: KL * T^2, CE.

@group(0) @binding(2) var<storage, read> student: array<f32>;
@group(0) @binding(3) var<storage, read> teacher: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<i32>;
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
@group(0) @binding(6) var<storage, read_write> rowloss: array<f32>;

var<workgroup> red: array<vec3<f32>, 256>;

fn reduce_max3(v: vec3<f32>, lid: u32) -> vec3<f32> {
  red[lid] = v;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { red[lid] = max(red[lid], red[lid + stride]); }
  }
  workgroupBarrier();
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum3(v: vec3<f32>, lid: u32) -> vec3<f32> {
  red[lid] = v;
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { red[lid] = red[lid] + red[lid + stride]; }
  }
  workgroupBarrier();
  let r = red[0];
  workgroupBarrier();
  return r;
}

const NEG_BIG: f32 = -3.0e38;

@compute @workgroup_size(256)
fn distill_loss(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = linear_workgroup(wg);
  if (w >= dispatch_info.workgroup_count) { return; }
  let s = find_segment(w);
  let row = w - seg_word(s, 0u);
  let c = seg_word(s, 5u);
  let t = bitcast<f32>(seg_word(s, 6u));
  let alpha = bitcast<f32>(seg_word(s, 7u));
  let inv_n = bitcast<f32>(seg_word(s, 8u));
  let sb = seg_word(s, 1u) + row * c;
  let tb = seg_word(s, 2u) + row * c;
  let gb = seg_word(s, 9u) + row * c;
  let label = labels[seg_word(s, 3u) + row];

  // x: student / T, y: teacher / T, z: student
  var m = vec3<f32>(NEG_BIG, NEG_BIG, NEG_BIG);
  for (var j = lid; j < c; j += 256u) {
    m = max(m, vec3<f32>(student[sb + j] / t, teacher[tb + j] / t, student[sb + j]));
  }
  m = reduce_max3(m, lid);
  var z = vec3<f32>(0.0);
  for (var j = lid; j < c; j += 256u) {
    z += exp(vec3<f32>(student[sb + j] / t, teacher[tb + j] / t, student[sb + j]) - m);
  }
  z = reduce_sum3(z, lid);
  let lz = log(z);
  var kl = 0.0;
  var ce = 0.0;
  for (var j = lid; j < c; j += 256u) {
    let sj = student[sb + j];
    let log_q = sj / t - m.x - lz.x;
    let log_p = teacher[tb + j] / t - m.y - lz.y;
    let log_s = sj - m.z - lz.z;
    let p = exp(log_p);
    kl += p * (log_p - log_q);
    var onehot = 0.0;
    if (i32(j) == label) {
      onehot = 1.0;
      ce = -log_s;
    }
    grad[gb + j] = (alpha * t * (exp(log_q) - p) + (1.0 - alpha) * (exp(log_s) - onehot)) * inv_n;
  }
  let tot = reduce_sum3(vec3<f32>(kl, ce, 0.0), lid);
  if (lid == 0u) {
    let rb = seg_word(s, 10u) + 2u * row;
    rowloss[rb] = tot.x * t * t;
    rowloss[rb + 1u] = tot.y;
  }
}
