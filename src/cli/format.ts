/** Plain-text rendering for the CLI (tables and the info report). */
import type { EnvironmentInfo } from '../info.ts';

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n';
  return line(header) + line(widths.map((w) => '-'.repeat(w))) + rows.map(line).join('');
}

export function formatInfo(info: EnvironmentInfo): string {
  const b = info.backend;
  const lines = [
    `modelpress ${info.modelpress}`,
    `runtime:  ${info.runtime.name} ${info.runtime.version} (${info.runtime.platform}-${info.runtime.arch})`,
  ];
  if (b.adapter) {
    const a = b.adapter;
    lines.push(
      `adapter:  ${a.description || '(no description)'}`,
      `          vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}, device ${a.device || '?'}, ${a.software ? 'software (CPU emulation)' : 'hardware'}`,
      `features: ${b.features.length ? b.features.join(', ') : '(none requested)'}${b.timestamps ? '' : ' — no timestamp queries: kernel times are wall-clock only'}`,
      'limits:',
      ...Object.entries(b.limits ?? {}).map(([k, v]) => `  ${k.padEnd(36)} ${v}`),
    );
  } else {
    lines.push('adapter:  none');
  }
  lines.push(`backend:  ${b.active} (requested ${b.requested}): ${b.reason}`);
  lines.push(`kernels:  ${info.kernels.join(', ')}`);
  return lines.join('\n') + '\n';
}
