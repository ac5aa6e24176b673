import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { checkShader, loadShader, shadersDirectory } from '../src/kernels/shader-source.ts';
import { kernels } from '../src/kernels/registry.ts';
import { WORKGROUP_SIZE, type KernelDescriptor } from '../src/kernels/kernel.ts';
import { ShaderMismatchError } from '../src/errors.ts';

describe('WGSL sources and descriptors agree (reflected with wgsl_reflect)', () => {
  it.each(Object.values(kernels).map((k) => [k.name, k] as const))('%s', (_n, k) => {
    const shader = loadShader(k.shader);
    expect(() =>
      checkShader(shader, { entryPoints: k.entryPoints, streams: k.streams.map((s) => ({ name: s.name, access: s.role === 'in' ? 'read' : 'read_write' })) }),
    ).not.toThrow();
    for (const ep of k.entryPoints) expect(shader.entryPoints.get(ep)).toBe((k as KernelDescriptor<never, unknown>).workgroupSize ?? WORKGROUP_SIZE);
  });

  it('every shader file belongs to a kernel in the registry', () => {
    const files = readdirSync(shadersDirectory()).filter((f) => f.endsWith('.wgsl') && f !== 'common.wgsl').map((f) => f.replace('.wgsl', ''));
    expect(files.sort()).toEqual(Object.values(kernels).map((k) => k.shader).sort());
  });

  it('a descriptor that disagrees with its WGSL fails at load time, naming the shader and the bindings', () => {
    const shader = loadShader('quantize');
    expect(() => checkShader(shader, { entryPoints: ['quantize'], streams: [{ name: 'src', access: 'read' }] })).toThrow(ShaderMismatchError);
    expect(() => checkShader(shader, { entryPoints: ['quantize'], streams: [{ name: 'src', access: 'read' }] })).toThrow(/shader 'quantize': bindings are \[.*3:qparams:read.*\], the descriptor expects/);
    expect(() =>
      checkShader(shader, { entryPoints: ['nope'], streams: [{ name: 'src', access: 'read' }, { name: 'qparams', access: 'read' }, { name: 'codes', access: 'read_write' }] }),
    ).toThrow("shader 'quantize': entry point 'nope' not found (have: quantize)");
  });
});
