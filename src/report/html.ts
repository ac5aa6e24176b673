/**
 * The HTML report: one self-contained file (d3, Observable Plot and the report's script inlined,
 * the data as JSON inside it), so it opens offline and can be mailed or archived with the results.
 * Observable Plot draws SVG from a few declarative lines per chart (tips, legends, symbols built
 * in), and its SVG marks can be counted by a browser test; it needs only d3 beside it (~490 KB in
 * all, against ~1.1 MB for ECharts or ~800 KB for Vega-Lite with Vega).
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';
import { packageRoot, packageVersion } from '../package-root.ts';
import type { CompressReport } from '../pipeline/compress.ts';
import type { EvalReport } from '../eval/evaluate.ts';
import { compressSummaryFrom, layerPanelsFrom, qualityFrom, type JobResult } from '../sweep/job.ts';
import type { SweepSummary } from '../sweep/summary.ts';

export interface ReportData {
  title: string;
  generatedAt: string;
  modelpress: string;
  /** A sweep's summary (Pareto scatter and job table); null for a single compress run. */
  summary: SweepSummary | null;
  /** Jobs by id, with their layer panels. */
  jobs: Record<string, JobResult>;
}

/** A package's folder from its resolvable entry (the packages' `exports` hide their dist/ files). */
function packageDir(name: string): string {
  const req = createRequire(import.meta.url);
  let dir = dirname(req.resolve(name));
  while (!existsSync(join(dir, 'package.json')) || (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name !== name) {
    const up = dirname(dir);
    if (up === dir) throw new DataError(`cannot find the installed package ${name} (needed for the HTML report): run npm install`);
    dir = up;
  }
  return dir;
}

function inlineScript(js: string): string {
  // A script's text ends at the first "</script"; none may occur inside.
  return `<script>${js.replace(/<\/script/gi, '<\\/script')}</script>`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; } h3 { font-size: 16px; } h4 { margin: 18px 0 4px; font-size: 14px; }
.meta, .note { color: #666; font-size: 12px; }
.controls label { margin-right: 16px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { border-bottom: 1px solid #eee; padding: 3px 6px; text-align: left; white-space: nowrap; }
th { cursor: pointer; background: #f6f6f6; position: sticky; top: 0; }
tr.failed td { color: #a00; } tr.slower td:nth-child(7) { color: #c00; font-weight: bold; } tr.pareto td:last-child { color: #b8860b; }
td:nth-child(10) { white-space: normal; max-width: 280px; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
`;

export function reportHtml(data: ReportData): string {
  const d3 = readFileSync(join(packageDir('d3'), 'dist', 'd3.min.js'), 'utf8');
  const plot = readFileSync(join(packageDir('@observablehq/plot'), 'dist', 'plot.umd.min.js'), 'utf8');
  const client = readFileSync(join(packageRoot(), 'assets', 'report-client.js'), 'utf8');
  // JSON inside a script element: "<" escaped so no "</script>" or "<!--" can end it early.
  const json = JSON.stringify(data, jsonNumbers).replace(/</g, '\\u003c');
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(data.title)}</title><style>${STYLE}</style></head>
<body><h1>${esc(data.title)}</h1>
<p class="meta">modelpress ${esc(data.modelpress)} · written ${esc(data.generatedAt)} · every point, row and panel names its job id (results folder: jobs/&lt;id&gt;.json)</p>
<main id="report"></main>
<script type="application/json" id="report-data">${json}</script>
${inlineScript(d3)}
${inlineScript(plot)}
${inlineScript(client)}
</body></html>
`;
}

/** A sweep's results folder (sweep.json and jobs/) as report data. */
export function sweepReportData(resultsDir: string): ReportData {
  const summaryPath = join(resultsDir, 'sweep.json');
  if (!existsSync(summaryPath)) throw new DataError(`${resultsDir} holds no sweep.json: give the folder a sweep wrote (modelpress sweep -o <dir>)`, { path: resultsDir });
  const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as SweepSummary;
  const jobs: Record<string, JobResult> = {};
  const wanted = new Set(summary.jobs.map((j) => j.id));
  const jobDir = join(resultsDir, 'jobs');
  for (const f of existsSync(jobDir) ? readdirSync(jobDir) : []) {
    const id = f.replace(/\.json$/, '');
    if (!f.endsWith('.json') || !wanted.has(id)) continue;
    const r = JSON.parse(readFileSync(join(jobDir, f), 'utf8')) as JobResult;
    // The report needs the figures, not the per-output agreement lists or full benchmark records.
    jobs[id] = { ...r, bench: r.bench ? ({ latencyMs: r.bench.latencyMs, runs: r.bench.runs, batch: r.bench.batch } as JobResult['bench']) : undefined };
  }
  return { title: `modelpress sweep: ${summary.counts.jobs} jobs`, generatedAt: new Date().toISOString(), modelpress: packageVersion(), summary, jobs };
}

/** One compress run as report data: its layer panels (no Pareto scatter: there is one variant). */
export function compressReportData(input: string, report: CompressReport, evaluation: EvalReport | null): ReportData {
  const job: JobResult = {
    id: report.manifest.input.sha256.slice(0, 16), model: input, modelSha256: report.manifest.input.sha256,
    recipe: { name: report.passes.map((p) => p.pass).join(' → '), flags: {} }, status: 'done', modelpress: report.modelpress, host: '',
    startedAt: '', finishedAt: new Date().toISOString(), timeMs: report.timeMs, output: report.manifest.output.path,
    compress: compressSummaryFrom(report),
    quality: evaluation ? qualityFrom(evaluation) : undefined,
    layers: layerPanelsFrom(report),
  };
  return { title: `modelpress compress: ${input} → ${report.manifest.output.path}`, generatedAt: new Date().toISOString(), modelpress: packageVersion(), summary: null, jobs: { [job.id]: job } };
}

export function writeReportHtml(path: string, data: ReportData): void {
  writeFileAtomic(path, reportHtml(data));
}
