// The HTML report, opened offline in a real browser (Debian's chromium through puppeteer-core):
// charts drawn with the expected number of points, the table sorts, the layer panels follow the
// selected job; a screenshot is kept in test/artifacts/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'puppeteer-core';
import { prepareSweep } from '../src/sweep/prepare.ts';
import { runLocalSweep } from '../src/sweep/local.ts';
import type { SweepSummary } from '../src/sweep/summary.ts';
import { reportHtml, sweepReportData } from '../src/report/html.ts';
import { MNIST, MNIST_DATA } from './helpers/models.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });
const dir = mkdtempSync(join(tmpdir(), 'modelpress-report-'));
const artifacts = new URL('./artifacts/', import.meta.url).pathname;

function findChromium(): string | null {
  for (const p of [process.env.CHROME_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) if (p && existsSync(p)) return p;
  return null;
}
const chromium = findChromium();
if (!chromium) console.warn('report.test: skipping the browser checks: no Chromium found (install Debian\'s chromium or set CHROME_PATH); .ci/run installs it');

const results = join(dir, 'results');
let summary: SweepSummary;

beforeAll(async () => {
  const spec = {
    models: [MNIST],
    recipes: [
      { name: 'int8', flags: { weights: 'int8' } },
      { name: 'prune30', flags: { prune: 0.3 } },
      { name: 'pal4', flags: { palettize: 4, groupSize: 8 } },
      // A bound no W8A8 model meets: the gate ranks every layer (the sensitivity panel) and keeps them in float.
      { name: 'w8a8-gated', flags: { activations: 'uint8', calibSamples: 64, minCosine: 0.99999 } },
      { name: 'poison', flags: { palettize: 2, palettizeMode: 'unique' } },
    ],
    calibration: `${MNIST_DATA}/train-images-idx3-ubyte`, evalData: `${MNIST_DATA}/t10k-images-idx3-ubyte`, samples: 300, goals: { maxDrop: 1 }, bench: { runs: 5, warmup: 1 }, backend: 'cpu' as const,
  };
  summary = await runLocalSweep(await prepareSweep(spec, results), results);
}, 300_000);

describe('the report file', () => {
  it('is one self-contained file: no external scripts, styles or images; the data holds every job', () => {
    const html = reportHtml(sweepReportData(results));
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/(src|href)="(https?:|\/\/)/i);
    const json = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1];
    const data = JSON.parse(json);
    expect(Object.keys(data.jobs).sort()).toEqual(summary.jobs.map((j) => j.id).sort());
    expect(data.summary.pareto).toEqual(summary.pareto);
  });
  it('the report command refuses a folder without a sweep', () => {
    const r = run(['report', dir, '-o', join(dir, 'x.html')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/holds no sweep\.json/);
  });
});

describe.skipIf(!chromium)('the report in Chromium (offline)', () => {
  let browser: Browser;
  let page: Page;
  const external: string[] = [];
  const errors: string[] = [];
  beforeAll(async () => {
    const out = join(dir, 'report.html');
    const r = run(['report', results, '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    const puppeteer = (await import('puppeteer-core')).default;
    browser = await puppeteer.launch({ executablePath: chromium!, args: ['--no-sandbox', '--headless=new', '--disable-dev-shm-usage', '--disable-gpu'] });
    page = await browser.newPage();
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      if (req.url().startsWith('file:')) void req.continue();
      else {
        external.push(req.url());
        void req.abort();
      }
    });
    page.on('pageerror', (e) => errors.push((e as Error).message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.setViewport({ width: 1100, height: 1600 });
    await page.goto(`file://${out}`);
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 20_000 });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('draws the Pareto scatter: one point per finished job, the front ringed, the float model starred', async () => {
    expect(errors).toEqual([]);
    expect(external).toEqual([]);
    const done = summary.jobs.filter((j) => j.status === 'done').length;
    expect(done).toBe(4);
    expect(await page.$$eval('#pareto-chart g.mark-jobs circle', (e) => e.length)).toBe(done);
    expect(await page.$$eval('#pareto-chart g.mark-pareto-front circle', (e) => e.length)).toBe(summary.pareto.length);
    expect(summary.pareto.length).toBeGreaterThan(0);
    expect(await page.$$eval('#pareto-chart g.mark-float-baseline path', (e) => e.length)).toBe(1);
    // Another pair of axes: the same points, drawn again.
    await page.select('#pareto-x', 'p50Ms');
    await page.select('#pareto-y', 'dropPoints');
    expect(await page.$$eval('#pareto-chart g.mark-jobs circle', (e) => e.length)).toBe(done);
    expect(await page.$eval('#pareto-chart', (s) => s.textContent)).toMatch(/latency p50 \(ms\)/);
  });
  it('lists every job in a table that sorts by a clicked column', async () => {
    expect(await page.$$eval('#jobs-table tbody tr', (e) => e.map((r) => r.id))).toHaveLength(summary.jobs.length);
    await page.click('#jobs-table th[data-key="sizeRatio"]');
    const sizes = await page.$$eval('#jobs-table tbody tr', (rows) => rows.map((r) => r.children[4].textContent));
    const numbers = sizes.filter((s) => s !== '–').map((s) => parseFloat(s!));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(sizes[sizes.length - 1]).toBe('–'); // the failed job sorts last
    const failed = summary.jobs.find((j) => j.status === 'failed')!;
    expect(await page.$eval(`#job-${failed.id}`, (r) => r.className)).toMatch(/failed/);
  });
  it('per-layer panels follow the selected job: SQNR bars, LUT sizes, pruned channels, suggested exclusions', async () => {
    const pal = summary.jobs.find((j) => j.recipe === 'pal4')!;
    const prune = summary.jobs.find((j) => j.recipe === 'prune30')!;
    const job = JSON.parse(readFileSync(join(results, 'jobs', `${pal.id}.json`), 'utf8'));
    await page.select('#layers select.job-select', pal.id);
    expect(await page.$$eval('#layers g.mark-sqnr rect', (e) => e.length)).toBe(job.layers.tensors.length);
    expect(await page.$$eval('#layers g.mark-lut rect', (e) => e.length)).toBe(job.layers.palette.length);
    expect(await page.$eval('#layers .panels', (p) => p.textContent)).toMatch(/Suggested exclusions/);
    await page.select('#layers select.job-select', prune.id);
    const pjob = JSON.parse(readFileSync(join(results, 'jobs', `${prune.id}.json`), 'utf8'));
    expect(pjob.layers.prune.length).toBeGreaterThan(0);
    // Kept and removed bars for every group.
    expect(await page.$$eval('#layers g.mark-pruned-channels rect', (e) => e.length)).toBe(2 * pjob.layers.prune.length);
    const gated = summary.jobs.find((j) => j.recipe === 'w8a8-gated')!;
    const gjob = JSON.parse(readFileSync(join(results, 'jobs', `${gated.id}.json`), 'utf8'));
    expect(gjob.layers.sensitivity.length).toBeGreaterThanOrEqual(4);
    await page.select('#layers select.job-select', gated.id);
    expect(await page.$$eval('#layers g.mark-sensitivity rect', (e) => e.length)).toBe(gjob.layers.sensitivity.length);
    expect(await page.$eval('#layers .panels', (p) => p.textContent)).toMatch(/Sensitivity ranking: each layer quantized alone/);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'sweep-report.png') as `${string}.png`, fullPage: true });
    expect(statSync(join(artifacts, 'sweep-report.png')).size).toBeGreaterThan(10_000);
  });
  it('compress --report-html: one run\'s layer panels, no scatter', async () => {
    const out = join(dir, 'one.onnx');
    const html = join(dir, 'one.html');
    const r = run(['compress', MNIST, '-o', out, '--prune', '0.3', '--palettize', '6', '--backend', 'cpu', '-q', '--report-html', html]);
    expect(r.status, r.stderr).toBe(0);
    const p = await browser.newPage();
    await p.goto(`file://${html}`);
    await p.waitForSelector('body[data-rendered="true"]', { timeout: 20_000 });
    expect(await p.$('#pareto-chart')).toBeNull();
    expect(await p.$eval('#overview', (e) => e.textContent)).toMatch(/prune → palettize · [0-9.]+ MB → [0-9.]+ MB \([0-9.]+ % of the input\)/);
    expect(await p.$$eval('#layers g.mark-sqnr rect', (e) => e.length)).toBeGreaterThan(0);
    expect(await p.$$eval('#layers g.mark-lut rect', (e) => e.length)).toBeGreaterThan(0);
    expect(await p.$$eval('#layers g.mark-pruned-channels rect', (e) => e.length)).toBeGreaterThan(0);
    await p.screenshot({ path: join(artifacts, 'compress-report.png') as `${string}.png`, fullPage: true });
    await p.close();
  });
});
