/**
 * Loads WGSL from `shaders/`, prepends the shared prelude, and reflects it with wgsl_reflect so a
 * descriptor that disagrees with its shader fails at load time, not at dispatch.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { ShaderMismatchError } from '../errors.ts';
import { packageRoot } from '../package-root.ts';

export type BindingAccess = 'uniform' | 'read' | 'read_write';

export interface ShaderBinding {
  name: string;
  binding: number;
  access: BindingAccess;
}

export interface LoadedShader {
  name: string;
  code: string;
  bindings: ShaderBinding[];
  entryPoints: Map<string, number>;
}

/** The package's `shaders/` folder. */
export function shadersDirectory(): string {
  return join(packageRoot(), 'shaders');
}

const cache = new Map<string, LoadedShader>();

export function loadShader(name: string): LoadedShader {
  const hit = cache.get(name);
  if (hit) return hit;
  const dir = shadersDirectory();
  const file = join(dir, `${name}.wgsl`);
  if (!existsSync(file)) throw new ShaderMismatchError(name, `missing file ${file}`);
  const code = readFileSync(join(dir, 'common.wgsl'), 'utf8') + '\n' + readFileSync(file, 'utf8');
  let reflect: WgslReflect;
  try {
    reflect = new WgslReflect(code);
  } catch (err) {
    throw new ShaderMismatchError(name, `wgsl_reflect could not parse it: ${(err as Error).message}`);
  }
  const bindings: ShaderBinding[] = [];
  for (const group of reflect.getBindGroups()) {
    for (const v of group ?? []) {
      if (!v) continue;
      if (v.group !== 0) throw new ShaderMismatchError(name, `binding '${v.name}' is in group ${v.group}; kernels use group 0 only`);
      const access: BindingAccess = v.resourceType === 0 ? 'uniform' : v.access === 'read_write' ? 'read_write' : 'read';
      bindings.push({ name: v.name, binding: v.binding, access });
    }
  }
  bindings.sort((a, b) => a.binding - b.binding);
  const entryPoints = new Map<string, number>();
  for (const fn of reflect.entry.compute) {
    const ws = fn.attributes?.find((a: { name: string }) => a.name === 'workgroup_size');
    const raw = Array.isArray(ws?.value) ? ws.value[0] : ws?.value;
    const size = Number(raw);
    if (!Number.isInteger(size)) throw new ShaderMismatchError(name, `entry point '${fn.name}' needs a literal @workgroup_size`);
    entryPoints.set(fn.name, size);
  }
  const loaded = { name, code, bindings, entryPoints };
  cache.set(name, loaded);
  return loaded;
}

export interface ShaderExpectation {
  entryPoints: readonly string[];
  /** Stream bindings after the prelude's two, in binding order. */
  streams: ReadonlyArray<{ name: string; access: 'read' | 'read_write' }>;
}

export function checkShader(shader: LoadedShader, want: ShaderExpectation): void {
  const expected: ShaderBinding[] = [
    { name: 'dispatch_info', binding: 0, access: 'uniform' },
    { name: 'segments', binding: 1, access: 'read' },
    ...want.streams.map((s, i) => ({ name: s.name, binding: i + 2, access: s.access })),
  ];
  const got = shader.bindings.map((b) => `${b.binding}:${b.name}:${b.access}`).join(', ');
  const exp = expected.map((b) => `${b.binding}:${b.name}:${b.access}`).join(', ');
  if (got !== exp) throw new ShaderMismatchError(shader.name, `bindings are [${got}], the descriptor expects [${exp}]`);
  for (const ep of want.entryPoints) {
    if (!shader.entryPoints.has(ep)) {
      throw new ShaderMismatchError(shader.name, `entry point '${ep}' not found (have: ${[...shader.entryPoints.keys()].join(', ')})`);
    }
  }
}
