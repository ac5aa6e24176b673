/**
 * V8 code cache for the CLI bundle: the compiled bytecode of dist/cli's chunks is kept on disk so
 * a later run deserializes it instead of parsing and compiling ~1 MB of JavaScript again
 * (measured on ResNet-18 int8, interleaved runs: the CLI's wall time 0.54 s as ESM, 0.47 s as
 * CommonJS, 0.42 s as CommonJS with this cache — bench/results/2026-11-29-cli-compile-cache.md).
 *
 * Node >= 22.1 has this built in (`module.enableCompileCache`), used when present. Node 20 has no
 * equivalent for ES modules, which is why the CLI bundle is CommonJS; the hook below compiles the
 * bundle's own chunks with `vm.Script` and V8's `cachedData` (what npm's v8-compile-cache does, but
 * that package cannot run chunks containing `import()`; chunks that contain it are left to Node).
 *
 * The cache is an optimization only: any failure (read-only disk, foreign owner, rejected data)
 * falls back to Node's normal compile. `NODE_DISABLE_COMPILE_CACHE=1` turns it off, and
 * `MODELPRESS_COMPILE_CACHE=<dir>` moves it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Module } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { Script } from 'node:vm';

interface CjsModule { exports: unknown; filename: string }
type Compile = (this: CjsModule, content: string, filename: string) => unknown;
interface ModuleInternals {
  prototype: { _compile: Compile };
  wrap(source: string): string;
  createRequire(filename: string): NodeJS.Require;
  enableCompileCache?: (dir?: string) => { status: number; message?: string };
}

/** The cache's folder: per user (its owner is checked) and per Node version and architecture. */
export function compileCacheDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  const base = process.env.MODELPRESS_COMPILE_CACHE || join(tmpdir(), `modelpress-compile-cache-${uid}`);
  return join(base, `${process.version}-${process.arch}`);
}

/** A folder this process may trust for code it will execute: created 0700, owned by this user. */
function ownedDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    return typeof process.getuid !== 'function' || st.uid === process.getuid();
  } catch {
    return false;
  }
}

/** Turns the cache on for CommonJS files under `bundleDir` (loaded after this call); says which. */
export function enableCompileCache(bundleDir: string): 'node' | 'hook' | 'off' {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return 'off';
  const mod = Module as unknown as ModuleInternals;
  const dir = compileCacheDir();
  if (typeof mod.enableCompileCache === 'function') {
    try {
      // status: 0 failed, 1 enabled, 2 already enabled, 3 disabled (NODE_DISABLE_COMPILE_CACHE)
      const r = mod.enableCompileCache(dir);
      return r.status === 1 || r.status === 2 ? 'node' : 'off';
    } catch {
      return 'off';
    }
  }
  if (!ownedDir(dir)) return 'off';
  const prefix = bundleDir.endsWith(sep) ? bundleDir : bundleDir + sep;
  const compile = mod.prototype._compile;
  const toWrite: { script: Script; file: string }[] = [];
  mod.prototype._compile = function (this: CjsModule, content: string, filename: string) {
    // A chunk with import() needs Node's own dynamic-import callback, which vm.Script gets only
    // through an experimental flag on Node 20: leave such chunks (the webgpu and sharp loaders) to Node.
    if (!filename.startsWith(prefix) || content.includes('import(')) return compile.call(this, content, filename);
    const source = mod.wrap(content);
    const file = join(dir, createHash('sha1').update(source).digest('hex'));
    let cachedData: Buffer | undefined;
    try {
      cachedData = readFileSync(file);
    } catch {
      cachedData = undefined;
    }
    const script = new Script(source, { filename, cachedData });
    if (!cachedData || script.cachedDataRejected) toWrite.push({ script, file });
    const fn = script.runInThisContext({ displayErrors: true }) as (...args: unknown[]) => unknown;
    return fn.call(this.exports, this.exports, mod.createRequire(filename), this, filename, dirname(filename));
  };
  // Written at exit, so the functions this run compiled lazily are in the cache too.
  process.once('exit', () => {
    for (const { script, file } of toWrite) {
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        renameSync(tmp, file);
      } catch {
        // an unwritable cache only costs the next run its compile time
      }
    }
  });
  return 'hook';
}
