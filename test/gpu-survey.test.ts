// The Linux Vulkan survey decides whether Dawn is loaded at all (no loader, no driver, or only a
// software rasterizer that auto would not use): then the user sees one line, not native warnings.
import { describe, expect, it } from 'vitest';
import { skipProbeReason, surveyVulkan } from '../src/gpu/vulkan-survey.ts';

describe('Vulkan survey before probing WebGPU', () => {
  const full = { loader: true, drivers: ['/usr/share/vulkan/icd.d/nvidia_icd.json'], gpuDevices: ['/dev/nvidia0'] };
  it('probes when a loader, a driver and a GPU device node exist', () => {
    expect(skipProbeReason(full, false)).toBeNull();
  });
  it('does not probe without a loader, whatever is wanted', () => {
    expect(skipProbeReason({ ...full, loader: false }, true)).toMatch(/^no Vulkan loader \(libvulkan\.so\.1\) is installed/);
  });
  it('does not probe without a driver manifest', () => {
    expect(skipProbeReason({ ...full, drivers: [] }, true)).toMatch(/^the Vulkan loader finds no driver/);
  });
  it('without a GPU device node: skips for auto, probes when a software adapter is acceptable', () => {
    const noDevice = { ...full, gpuDevices: [] };
    expect(skipProbeReason(noDevice, false)).toMatch(/only possible adapter is a software rasterizer/);
    expect(skipProbeReason(noDevice, true)).toBeNull();
  });
  it('reads this machine without throwing', () => {
    const s = surveyVulkan();
    expect(typeof s.loader).toBe('boolean');
    expect(Array.isArray(s.drivers)).toBe(true);
  });
});
