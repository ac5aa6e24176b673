/**
 * A live WebGPU device plus what kernels need from it: pipelines (built once per kernel from the
 * reflected WGSL), error capture as typed errors, and loss tracking.
 */
import { GpuFailureError, describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { acquireDevice, type AcquiredDevice } from './runtime.ts';
import { checkShader, loadShader } from '../kernels/shader-source.ts';
import type { KernelDescriptor } from '../kernels/kernel.ts';

export interface KernelPipelines {
  layout: GPUBindGroupLayout;
  byEntryPoint: Map<string, GPUComputePipeline>;
}

export class GpuContext {
  readonly acquired: AcquiredDevice;
  private readonly pipelines = new Map<string, KernelPipelines>();
  private lostReason: string | undefined;
  private disposed = false;

  private constructor(acquired: AcquiredDevice, log: Logger) {
    this.acquired = acquired;
    acquired.device.lost.then((info) => {
      if (this.disposed) return;
      this.lostReason = `device lost (${info.reason}): ${info.message}`;
      log.warn(this.lostReason);
    });
  }

  /** `softwareWanted`: a software adapter (lavapipe) is acceptable; otherwise it is not probed for. */
  static async create(log: Logger, softwareWanted = true): Promise<GpuContext | { reason: string }> {
    const got = await acquireDevice(log, { softwareWanted });
    if ('reason' in got) return got;
    return new GpuContext(got.acquired, log);
  }

  get device(): GPUDevice {
    return this.acquired.device;
  }

  /** Why this context can no longer run work, or undefined while it can. */
  get unusableReason(): string | undefined {
    return this.disposed ? 'GPU context disposed' : this.lostReason;
  }

  /** Pipelines for every entry point of a kernel, built on first use inside error scopes. */
  async pipelinesFor(kernel: KernelDescriptor<unknown, unknown>): Promise<KernelPipelines> {
    const hit = this.pipelines.get(kernel.name);
    if (hit) return hit;
    const shader = loadShader(kernel.shader);
    checkShader(shader, {
      entryPoints: kernel.entryPoints,
      streams: kernel.streams.map((s) => ({ name: s.name, access: s.role === 'in' ? 'read' : 'read_write' })),
    });
    const device = this.device;
    device.pushErrorScope('validation');
    device.pushErrorScope('internal');
    const module = device.createShaderModule({ label: kernel.shader, code: shader.code });
    const layout = device.createBindGroupLayout({
      label: kernel.name,
      entries: shader.bindings.map((b) => ({
        binding: b.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === 'uniform' ? 'uniform' : b.access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
    const byEntryPoint = new Map<string, GPUComputePipeline>();
    for (const ep of kernel.entryPoints) {
      byEntryPoint.set(ep, device.createComputePipeline({ label: `${kernel.name}:${ep}`, layout: pipelineLayout, compute: { module, entryPoint: ep, constants: { ...kernel.constants } } }));
    }
    const internal = await device.popErrorScope();
    const validation = await device.popErrorScope();
    const err = validation ?? internal;
    if (err) {
      let detail = err.message;
      try {
        const info = await module.getCompilationInfo();
        const msgs = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
        if (msgs.length) detail = msgs.join('; ');
      } catch {
        // compilation info is optional; the scope's message stands
      }
      throw new GpuFailureError(kernel.name, validation ? 'validation' : 'internal', `pipeline creation failed: ${detail}`);
    }
    const made = { layout, byEntryPoint };
    this.pipelines.set(kernel.name, made);
    return made;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pipelines.clear();
    try {
      this.device.destroy();
    } catch (err) {
      // destroy can throw if the device is already lost; nothing is left to release then
      void describeError(err);
    }
  }
}
