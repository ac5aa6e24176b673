// The CLI as a user runs it (the built bin; `npm test` builds first).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireGpu } from './helpers/gpu.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const noGpu = { VK_ICD_FILENAMES: '/nonexistent-icd.json' };

describe('modelpress CLI', () => {
  it('is built (npm test builds before running vitest)', () => {
    expect(existsSync(bin)).toBe(true);
  });

  it('--help, info --backend cpu and weight-only compress load none of the heavy packages (start-up stays at Node\'s own)', () => {
    // Module-resolution hooks report every heavy package a command pulls in: one for ES modules
    // (import()), one for CommonJS (the bundle's require()).
    const dir = mkdtempSync(join(tmpdir(), 'modelpress-startup-'));
    const heavy = String.raw`/node_modules[\/](onnxruntime-node|onnxruntime-common|webgpu|sharp|protobufjs|bullmq|ioredis|@observablehq|d3)[\/]/`;
    const hooks = join(dir, 'hooks.mjs');
    writeFileSync(hooks, `import { writeSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); if (${heavy}.test(r.url)) writeSync(2, 'LOADED ' + r.url + '\\n'); return r; }\n`);
    const cjsHook = join(dir, 'cjs-hook.cjs');
    writeFileSync(cjsHook, `const M = require('node:module'); const { writeSync } = require('node:fs'); const resolve = M._resolveFilename;\nM._resolveFilename = function (...a) { const r = resolve.apply(this, a); if (${heavy}.test(r)) writeSync(2, 'LOADED ' + r + '\\n'); return r; };\n`);
    const reg = join(dir, 'register.mjs');
    writeFileSync(reg, `import { register, createRequire } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\ncreateRequire(import.meta.url)(${JSON.stringify(cjsHook)});\n`);
    for (const args of [['--help'], ['info', '--backend', 'cpu'], ['sweep', '--help'], ['bench', '--help']]) {
      const r = spawnSync(process.execPath, ['--import', reg, bin, ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('LOADED')), args.join(' ')).toEqual([]);
    }
    // Weight-only compression (int8, int4, palettes, magnitude sparsity) runs no model: neither
    // ONNX Runtime nor sharp loads (protobufjs does: it reads and writes the model).
    for (const flags of [['--weights', 'int4'], ['--palettize', '4', '--sparsity', '0.5']]) {
      const out = join(dir, 'light.onnx');
      const c = spawnSync(process.execPath, ['--import', reg, bin, 'compress', 'examples/mnist-cnn.onnx', '-o', out, '--backend', 'cpu', '-q', '--force', ...flags], { encoding: 'utf8', timeout: 60_000 });
      expect(c.status, c.stderr).toBe(0);
      expect(c.stderr.split('\n').filter((l) => /LOADED .*(onnxruntime|sharp|webgpu)/.test(l)), flags.join(' ')).toEqual([]);
    }
    // The probe works: a command that needs ONNX Runtime shows it.
    const b = spawnSync(process.execPath, ['--import', reg, bin, 'bench', 'examples/mnist-cnn.onnx', '--runs', '1', '--warmup', '0', '-q'], { encoding: 'utf8', timeout: 60_000 });
    expect(b.stderr).toMatch(/LOADED .*onnxruntime-node/);
  });

  it('--help lists the commands', () => {
    const r = run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/info/);
    expect(r.stdout).toMatch(/selfcheck/);
  });

  it('info --json prints only JSON on stdout, with the backend choice and its reason', () => {
    const r = run(['info', '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.backend.requested).toBe('auto');
    expect(['gpu', 'cpu']).toContain(info.backend.active);
    expect(info.backend.reason.length).toBeGreaterThan(5);
    expect(info.kernels).toEqual(['quantize', 'dequantize', 'range', 'histogram', 'channel_scores', 'distill_loss', 'threshold_search', 'gram', 'palette', 'sparsity', 'gptq_sweep', 'cholesky']);
    // The CPU path's engine and its threads: MODELPRESS_THREADS when set, else every core.
    expect(info.cpu).toEqual({ engine: 'wasm', threads: Number(process.env.MODELPRESS_THREADS) || availableParallelism() });
    expect(JSON.parse(run(['info', '--json'], { MODELPRESS_THREADS: '1' }).stdout).cpu).toEqual({ engine: 'wasm', threads: 1 });
    expect(JSON.parse(run(['info', '--json'], { MODELPRESS_CPU_ENGINE: 'js' }).stdout).cpu).toEqual({ engine: 'js', threads: 1 });
    if (requireGpu) {
      // An adapter is there; auto uses it unless it is a software rasterizer (then the CPU path, and
      // says so: without a GPU device node the software adapter is not even probed).
      if (info.backend.adapter === null) {
        expect(info.backend.reason).toMatch(/only possible adapter is a software rasterizer; the CPU path gives the same results faster/);
      } else {
        expect(info.backend.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
        if (info.backend.adapter.software) expect(info.backend.reason).toMatch(/software rasterizer .*the CPU path gives the same results faster/);
        else expect(info.backend.active).toBe('gpu');
      }
    }
  });

  it('without an adapter, auto falls back to the CPU with a one-line notice on stderr (stdout stays JSON)', () => {
    const r = run(['info', '--json'], noGpu);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).backend.active).toBe('cpu');
    // One clear line, and none of Dawn's native Vulkan warnings (it is not even loaded).
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^modelpress: no GPU: the Vulkan loader finds no driver \(VK_ICD_FILENAMES names no existing driver manifest\); using the CPU path/)]);
  });

  it('--backend gpu uses any adapter, software ones included', (ctx) => {
    if (!requireGpu) return ctx.skip('needs an adapter (MODELPRESS_REQUIRE_GPU=1)');
    const info = JSON.parse(run(['info', '--json', '--backend', 'gpu']).stdout);
    expect(info.backend.active).toBe('gpu');
    expect(info.backend.reason).toBe('the GPU backend was requested');
  });

  it('--backend gpu without an adapter is a one-line error and exit code 1, no stack trace', () => {
    const r = run(['selfcheck', '--backend', 'gpu'], noGpu);
    expect(r.code).toBe(1);
    // One line: no stack frame, no native Vulkan warnings.
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^modelpress: error: the GPU backend was requested but the Vulkan loader finds no driver/)]);
  });

  it('rejects an unknown backend with the allowed values', () => {
    const r = run(['info', '--backend', 'tpu']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Allowed choices are auto, gpu, cpu/);
  });

  it('selfcheck passes on the CPU backend', () => {
    const r = run(['selfcheck', '--backend', 'cpu', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    expect(out.rows.map((x: { kernel: string }) => x.kernel)).toEqual(['range', 'quantize', 'dequantize', 'histogram', 'channel_scores', 'distill_loss', 'cholesky', 'gptq_sweep']);
  });

  it('selfcheck passes on the default backend (the GPU where there is one)', () => {
    const r = run(['selfcheck', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    if (requireGpu) expect(out.rows.every((x: { backend: string }) => x.backend === 'gpu')).toBe(true);
  });
});
