/**
 * Before Dawn is loaded on Linux: is there a Vulkan loader, any driver, and any GPU device node?
 * Probing without a loader (or with only a software driver, which `auto` would not use anyway)
 * makes Dawn print native warnings with source paths on stderr; looking first avoids that noise
 * and saves loading the native module.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface VulkanSurvey {
  loader: boolean;
  /** Installable client driver manifests found (paths). */
  drivers: string[];
  /** Device nodes a hardware Vulkan driver would open (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg). */
  gpuDevices: string[];
}

const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib64', '/lib', '/usr/local/lib'];

function hasLoader(): boolean {
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(delimiter).filter(Boolean), ...LIB_DIRS];
  if (dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return true;
  try {
    // The dynamic linker's cache names every library it can find by soname.
    return readFileSync('/etc/ld.so.cache').includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

function driverManifests(): string[] {
  const override = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (override) return override.split(delimiter).filter((f) => existsSync(f));
  const home = process.env.HOME;
  const dataDirs = (process.env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(delimiter);
  const dirs = ['/etc/vulkan/icd.d', ...dataDirs.map((d) => join(d, 'vulkan', 'icd.d')), ...(home ? [join(home, '.local/share/vulkan/icd.d')] : [])];
  const out: string[] = [];
  for (const d of dirs) {
    try {
      for (const f of readdirSync(d)) if (f.endsWith('.json')) out.push(join(d, f));
    } catch {
      // folder absent
    }
  }
  return out;
}

function gpuDeviceNodes(): string[] {
  const out: string[] = [];
  try {
    for (const f of readdirSync('/dev/dri')) if (f.startsWith('renderD')) out.push(`/dev/dri/${f}`);
  } catch {
    // no DRM devices
  }
  try {
    for (const f of readdirSync('/dev')) if (/^nvidia\d+$/.test(f) || f === 'dxg') out.push(`/dev/${f}`);
  } catch {
    // unreadable /dev
  }
  return out;
}

export function surveyVulkan(): VulkanSurvey {
  return { loader: hasLoader(), drivers: driverManifests(), gpuDevices: gpuDeviceNodes() };
}

/**
 * Why probing would be pointless or noisy, or null to probe. `softwareWanted`: a software adapter
 * is acceptable (--backend gpu, selfcheck); otherwise a machine without a GPU device node can
 * only offer a software rasterizer, which `auto` would not use.
 */
export function skipProbeReason(s: VulkanSurvey, softwareWanted: boolean): string | null {
  if (!s.loader) return 'no Vulkan loader (libvulkan.so.1) is installed, and WebGPU (Dawn) needs Vulkan on Linux';
  if (s.drivers.length === 0) {
    const override = process.env.VK_DRIVER_FILES ? 'VK_DRIVER_FILES' : process.env.VK_ICD_FILENAMES ? 'VK_ICD_FILENAMES' : null;
    return override
      ? `the Vulkan loader finds no driver (${override} names no existing driver manifest)`
      : 'the Vulkan loader finds no driver (no ICD manifest in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d)';
  }
  if (!softwareWanted && s.gpuDevices.length === 0) {
    return 'no GPU device node (/dev/dri/renderD*, /dev/nvidia*), so the only possible adapter is a software rasterizer; the CPU path gives the same results faster (--backend gpu uses a software adapter anyway)';
  }
  return null;
}
