/** `modelpress bench`: ONNX Runtime latency of one or more models, compared against the first. */
import { Option, type Command } from 'commander';
import { RecipeError } from '../../errors.ts';
import { guarded, int, num } from '../common.ts';

interface BenchFlags {
  warmup?: string;
  runs?: string;
  duration?: string;
  batch?: string;
  concurrency?: string;
  threads?: string;
  interOpThreads?: string;
  ep?: string;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  data?: string;
  seed?: string;
  shape: string[];
  interleave?: boolean;
  json?: boolean;
  csv?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

export function parseShapes(list: readonly string[]): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const s of list) {
    const m = /^([^=]+)=(\d+(?:,\d+)*)$/.exec(s);
    if (!m) throw new RecipeError(`--shape ${s}: expected name=d0,d1,... (e.g. x=1,3,48,192)`);
    shapes[m[1]] = m[2].split(',').map(Number);
  }
  return shapes;
}

export function addBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('ONNX Runtime latency of one or more models (perf_test conventions: warm-up excluded, session creation and first run apart, p50/p90/p95/p99 by nearest rank), each in a process of its own; several models give one table with ratios against the first')
    .argument('<models...>', 'ONNX models; the first is the reference for the ratios')
    .option('--warmup <n>', 'runs before timing, excluded (default 10)')
    .option('--runs <n>', 'exactly this many timed runs (default: at least 100 and at least 2 s of runs)')
    .option('--duration <s>', 'time runs for this many seconds instead of --runs')
    .option('--batch <n>', 'batch size for a symbolic batch dim (default 1; a fixed batch dim wins)')
    .option('--concurrency <n>', 'concurrent inference streams, each a worker thread with its own session (default 1)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads per session (default: ORT\'s own, one per physical core)')
    .option('--inter-op-threads <n>', 'ONNX Runtime inter-op threads (default: ORT\'s own)')
    .option('--ep <provider>', 'execution provider: cpu (default), or one your onnxruntime-node build has (e.g. cuda on Linux x64 with CUDA installed)')
    .addOption(new Option('--optimization <level>', 'ONNX Runtime graph optimization level').choices(['disabled', 'basic', 'extended', 'all']).default('all'))
    .option('--data <path>', 'inputs from this data (IDX, .npy/.npz, image folder: the first --batch samples) instead of seeded random tensors of the declared shapes')
    .option('--seed <n>', 'seed for random inputs (default 1)')
    .option('--shape <name=d0,d1,...>', 'concrete shape for an input with symbolic dims (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--interleave', 'run all models in one process with their runs interleaved round-robin: ratios between them stay right when machine load drifts (peak RSS is then for all together)')
    .option('--json', 'print the results as JSON on stdout')
    .option('--csv', 'print the results as CSV on stdout')
    .option('-q, --quiet', 'no progress lines')
    .option('-v, --verbose', 'stack traces on errors')
    .action((models: string[], o: BenchFlags) => guarded(o.verbose, async () => {
      if (o.json && o.csv) throw new RecipeError('give --json or --csv, not both');
      const [{ benchmarkModels }, { formatBench, benchCsv }, { jsonNumbers }] = await Promise.all([import('../../benchmark/isolated.ts'), import('../format.ts'), import('../../json.ts')]);
      const c = await benchmarkModels(models, {
        warmup: int(o.warmup, '--warmup'), runs: int(o.runs, '--runs'), durationS: num(o.duration, '--duration'), batch: int(o.batch, '--batch'),
        concurrency: int(o.concurrency, '--concurrency'), threads: int(o.threads, '--threads'), interOpThreads: int(o.interOpThreads, '--inter-op-threads'),
        executionProvider: o.ep, optimization: o.optimization, data: o.data, seed: int(o.seed, '--seed'), shapes: parseShapes(o.shape), interleave: o.interleave,
      }, (i, n, p) => { if (!o.quiet) process.stderr.write(`modelpress: benchmarking ${i + 1}/${n} ${p}\n`); });
      process.stdout.write(o.json ? JSON.stringify(c, jsonNumbers, 2) + '\n' : o.csv ? benchCsv(c) : formatBench(c));
    }));
}
