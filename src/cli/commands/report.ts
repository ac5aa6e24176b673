/** `modelpress report`: a sweep's results folder as one self-contained HTML file. */
import type { Command } from 'commander';
import { guarded } from '../common.ts';

export function addReportCommand(program: Command): void {
  program
    .command('report')
    .description('write a sweep\'s results as one self-contained HTML file (opens offline): an interactive Pareto scatter, a sortable table of all jobs, per-model layer panels with suggested exclusions')
    .argument('<results>', 'the results folder a sweep wrote (holding sweep.json and jobs/)')
    .requiredOption('-o, --output <file>', 'the HTML file to write')
    .option('-v, --verbose', 'stack traces on errors')
    .action((results: string, o: { output: string; verbose?: boolean }) => guarded(o.verbose, async () => {
      const { sweepReportData, writeReportHtml } = await import('../../report/html.ts');
      const data = sweepReportData(results);
      writeReportHtml(o.output, data);
      process.stdout.write(`wrote ${o.output}: ${data.summary!.counts.jobs} jobs, ${data.summary!.pareto.length} on the Pareto front\n`);
    }));
}
