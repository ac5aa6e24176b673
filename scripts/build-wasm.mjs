#!/usr/bin/env node
// Compiles wasm/cpu-kernels.ts twice (npm run build:wasm): cpu-kernels.wasm on an ordinary memory
// (one thread) and cpu-kernels-threads.wasm on a shared one (worker threads instantiate it on the
// same memory). Same source, same optimisation; an optional argument names another output folder
// (the test that checks the committed binaries are what the source compiles to).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const outDir = process.argv[2] ?? 'wasm';
const asc = createRequire(import.meta.url).resolve('assemblyscript/bin/asc.js');
const common = ['wasm/cpu-kernels.ts', '-O3', '--runtime', 'stub', '--noAssert', '--enable', 'simd', '--importMemory', '--initialMemory', '1', '--maximumMemory', '65536'];
const builds = [
  ['cpu-kernels.wasm', []],
  ['cpu-kernels-threads.wasm', ['--enable', 'threads', '--sharedMemory']],
];
for (const [file, extra] of builds) {
  const r = spawnSync(process.execPath, [asc, ...common, ...extra, '-o', join(outDir, file)], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
