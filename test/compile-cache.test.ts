// The CLI's V8 code cache (src/cli/compile-cache.ts), through the built bin as users run it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Module } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
// Node >= 22.1 caches through its own module.enableCompileCache; the hook runs on older Node.
const builtIn = typeof (Module as unknown as { enableCompileCache?: unknown }).enableCompileCache === 'function';

function inspect(env: Record<string, string>) {
  const r = spawnSync(process.execPath, [bin, 'inspect', 'examples/mnist-cnn.onnx'], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** Every file under dir, with its size, modification time and bytes. */
function files(dir: string): Map<string, { mtimeMs: number; bytes: Buffer }> {
  const out = new Map<string, { mtimeMs: number; bytes: Buffer }>();
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(p, { mtimeMs: statSync(p).mtimeMs, bytes: readFileSync(p) });
  }
  return out;
}

describe('CLI compile cache', () => {
  it('the first run fills the cache, a second run uses it unchanged and prints the same', () => {
    const cache = mkdtempSync(join(tmpdir(), 'modelpress-cc-'));
    const first = inspect({ MODELPRESS_COMPILE_CACHE: cache });
    const filled = files(cache);
    // inspect loads the CLI's main chunk, the model reader and the inspect command: several chunks.
    expect(filled.size).toBeGreaterThanOrEqual(3);
    const second = inspect({ MODELPRESS_COMPILE_CACHE: cache });
    expect(second).toBe(first);
    // Accepted cache data is not written again (rejected data would be rewritten at exit).
    const after = files(cache);
    expect([...after.keys()].sort()).toEqual([...filled.keys()].sort());
    for (const [p, f] of after) expect(f.mtimeMs, p).toBe(filled.get(p)!.mtimeMs);
  });

  it('bad cache data is rejected by V8, the run is unaffected and the entry is rewritten', (ctx) => {
    if (builtIn) return ctx.skip('Node >= 22.1 caches through its built-in module.enableCompileCache, whose files modelpress does not write');
    const cache = mkdtempSync(join(tmpdir(), 'modelpress-cc-'));
    const expected = inspect({ NODE_DISABLE_COMPILE_CACHE: '1' });
    inspect({ MODELPRESS_COMPILE_CACHE: cache });
    const garbage = Buffer.from('not V8 code cache data '.repeat(40));
    for (const p of files(cache).keys()) writeFileSync(p, garbage);
    expect(inspect({ MODELPRESS_COMPILE_CACHE: cache })).toBe(expected);
    const rewritten = files(cache);
    expect(rewritten.size).toBeGreaterThanOrEqual(3);
    for (const [p, f] of rewritten) expect(f.bytes.equals(garbage), p).toBe(false);
  });

  it('an unusable cache folder (a file is in the way) costs nothing but the cache', () => {
    const blocker = join(mkdtempSync(join(tmpdir(), 'modelpress-cc-')), 'file');
    writeFileSync(blocker, 'not a folder');
    expect(inspect({ MODELPRESS_COMPILE_CACHE: blocker })).toBe(inspect({ NODE_DISABLE_COMPILE_CACHE: '1' }));
    expect(readFileSync(blocker, 'utf8')).toBe('not a folder');
  });

  it('NODE_DISABLE_COMPILE_CACHE turns it off', () => {
    const cache = join(mkdtempSync(join(tmpdir(), 'modelpress-cc-')), 'cache');
    inspect({ MODELPRESS_COMPILE_CACHE: cache, NODE_DISABLE_COMPILE_CACHE: '1' });
    expect(files(cache).size).toBe(0);
  });
});
