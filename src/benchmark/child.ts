/**
 * A benchmark in a process of its own (spawned by isolated.ts): session creation starts cold and
 * the peak RSS is this model's alone. Reads { path, options } (or { paths, options }: interleaved) as JSON from
 * argv[2]; writes the result(s) (or { error, code }) as one JSON line on stdout.
 */
import { ModelpressError } from '../errors.ts';
import { benchmarkInterleaved, benchmarkModel, type BenchOptions } from './latency.ts';

const { path, paths, options } = JSON.parse(process.argv[2] ?? '{}') as { path?: string; paths?: string[]; options: BenchOptions };
try {
  if (paths) process.stdout.write(JSON.stringify({ results: await benchmarkInterleaved(paths, options) }) + '\n');
  else process.stdout.write(JSON.stringify({ result: await benchmarkModel(path!, options) }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: (err as Error).message, code: err instanceof ModelpressError ? err.code : 'INTERNAL' }) + '\n');
}
