/**
 * Start-up: `modelpress --help` and `modelpress info --backend cpu` (the bundled CLI) against bare
 * `node -e 0`, medians of fresh processes, with peak RSS. Target: <= 0.15 s over bare Node.
 * `npm run bench:startup [-- out.md]`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';

const cli = join(packageRoot(), 'dist', 'cli', 'main.js');
const rssHook = 'data:text/javascript,process.on("exit",()=>process.stderr.write("MAXRSS "+process.resourceUsage().maxRSS*1024+"\\n"))';
const runs = 15;
const cases: Array<[string, string[]]> = [
  ['node -e 0', ['-e', '0']],
  ['modelpress --help', [cli, '--help']],
  ['modelpress info --backend cpu', [cli, 'info', '--backend', 'cpu']],
];
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = cases.map(([label, args]) => {
  const walls: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--import', rssHook, ...args], { encoding: 'utf8' });
    walls.push(performance.now() - t0);
    rss.push(Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1]));
  }
  return { label, wall: med(walls), rss: med(rss) };
});
const bare = results[0].wall;
const rows = results.map((r) => [r.label, r.wall.toFixed(0), r === results[0] ? '' : `+${(r.wall - bare).toFixed(0)}`, (r.rss / 1e6).toFixed(0)]);
const verdicts = results.slice(1).map((r) => `target: ${r.label} <= 150 ms over bare Node: +${(r.wall - bare).toFixed(0)} ms, ${r.wall - bare <= 150 ? 'met' : 'NOT met'}\n`);
const text = `Start-up, medians of ${runs} fresh processes\n` + formatTable(['command', 'wall ms', 'over bare node', 'peak RSS MB'], rows) + verdicts.join('');
process.stdout.write(text);
const out = process.argv[2];
if (out) appendFileSync(out, '\n## Start-up\n\n```\n' + text + '```\n');
