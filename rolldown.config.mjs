// The CLI as one ESM bundle (plus chunks for the lazily loaded commands): Node resolves and
// compiles a few files instead of hundreds, which halves start-up (measured: importing the
// compress path 240 ms -> 75 ms). Native packages stay external, and so does BullMQ (its sandbox
// forks its own child-process entry file, found next to its modules).
import { defineConfig } from 'rolldown';

export default defineConfig({
  input: { main: 'dist/src/cli/main.js' },
  platform: 'node',
  external: ['onnxruntime-node', 'sharp', 'webgpu', 'bullmq', 'ioredis'],
  output: { dir: 'dist/cli', format: 'esm' },
});
