/**
 * Benchmarking, sweeps and fleets (issue targets), measured in one run:
 *  1. `modelpress bench` stability: p50 of a fixed model in three separate invocations (±10 %).
 *  2. Queue overhead per job: the same sweep through the CLI locally and on a BullMQ queue with one
 *     worker (Redis started here on a free port), wall time difference per job (≤ 100 ms).
 *  3. 3 Fashion-MNIST models × 4 recipes (int8, 4-bit palettes, pruning, static W8A8) locally and
 *     with 2 queue workers: the same results table; the HTML report rendered in Chromium (screenshot).
 * `npm run bench:fleet [-- out.md]` (needs redis-server and chromium for parts 2-3; says so when absent).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { resnet18Path, FASHION_SUBSET, benchTmp } from './models.ts';
import type { SweepSummary } from '../src/sweep/summary.ts';
import { startRedis } from '../test/helpers/redis.ts';

const root = packageRoot();
const cli = join(root, 'dist', 'cli', 'main.js');
const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  console.error(s);
};
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
const node = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });

// 1. bench stability
say('## 1. `modelpress bench` p50 across three invocations\n');
const stab: string[][] = [];
for (const [label, model] of [['ResNet-18 (46.7 MB, batch 1)', resnet18Path()], ['Fashion-MNIST CNN', join(root, 'test/assets/fashion-cnn.onnx')]] as const) {
  const p50s: number[] = [];
  const drifts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = node(['bench', model, '--json', '-q']);   // the defaults: ≥ 100 runs and ≥ 2 s, 10 warm-up
    if (r.status !== 0) throw new Error(r.stderr);
    const l = JSON.parse(r.stdout).results[0].latencyMs;
    p50s.push(l.p50);
    drifts.push(l.drift);
  }
  const med = [...p50s].sort((a, b) => a - b)[1];
  const dev = Math.max(...p50s.map((p) => Math.abs(p / med - 1)));
  stab.push([label, ...p50s.map((p, i) => `${p.toFixed(3)} (drift ${drifts[i].toFixed(2)})`), `${(100 * dev).toFixed(1)} %`, dev <= 0.1 ? 'met' : 'NOT met']);
}
say('```\n' + formatTable(['model', 'p50 run 1 (ms)', 'run 2', 'run 3', 'max deviation from median', '±10 %'], stab) + '```\n');
say('drift = slowest / fastest median of five consecutive blocks of a run\'s timed runs (`bench` warns above 1.10: the machine was busy part of the time).\n');

function run(args: string[]): Promise<{ status: number | null; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (status) => resolve({ status, stderr, ms: performance.now() - t0 }));
  });
}

function worker(url: string, prefix: string, name: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [cli, 'worker', '--queue', url, '--queue-prefix', prefix, '--name', name], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve) => {
    let t = '';
    p.stderr!.on('data', (d: Buffer) => {
      t += d.toString();
      if (t.includes('waiting for jobs')) resolve(p);
    });
  });
}
const stop = (p: ChildProcess) => { try { process.kill(-p.pid!, 'SIGTERM'); } catch { /* gone */ } };

const redisBin = has('redis-server');
if (!redisBin) {
  say('Parts 2 and 3 skipped: redis-server is not installed (Debian: apt-get install redis-server).');
} else {
  const redis = await startRedis(redisBin);
  const url = redis.url;
  const dir = join(benchTmp, 'fleet');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    // 2. queue overhead per job: the slope of wall time over job count (4 and 16 small jobs: MNIST
    // int8 with different size thresholds), locally and on the queue with one worker; fixed costs
    // (pre-flight, the float baseline, connecting, the summary) cancel out of the slope.
    const walls: Record<string, number[]> = { local: [], queue: [] };
    const counts = [4, 16];
    for (const K of counts) {
      const file = join(dir, `overhead-${K}.json`);
      writeFileSync(file, JSON.stringify({
        models: [join(root, 'examples/mnist-cnn.onnx')],
        recipes: Object.fromEntries(Array.from({ length: K }, (_, i) => [`int8-min${1024 + i}`, { weights: 'int8', minElements: String(1024 + i) }])),
        bench: { runs: 20, warmup: 2 },
      }));
      const local = await run(['sweep', '--sweep', file, '-o', join(dir, `ov-local-${K}`), '--backend', 'cpu', '-q']);
      const w = await worker(url, `ov${K}`, 'w1');
      const queued = await run(['sweep', '--sweep', file, '-o', join(dir, `ov-queue-${K}`), '--backend', 'cpu', '-q', '--queue', url, '--queue-prefix', `ov${K}`]);
      stop(w);
      if (local.status !== 0 || queued.status !== 0) throw new Error(`overhead sweeps failed: ${local.stderr} ${queued.stderr}`);
      walls.local.push(local.ms);
      walls.queue.push(queued.ms);
    }
    const slope = (xs: number[]) => (xs[1] - xs[0]) / (counts[1] - counts[0]);
    const per = slope(walls.queue) - slope(walls.local);
    say(`## 2. Queue overhead per job\n\nMNIST CNN int8 jobs (evaluation on 32 random samples, 20 benchmark runs each), through the CLI, wall time from start to summary:\n\n\`\`\`\n`
      + formatTable(['jobs', 'local s', 'queue, 1 worker s'], counts.map((k, i) => [String(k), (walls.local[i] / 1000).toFixed(2), (walls.queue[i] / 1000).toFixed(2)]))
      + `\`\`\`\n\nper job (slope between ${counts[0]} and ${counts[1]} jobs): local ${slope(walls.local).toFixed(0)} ms, queue ${slope(walls.queue).toFixed(0)} ms: **queue overhead ${per.toFixed(0)} ms per job** (target ≤ 100 ms: ${per <= 100 ? 'met' : 'NOT met'}); `
      + `fixed cost of the queue path (connecting, queue events, the summary as a job): ${((walls.queue[0] - walls.local[0]) / 1000 - (per * counts[0]) / 1000).toFixed(2)} s per sweep.\n`);

    // 3. 3 models × 4 recipes, local and with 2 workers.
    const sweepFile = join(dir, 'fashion.json');
    writeFileSync(sweepFile, JSON.stringify({
      models: ['fashion-cnn.onnx', 'fashion-residual.onnx', 'fashion-inverted-residual.onnx'].map((m) => join(root, 'test/assets', m)),
      recipes: { int8: { weights: 'int8' }, pal4g8: { palettize: 4, groupSize: 8 }, prune25: { prune: 0.25 }, w8a8: { activations: 'uint8', calibSamples: 64 } },
      calibration: join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz'), evalData: join(FASHION_SUBSET, 't10k-images-idx3-ubyte.gz'),
      goals: { maxDrop: 1 }, bench: { runs: 50, warmup: 5, threads: 1 },
    }));
    const l = await run(['sweep', '--sweep', sweepFile, '-o', join(dir, 'local'), '--backend', 'cpu', '-q']);
    const w1 = await worker(url, 'fa', 'w1');
    const w2 = await worker(url, 'fa', 'w2');
    const q = await run(['sweep', '--sweep', sweepFile, '-o', join(dir, 'queue'), '--backend', 'cpu', '-q', '--queue', url, '--queue-prefix', 'fa']);
    stop(w1);
    stop(w2);
    const ls = JSON.parse(readFileSync(join(dir, 'local', 'sweep.json'), 'utf8')) as SweepSummary;
    const qs = JSON.parse(readFileSync(join(dir, 'queue', 'sweep.json'), 'utf8')) as SweepSummary;
    const key = (s: SweepSummary) => JSON.stringify(s.jobs.map((j) => [j.id, j.status, j.sizeRatio, j.quality]));
    say(`## 3. 3 models × 4 recipes: local vs 2 queue workers\n\nlocal ${(l.ms / 1000).toFixed(1)} s (exit ${l.status}), 2 workers ${(q.ms / 1000).toFixed(1)} s (exit ${q.status}) on 2 cores; `
      + `jobs, sizes and accuracies ${key(ls) === key(qs) ? 'identical' : 'DIFFERENT'} (latency measured anew; two workers on two cores share them, so the local figures are the ones to trust).\n`);
    say('Local results (Fashion-MNIST test subset, 3000 images; `quality` = top-1 accuracy; speed-up = float p50 / variant p50, one ORT thread):\n\n```\n' + readFileSync(join(dir, 'local', 'results.md'), 'utf8').split('```')[1].trim() + '\n```\n');
    const html = join(dir, 'report.html');
    const rep = node(['report', join(dir, 'local'), '-o', html]);
    if (rep.status !== 0) throw new Error(rep.stderr);
    const chromium = ['/usr/bin/chromium', process.env.CHROME_PATH].find((p) => p && has(p));
    if (chromium) {
      const puppeteer = (await import('puppeteer-core')).default;
      const b = await puppeteer.launch({ executablePath: chromium, args: ['--no-sandbox', '--headless=new', '--disable-dev-shm-usage', '--disable-gpu'] });
      const page = await b.newPage();
      await page.setViewport({ width: 1100, height: 1400 });
      await page.goto(`file://${html}`);
      await page.waitForSelector('body[data-rendered="true"]');
      const dots = await page.$$eval('#pareto-chart g.mark-jobs circle', (e) => e.length);
      const shot = join(root, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-sweep-report.png`);
      await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
      await b.close();
      copyFileSync(html, join(dir, 'report-copy.html'));
      say(`HTML report rendered in Chromium: ${dots} points in the Pareto scatter (${ls.counts.done} finished jobs); screenshot ${shot.replace(root + '/', '')}.\n`);
    } else {
      say('HTML report written; Chromium not found, so no screenshot.\n');
    }
  } finally {
    await redis.stop();
  }
}

const md = out.join('\n') + '\n';
if (process.argv[2]) appendFileSync(process.argv[2], md);
process.stdout.write(md);
