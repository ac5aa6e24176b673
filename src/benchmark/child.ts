/**
 * A benchmark in a process of its own (spawned by isolated.ts): session creation starts cold and
 * the peak RSS is this model's alone. Reads { path, options } as JSON from argv[2]; writes the
 * result (or { error, code }) as one JSON line on stdout.
 */
import { ModelpressError } from '../errors.ts';
import { benchmarkModel, type BenchOptions } from './latency.ts';

const { path, options } = JSON.parse(process.argv[2] ?? '{}') as { path: string; options: BenchOptions };
try {
  const result = await benchmarkModel(path, options);
  process.stdout.write(JSON.stringify({ result }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: (err as Error).message, code: err instanceof ModelpressError ? err.code : 'INTERNAL' }) + '\n');
}
