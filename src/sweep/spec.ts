/**
 * What a sweep runs: models (files, or every .onnx in a folder) × recipes, where a recipe is a set
 * of `compress` flags (written as a YAML/JSON object: `{ prune: 0.3, weights: int8 }`), a compress
 * recipe file, or one point of a grid over flags. Flags are parsed by the compress command's own
 * option definitions, so a sweep recipe means exactly what the same flags mean on the command line.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DataError, RecipeError } from '../errors.ts';
import { defineCompressOptions } from '../cli/commands/compress.ts';
import type { CompressFlags } from '../cli/compress-plan.ts';
import type { BenchOptions } from '../benchmark/latency.ts';

export type FlagValue = string | number | boolean | string[];

export interface SweepRecipe {
  name: string;
  /** compress flags by their long name in camelCase (`pruneMacs` for --prune-macs). */
  flags: Record<string, FlagValue>;
}

export interface SweepGoals {
  /** Largest accepted quality drop, in points (accuracy with labels, top-1 agreement without). */
  maxDrop?: number;
  /** Smallest accepted speed-up over the float model (its p50 / the variant's p50). */
  minSpeedup?: number;
  /** Largest accepted size, as a fraction of the float model's file size. */
  maxSize?: number;
}

export interface SweepSpec {
  models: string[];
  recipes: SweepRecipe[];
  calibration?: string;
  evalData?: string;
  /** Evaluate at most this many samples. */
  samples?: number;
  goals: SweepGoals;
  bench: BenchOptions;
  backend?: 'auto' | 'gpu' | 'cpu';
}

/** Flags a sweep sets itself (per job or for the whole sweep): not allowed inside a recipe. */
const SWEEP_OWNED = ['output', 'force', 'json', 'report', 'reportHtml', 'quiet', 'verbose', 'backend', 'evalData', 'samples', 'calibration'] as const;

/** The compress command's options, parsing without printing or exiting (commander keeps parsed values on a command: one per parse). */
function compressCommand(): Command {
  return defineCompressOptions(new Command('compress')).exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The flags' command-line form: `{ pruneMacs: 0.3, symmetric: true }` → `--prune-macs 0.3 --symmetric`. */
export function flagArgv(flags: Record<string, FlagValue>): string[] {
  const argv: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    const flag = `--${kebab(k)}`;
    if (v === false) continue;
    if (v === true) argv.push(flag);
    else if (Array.isArray(v)) argv.push(flag, ...v.map(String));
    else argv.push(flag, String(v));
  }
  return argv;
}

/**
 * A recipe's flags parsed as `compress` parses them: unknown flags, bad choices and flags the sweep
 * owns are refused naming the recipe. Returns the options commander produced (defaults included)
 * and whether --target was given.
 */
export function parseRecipeFlags(recipe: SweepRecipe): { flags: CompressFlags; targetGiven: boolean } {
  const cmd = compressCommand();
  const known = new Map(cmd.options.map((o) => [o.attributeName(), o]));
  for (const k of Object.keys(recipe.flags)) {
    if ((SWEEP_OWNED as readonly string[]).includes(k)) throw new RecipeError(`recipe '${recipe.name}': '${k}' is set by the sweep itself (give it to sweep, not to a recipe)`, { recipe: recipe.name, field: k });
    if (!known.has(k)) {
      const allowed = [...known.keys()].filter((n) => !(SWEEP_OWNED as readonly string[]).includes(n) && n !== 'help');
      throw new RecipeError(`recipe '${recipe.name}': unknown compress flag '${k}'; recipe keys are compress's long flags in camelCase: ${allowed.join(', ')}`, { recipe: recipe.name, field: k });
    }
  }
  let parsed: CompressFlags | null = null;
  const fresh = cmd.action((_m: string, o: CompressFlags) => { parsed = o; });
  try {
    fresh.parse(['model.onnx', '-o', 'out.onnx', ...flagArgv(recipe.flags)], { from: 'user' });
  } catch (err) {
    const msg = err instanceof CommanderError ? err.message.replace(/^error: /, '') : (err as Error).message;
    throw new RecipeError(`recipe '${recipe.name}': ${msg}`, { recipe: recipe.name });
  }
  const flags = parsed! as CompressFlags;
  return { flags: { ...flags }, targetGiven: fresh.getOptionValueSource('target') !== 'default' };
}

/** Every .onnx file of the given files and folders (folders not recursed), sorted, deduplicated. */
export function expandModels(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) throw new DataError(`model not found: ${p}`, { path: p });
    if (statSync(p).isDirectory()) {
      const found = readdirSync(p).filter((f) => extname(f).toLowerCase() === '.onnx').sort().map((f) => join(p, f));
      if (!found.length) throw new DataError(`no .onnx files in folder ${p}`, { path: p });
      out.push(...found);
    } else {
      out.push(p);
    }
  }
  return [...new Set(out.map((p) => resolve(p)))];
}

/** Every combination of the grid's values, each a recipe named by its settings. */
export function expandGrid(grid: Record<string, FlagValue[]>, base: Record<string, FlagValue> = {}): SweepRecipe[] {
  let combos: Array<Record<string, FlagValue>> = [{}];
  for (const [k, values] of Object.entries(grid)) {
    if (!Array.isArray(values) || !values.length) throw new RecipeError(`grid.${k}: give a non-empty list of values`, { field: `grid.${k}` });
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [k]: v })));
  }
  return combos.map((c) => ({ name: Object.entries(c).map(([k, v]) => `${k}=${v}`).join(','), flags: { ...base, ...c } }));
}

const flagValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);
const sweepFileSchema = z.object({
  models: z.array(z.string()).optional(),
  recipes: z.record(z.string(), z.union([z.string(), z.record(z.string(), flagValue), z.null()])).optional(),
  grid: z.record(z.string(), z.array(z.union([z.string(), z.number(), z.boolean()]))).optional(),
  /** Flags every grid point shares. */
  gridBase: z.record(z.string(), flagValue).optional(),
  calibration: z.string().optional(),
  evalData: z.string().optional(),
  samples: z.number().int().min(1).optional(),
  goals: z.object({ maxDrop: z.number().min(0).optional(), minSpeedup: z.number().gt(0).optional(), maxSize: z.number().gt(0).optional() }).strict().optional(),
  bench: z.object({ runs: z.number().int().min(1).optional(), warmup: z.number().int().min(0).optional(), threads: z.number().int().min(0).optional(), batch: z.number().int().min(1).optional() }).strict().optional(),
}).strict();

export type SweepFile = z.infer<typeof sweepFileSchema>;

/** A recipe given as a file path: a compress recipe file (name: the file's base name). */
export function recipeFromFile(path: string): SweepRecipe {
  if (!existsSync(path)) throw new RecipeError(`recipe file not found: ${path}`, { path });
  return { name: basename(path).replace(/\.(ya?ml|json)$/i, ''), flags: { recipe: resolve(path) } };
}

/** A sweep file (YAML or JSON): paths inside it are relative to its folder. */
export function loadSweepFile(path: string): Partial<SweepSpec> {
  let data: unknown;
  try {
    const text = readFileSync(path, 'utf8');
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new RecipeError(`${path}: cannot read the sweep file: ${(err as Error).message.split('\n')[0]}`, { path });
  }
  const parsed = sweepFileSchema.safeParse(data ?? {});
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new RecipeError(`${path}: ${msg}`, { path });
  }
  const f = parsed.data;
  const dir = dirname(path);
  const rel = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : join(dir, p));
  const recipes: SweepRecipe[] = [];
  for (const [name, r] of Object.entries(f.recipes ?? {})) {
    if (typeof r === 'string') recipes.push({ ...recipeFromFile(rel(r)!), name });
    else {
      const flags = { ...(r ?? {}) };
      if (typeof flags.recipe === 'string') flags.recipe = rel(flags.recipe)!;
      recipes.push({ name, flags });
    }
  }
  if (f.grid) recipes.push(...expandGrid(f.grid, f.gridBase ?? {}));
  return {
    models: f.models?.map((m) => rel(m)!),
    recipes,
    calibration: rel(f.calibration),
    evalData: rel(f.evalData),
    samples: f.samples,
    goals: f.goals ?? {},
    bench: f.bench ?? {},
  };
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

function fileDigest(path: string | undefined): string | null {
  if (!path || !existsSync(path)) return null;
  const st = statSync(path);
  return st.isDirectory() ? `dir:${readdirSync(path).length}:${st.mtimeMs}` : createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * A job's id: a hash of the model's bytes, the recipe (its flags, and a recipe file's content),
 * what the job reads (calibration and evaluation data, sample count), the benchmark settings and
 * the modelpress version. The same job gets the same id on every machine and every re-run.
 */
export function jobId(modelSha256: string, recipe: SweepRecipe, spec: Pick<SweepSpec, 'calibration' | 'evalData' | 'samples' | 'bench'>, version: string): string {
  const recipeFile = typeof recipe.flags.recipe === 'string' ? fileDigest(recipe.flags.recipe) : null;
  const key = canonical({
    // Paths by base name and content, so a shared folder mounted elsewhere gives the same id.
    model: modelSha256, flags: { ...recipe.flags, ...(recipeFile ? { recipe: basename(String(recipe.flags.recipe)) } : {}) }, recipeFile,
    calibration: spec.calibration ? basename(spec.calibration) : null, evalData: spec.evalData ? basename(spec.evalData) : null,
    samples: spec.samples ?? null, bench: spec.bench, version,
  });
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
