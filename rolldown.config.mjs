// The CLI as one bundle (plus chunks for the lazily loaded commands): Node resolves and compiles a
// few files instead of hundreds, which halves start-up (measured: importing the compress path
// 240 ms -> 75 ms). Native packages stay external, and so does BullMQ (its sandbox forks its own
// child-process entry file, found next to its modules).
//
// CommonJS, not ESM: Node 20 loads CommonJS chunks faster (no ESM linking: the compress CLI on
// ResNet-18 0.54 -> 0.47 s) and only CommonJS can go through a code cache there
// (src/cli/compile-cache.ts: 0.42 s). dist/cli/package.json marks the folder's .js as CommonJS.
// JSDoc comments are dropped: commander's mention `import("…")`, which would keep its chunk out
// of the cache.
import { defineConfig } from 'rolldown';

export default defineConfig({
  input: { main: 'dist/src/cli/bin.js' },
  platform: 'node',
  external: ['onnxruntime-node', 'sharp', 'webgpu', 'bullmq', 'ioredis'],
  output: {
    dir: 'dist/cli',
    format: 'cjs',
    comments: { legal: true, annotation: true, jsdoc: false },
  },
  plugins: [{
    name: 'commonjs-package-json',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'package.json', source: '{ "type": "commonjs" }\n' });
    },
  }],
});
