/**
 * Device acquisition behind one interface for Node (Dawn, npm `webgpu`) and Deno (wgpu,
 * `navigator.gpu`). Nothing else in modelpress knows which runtime it is in.
 */
import { GpuUnavailableError, describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { skipProbeReason, surveyVulkan } from './vulkan-survey.ts';

export type RuntimeName = 'node' | 'deno';

export function currentRuntime(): RuntimeName {
  return typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined' ? 'deno' : 'node';
}

// The object returned by `create()` must outlive every device made from it: if it is
// garbage-collected while a device lives, Dawn segfaults. Module scope keeps it alive.
let dawnGpu: GPU | undefined;

async function navigatorGpu(runtime: RuntimeName): Promise<GPU | undefined> {
  if (runtime === 'deno') {
    return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  }
  if (!dawnGpu) {
    const mod = (await (await import('./webgpu-module.ts')).importWebgpu()) as { create(opts: string[]): GPU; globals: object };
    // Dawn uses globals such as GPUBufferUsage; install them once.
    Object.assign(globalThis, mod.globals);
    // Without this toggle Dawn rounds timestamps to 64 µs, useless for kernel timing.
    dawnGpu = mod.create(['disable-dawn-features=timestamp_quantization']);
  }
  return dawnGpu;
}

/** Limits the kernels rely on; requested explicitly at the adapter's maximum. */
const WANTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupsPerDimension',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
] as const;

export type GpuLimits = Record<(typeof WANTED_LIMITS)[number], number>;

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software rasterizers (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

export interface AcquiredDevice {
  runtime: RuntimeName;
  adapter: AdapterDescription;
  device: GPUDevice;
  limits: GpuLimits;
  features: string[];
  timestamps: boolean;
}

function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const fallback = Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ??
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const software = fallback || /llvmpipe|lavapipe|swiftshader|warp|software/i.test(`${description} ${architecture} ${device}`);
  return { vendor, architecture, device, description, software };
}

/**
 * Returns a device, or `null` with the reason when there is no usable adapter.
 * Throws only on unexpected runtime failures, as GpuUnavailableError.
 */
export async function acquireDevice(log: Logger, opts: { softwareWanted: boolean }): Promise<{ acquired: AcquiredDevice } | { reason: string }> {
  const runtime = currentRuntime();
  if (runtime === 'node' && process.platform === 'linux') {
    const skip = skipProbeReason(surveyVulkan(), opts.softwareWanted);
    if (skip) return { reason: skip };
  }
  let gpu: GPU | undefined;
  try {
    gpu = await navigatorGpu(runtime);
  } catch (err) {
    return { reason: `WebGPU is not available in ${runtime}: ${describeError(err)}` };
  }
  if (!gpu) {
    return { reason: runtime === 'deno' ? 'navigator.gpu is missing (run Deno with --unstable-webgpu)' : 'WebGPU is missing' };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { reason: `requestAdapter failed: ${describeError(err)}` };
  }
  if (!adapter) return { reason: 'no WebGPU adapter found (no GPU and no software Vulkan driver such as Mesa lavapipe)' };

  const limits = {} as GpuLimits;
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    limits[name] = v;
    requiredLimits[name] = v;
  }
  const features: GPUFeatureName[] = [];
  const timestamps = adapter.features.has('timestamp-query');
  if (timestamps) features.push('timestamp-query');
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures: features, label: 'modelpress' });
  } catch (err) {
    throw new GpuUnavailableError(`requestDevice failed: ${describeError(err)}`, { cause: err });
  }
  device.addEventListener('uncapturederror', (ev) => {
    // Without preventDefault Dawn prints the error on stdout, which must stay clean for JSON.
    ev.preventDefault();
    log.warn(`uncaptured WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
  const desc = describeAdapter(adapter);
  log.debug(`WebGPU adapter: ${desc.description || desc.vendor} (${runtime})`);
  return { acquired: { runtime, adapter: desc, device, limits, features: [...features], timestamps } };
}
