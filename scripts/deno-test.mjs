#!/usr/bin/env node
// Runs the Deno (wgpu) suite. Deno with Mesa lavapipe occasionally aborts in glibc's free() while
// tearing the process down *after* printing its final summary; when every test has already
// passed ("ok | N passed | 0 failed"), that exit-time abort is reported loudly but does not fail the
// run. Any failed test, or an abort before the summary, still fails it.
import { spawn } from 'node:child_process';

const args = ['test', '--unstable-webgpu', '--allow-read', '--allow-env', '--allow-ffi', '--allow-sys', '--node-modules-dir=manual', 'test/deno/'];
const child = spawn('deno', args, { stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' });
let out = '';
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
});
child.stderr.on('data', (d) => {
  out += d;
  process.stderr.write(d);
});
child.on('close', (code, signal) => {
  if (code === 0) process.exit(0);
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const summary = /^ok \| (\d+) passed \| 0 failed/m.exec(plain);
  const aborted = signal === 'SIGABRT' || signal === 'SIGSEGV' || code === 134 || code === 139;
  if (summary && aborted) {
    process.stderr.write(`deno-test: all ${summary[1]} Deno tests passed; Deno then aborted during native teardown (${signal ?? `exit ${code}`}), a known wgpu/lavapipe exit-time issue: not counted as a failure\n`);
    process.exit(0);
  }
  process.exit(code ?? 1);
});
