/**
 * GPU buffers pooled by usage and power-of-two size bucket. A buffer goes back to the pool only
 * after the submit that used it has completed (the scheduler releases it after readback).
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly all = new Set<GPUBuffer>();
  created = 0;
  reused = 0;

  constructor(private readonly device: GPUDevice) {}

  static bucket(bytes: number): number {
    let b = 256;
    while (b < bytes) b *= 2;
    return b;
  }

  acquire(usage: number, bytes: number, label: string): GPUBuffer {
    const size = BufferPool.bucket(bytes);
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    const hit = list?.pop();
    if (hit) {
      this.reused++;
      return hit;
    }
    this.created++;
    const buf = this.device.createBuffer({ label, usage, size });
    this.all.add(buf);
    return buf;
  }

  release(buf: GPUBuffer): void {
    const key = `${buf.usage}:${buf.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
  }

  /** Destroys every buffer the pool made; none stays mapped. */
  destroyAll(): void {
    for (const b of this.all) {
      try {
        if (b.mapState === 'mapped') b.unmap();
        b.destroy();
      } catch {
        // already destroyed with its device
      }
    }
    this.all.clear();
    this.free.clear();
  }
}
