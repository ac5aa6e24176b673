// Evaluation of gpu.js as the CPU fallback's engine (see bench/results/2026-11-28-gpujs-evaluation.md).
// gpu.js is not a dependency; to rerun:  npm i --no-save gpu.js@2.24.1 && node bench/gpujs-eval.cjs
const { GPU } = require('gpu.js');
const N = 1 << 24;
const data = new Float32Array(N);
for (let i = 0; i < N; i++) data[i] = Math.sin(i) * 3;
const inv = Math.fround(127 / 3);
const MAGIC = 6755399441055744;
function plain(x, out) {
  for (let i = 0; i < x.length; i++) {
    let v = Math.fround(x[i] * inv);
    v = v < -127 ? -127 : v > 127 ? 127 : v;
    out[i] = v + MAGIC - MAGIC;
  }
}
const ref = new Int8Array(N);
const time = (f) => { const t = performance.now(); f(); return performance.now() - t; };
const copy = new Float32Array(N);
copy.set(data);
const results = { elements: N, copyMs: [], plainMs: [] };
for (let r = 0; r < 3; r++) { results.copyMs.push(time(() => copy.set(data))); results.plainMs.push(time(() => plain(data, ref))); }
(async () => {
  for (const mode of ['webasm', 'cpu']) {
    const gpu = new GPU({ mode });
    const k = gpu.createKernel(function (x, inv) {
      let v = x[this.thread.x] * inv;
      v = Math.min(127, Math.max(-127, v));
      return Math.round(v);
    }, { output: [N], precision: 'single' });
    const ms = [];
    let diff = 0;
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      let res = k(data, inv);
      if (res && res.then) res = await res;
      ms.push(performance.now() - t);
      diff = 0;
      for (let i = 0; i < N; i++) if (res[i] !== ref[i]) diff++;
    }
    results[mode] = { ms, codesDifferingFromHalfEven: diff };
  }
  console.log(JSON.stringify(results, null, 2));
})();
