/**
 * Loads npm `webgpu` (Dawn's Node binding, an ES module). A module of its own, imported lazily, so
 * the CLI bundle keeps this `import()` in a chunk of its own: chunks that contain `import()` are
 * compiled by Node without the code cache (see cli/compile-cache.ts), and the runtime's chunk is
 * loaded by every command, GPU or not.
 */
export function importWebgpu(): Promise<unknown> {
  return import('webgpu');
}
