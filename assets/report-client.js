// The HTML report's script (inlined by src/report/html.ts beside d3 and Observable Plot, so the
// file opens offline). Reads the JSON in #report-data; draws the Pareto scatter, the sortable job
// table and the per-model layer panels. Every point and row carries its job id.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const summary = data.summary;
  const jobs = data.jobs;
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const base = (p) => String(p).split('/').pop();
  const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? '–' : typeof v === 'number' ? (Number.isFinite(v) ? v.toFixed(d) : String(v)) : String(v));
  const num = (v) => (typeof v === 'number' ? v : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : Number(v));

  const AXES = {
    sizeRatio: { label: 'size (fraction of the float model)', better: 'smaller' },
    p50Ms: { label: 'latency p50 (ms)', better: 'smaller' },
    speedup: { label: 'speed-up over float (×)', better: 'larger' },
    quality: { label: 'quality (%: accuracy, or agreement with float)', better: 'larger' },
    dropPoints: { label: 'quality drop (points)', better: 'smaller' },
  };

  function paretoSection(root) {
    const done = summary.jobs.filter((j) => j.status === 'done');
    if (!done.length) {
      root.append(el('p', {}, 'No finished job to plot.'));
      return;
    }
    const models = [...new Set(summary.jobs.map((j) => j.model))];
    const baselines = summary.models.map((m) => {
      const q = done.find((j) => j.model === m.model);
      return { model: base(m.model), sizeRatio: 1, p50Ms: m.p50Ms, speedup: 1, quality: q ? q.baselineQuality : null, dropPoints: 0, recipe: 'float baseline', id: 'baseline' };
    });
    const xSel = el('select', { id: 'pareto-x' });
    const ySel = el('select', { id: 'pareto-y' });
    for (const [k, a] of Object.entries(AXES)) {
      xSel.append(el('option', { value: k }, a.label));
      ySel.append(el('option', { value: k }, a.label));
    }
    xSel.value = 'sizeRatio';
    ySel.value = 'quality';
    const mSel = el('select', { id: 'pareto-model' }, el('option', { value: '' }, 'all models'));
    for (const m of models) mSel.append(el('option', { value: m }, base(m)));
    const chart = el('div', { id: 'pareto-chart' });
    root.append(el('div', { class: 'controls' }, el('label', {}, 'x ', xSel), el('label', {}, 'y ', ySel), el('label', {}, 'model ', mSel)), chart,
      el('p', { class: 'note' }, 'Rings: the Pareto front (smaller size, lower latency, higher quality) among the jobs that meet the goals, per model. Stars: the float models. Hover a point for its recipe and job id.'));
    const draw = () => {
      const x = xSel.value;
      const y = ySel.value;
      const pick = (j) => !mSel.value || j.model === mSel.value;
      const pts = done.filter(pick).map((j) => ({ ...j, model: base(j.model) }));
      const front = pts.filter((j) => j.pareto);
      const bl = baselines.filter((b) => !mSel.value || b.model === base(mSel.value)).filter((b) => b[x] !== null && b[y] !== null);
      const title = (d) => `${d.recipe}\njob ${d.id}\nmodel ${d.model}\nsize ${fmt(d.sizeRatio)} · p50 ${fmt(d.p50Ms)} ms · ×${fmt(d.speedup, 2)}\nquality ${fmt(d.quality, 2)} · drop ${fmt(d.dropPoints, 2)}${d.slower ? '\nSLOWER than float' : ''}`;
      const marks = [
        Plot.dot(pts, { x, y, fill: 'model', r: 5, fillOpacity: 0.8, title, tip: true, className: 'mark-jobs' }),
        Plot.dot(front, { x, y, stroke: 'black', strokeWidth: 2, r: 9, className: 'mark-pareto-front' }),
        Plot.dot(bl, { x, y, symbol: 'star', r: 7, fill: 'black', title: (d) => `float baseline\nmodel ${d.model}\np50 ${fmt(d.p50Ms)} ms`, className: 'mark-float-baseline' }),
      ];
      const slow = pts.filter((j) => j.slower);
      if (slow.length) marks.push(Plot.dot(slow, { x, y, stroke: 'red', r: 12, strokeDasharray: '2,2', className: 'mark-slower-than-float' }));
      chart.replaceChildren(Plot.plot({ width: 760, height: 420, grid: true, marginLeft: 60, x: { label: AXES[x].label }, y: { label: AXES[y].label }, color: { legend: true }, marks }));
    };
    for (const s of [xSel, ySel, mSel]) s.addEventListener('change', draw);
    draw();
  }

  function jobTable(root) {
    const cols = [
      ['id', 'job', (j) => j.id],
      ['model', 'model', (j) => base(j.model)],
      ['recipe', 'recipe', (j) => j.recipe],
      ['status', 'status', (j) => j.status],
      ['sizeRatio', 'size', (j) => j.sizeRatio],
      ['p50Ms', 'p50 ms', (j) => j.p50Ms],
      ['speedup', 'speed-up', (j) => j.speedup],
      ['quality', 'quality', (j) => j.quality],
      ['dropPoints', 'drop', (j) => j.dropPoints],
      ['goals', 'goals', (j) => (j.status !== 'done' ? j.error || '' : j.meetsGoals ? 'met' : j.missed.join('; '))],
      ['pareto', 'Pareto', (j) => (j.pareto ? '★' : '')],
    ];
    const rows = summary.jobs.slice();
    let sortKey = null;
    let asc = true;
    const table = el('table', { id: 'jobs-table' });
    const thead = el('thead');
    const tbody = el('tbody');
    const headRow = el('tr');
    for (const [k, label, get] of cols) {
      headRow.append(el('th', {
        'data-key': k, title: 'sort',
        onclick: () => {
          asc = sortKey === k ? !asc : true;
          sortKey = k;
          rows.sort((a, b) => {
            const va = get(a);
            const vb = get(b);
            if (va === vb) return 0;
            if (va === null || va === undefined || va === '') return 1;
            if (vb === null || vb === undefined || vb === '') return -1;
            const c = typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va).localeCompare(String(vb));
            return asc ? c : -c;
          });
          render();
        },
      }, label));
    }
    thead.append(headRow);
    const render = () => {
      tbody.replaceChildren(...rows.map((j) => el('tr', { id: `job-${j.id}`, class: `${j.status}${j.slower ? ' slower' : ''}${j.pareto ? ' pareto' : ''}` },
        ...cols.map(([k, , get]) => {
          const v = get(j);
          return el('td', {}, k === 'sizeRatio' && typeof v === 'number' ? `${(100 * v).toFixed(1)} %` : k === 'speedup' && typeof v === 'number' ? `${v.toFixed(2)}×${j.slower ? ' slower' : ''}` : typeof v === 'number' ? fmt(v, k === 'p50Ms' ? 3 : 2) : v ?? '–');
        }))));
    };
    render();
    table.append(thead, tbody);
    root.append(table);
  }

  function barChart(rows, x, y, opts) {
    return Plot.plot({
      width: 760, height: Math.max(80, 16 * rows.length + 50), marginLeft: 220, x: { label: opts.xLabel, grid: true },
      y: { label: null, domain: rows.map((r) => r[y]) },
      marks: [Plot.barX(rows, { x, y, fill: opts.fill || 'steelblue', title: opts.title, tip: true, className: `mark-${opts.mark}` }), Plot.ruleX([0])],
    });
  }

  /** Most damaging first: larger accuracy drop, then lower output SQNR. */
  const bySensitivity = (a, b) => (b.dropPoints ?? 0) - (a.dropPoints ?? 0) || num(a.sqnrDb) - num(b.sqnrDb);

  /**
   * Layers to keep in float: those whose quantization alone costs accuracy (> 0.1 points) or, without
   * labels, output SQNR under 30 dB — else, without a sensitivity ranking, the lowest weight SQNR (< 20 dB).
   */
  function suggestedExclusions(job) {
    const L = job.layers;
    if (L.sensitivity && L.sensitivity.length) {
      return L.sensitivity.filter((e) => (e.dropPoints !== null ? e.dropPoints > 0.1 : num(e.sqnrDb) < 30)).sort(bySensitivity).slice(0, 3)
        .map((e) => ({ node: e.node, why: `alone it costs ${e.dropPoints !== null ? `${fmt(e.dropPoints, 2)} points of accuracy, ` : ''}output SQNR ${fmt(num(e.sqnrDb), 1)} dB` }));
    }
    const low = L.tensors.filter((t) => num(t.sqnrDb) < 20).sort((a, b) => num(a.sqnrDb) - num(b.sqnrDb)).slice(0, 3);
    return low.map((t) => ({ node: (t.nodes && t.nodes[0]) || t.name, why: `weight SQNR ${fmt(num(t.sqnrDb), 1)} dB (< 20 dB)` }));
  }

  function layerPanels(root, job) {
    root.replaceChildren();
    if (!job || !job.layers) {
      root.append(el('p', {}, job ? `job ${job.id} has no layer data (${job.status}${job.error ? `: ${job.error.message}` : ''})` : 'no job'));
      return;
    }
    const L = job.layers;
    root.append(el('p', { class: 'note' }, `job ${job.id} · recipe ${job.recipe.name} · passes ${job.compress ? job.compress.passes.join(' → ') : '–'}`));
    if (L.tensors.length) {
      const rows = L.tensors.map((t) => ({ ...t, sqnr: Math.min(num(t.sqnrDb), 80) }));
      root.append(el('h4', {}, 'Weight SQNR by layer (dB; cosine on hover)'),
        barChart(rows, 'sqnr', 'name', { xLabel: 'SQNR (dB, capped at 80)', mark: 'sqnr', title: (d) => `${d.name} (${d.op})\n${d.scheme}\nSQNR ${fmt(num(d.sqnrDb), 2)} dB · cosine ${fmt(d.cosine, 6)}\njob ${job.id}` }));
    }
    if (L.sensitivity && L.sensitivity.length) {
      const rows = L.sensitivity.slice().sort(bySensitivity).map((e) => ({ ...e, sqnr: Math.min(num(e.sqnrDb), 80) }));
      root.append(el('h4', {}, 'Sensitivity ranking: each layer quantized alone (most damaging first; accuracy drop on hover)'),
        barChart(rows, 'sqnr', 'node', { xLabel: 'output SQNR with only this layer quantized (dB, capped at 80)', mark: 'sensitivity', fill: 'darkorange', title: (d) => `${d.node} (${d.op})\ndrop ${fmt(d.dropPoints, 2)} points · output SQNR ${fmt(num(d.sqnrDb), 1)} dB · cosine ${fmt(d.cosine, 5)}\njob ${job.id}` }));
    }
    if (L.prune.length) {
      const rows = L.prune.map((g) => ({ group: `group ${g.group}: ${g.producers.join(', ')}`.slice(0, 60), kept: g.channels - g.removed, removed: g.removed, channels: g.channels }));
      const stacked = rows.flatMap((r) => [{ group: r.group, part: 'kept', n: r.kept, channels: r.channels }, { group: r.group, part: 'removed', n: r.removed, channels: r.channels }]);
      root.append(el('h4', {}, 'Pruned channels per group'), Plot.plot({
        width: 760, height: Math.max(80, 16 * rows.length + 60), marginLeft: 300, color: { legend: true, domain: ['kept', 'removed'], range: ['steelblue', 'crimson'] },
        y: { label: null, domain: rows.map((r) => r.group) }, x: { label: 'channels', grid: true },
        marks: [Plot.barX(stacked, { x: 'n', y: 'group', fill: 'part', title: (d) => `${d.group}\n${d.part} ${d.n} of ${d.channels}\njob ${job.id}`, tip: true, className: 'mark-pruned-channels' })],
      }));
    }
    if (L.palette.length) {
      root.append(el('h4', {}, 'Look-up tables: entries per tensor (distinct values on hover)'),
        barChart(L.palette.map((p) => ({ ...p, entries: p.lutSize })), 'entries', 'name', { xLabel: 'LUT entries (all groups)', mark: 'lut', fill: 'seagreen', title: (d) => `${d.name}\n${d.bits}-bit, ${d.groups} group(s), ${d.lutSize} entries\n${d.distinct} distinct values before · SQNR ${fmt(num(d.sqnrDb), 1)} dB\njob ${job.id}` }));
    }
    const ex = suggestedExclusions(job);
    root.append(el('h4', {}, 'Suggested exclusions'));
    if (ex.length) {
      root.append(el('ul', { class: 'exclusions' }, ...ex.map((x) => el('li', {}, el('code', {}, x.node), ` — ${x.why}`))),
        el('p', {}, 'to keep them in float: ', el('code', {}, `--exclude ${ex.map((x) => x.node).join(' ')}`)));
    } else {
      root.append(el('p', {}, L.sensitivity && L.sensitivity.length ? 'none: no layer alone costs more than 0.1 points (or, without labels, brings the output under 30 dB).' : 'none: no layer below 20 dB weight SQNR, and no sensitivity ranking in this job (static W8A8 with a gate ranks layers).'));
    }
  }

  function modelSections(root) {
    const byModel = new Map();
    for (const j of Object.values(jobs)) {
      if (!byModel.has(j.model)) byModel.set(j.model, []);
      byModel.get(j.model).push(j);
    }
    for (const [model, list] of byModel) {
      const sec = el('section', { class: 'model', 'data-model': base(model) }, el('h3', {}, base(model)));
      const sel = el('select', { class: 'job-select' });
      for (const j of list) sel.append(el('option', { value: j.id }, `${j.recipe.name} (${j.id}${j.status === 'done' ? '' : `, ${j.status}`})`));
      const panels = el('div', { class: 'panels' });
      sel.addEventListener('change', () => layerPanels(panels, jobs[sel.value]));
      sec.append(el('label', {}, 'job ', sel), panels);
      root.append(sec);
      const first = list.find((j) => j.status === 'done') || list[0];
      sel.value = first.id;
      layerPanels(panels, first);
    }
  }

  const main = document.getElementById('report');
  if (summary) {
    const c = summary.counts;
    const goals = Object.entries(summary.goals).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    main.append(el('p', { id: 'overview' }, `${c.jobs} jobs: ${c.done} done, ${c.failed} failed, ${c.missing} not run · ${c.meetGoals} meet the goals (${goals}) · ${c.slower} slower than float · Pareto front: ${summary.pareto.length}`));
    const p = el('section', { id: 'pareto' }, el('h2', {}, 'Pareto front'));
    main.append(p);
    paretoSection(p);
    const t = el('section', { id: 'jobs' }, el('h2', {}, 'All jobs (click a column to sort)'));
    main.append(t);
    jobTable(t);
  }
  if (!summary) {
    // A single compress run: its totals instead of a scatter.
    for (const j of Object.values(jobs)) {
      const c = j.compress;
      const q = j.quality;
      main.append(el('p', { id: 'overview' }, `${c.passes.join(' → ')} · ${(c.bytesBefore / 1e6).toFixed(2)} MB → ${(c.bytesAfter / 1e6).toFixed(2)} MB (${(100 * c.sizeRatio).toFixed(1)} % of the input)`
        + ` · MACs ${c.macsBefore ? `${(100 * c.macsAfter / c.macsBefore).toFixed(1)} %` : '–'} · worst weight SQNR ${fmt(num(c.worstSqnrDb), 1)} dB`
        + (q ? ` · ${q.metric} ${fmt(q.value, 2)} (float ${fmt(q.baseline, 2)}, drop ${fmt(q.dropPoints, 2)} points on ${q.samples} samples)` : ' · not evaluated (add --eval-data)')));
    }
  }
  const m = el('section', { id: 'layers' }, el('h2', {}, 'Per model: layers'));
  main.append(m);
  modelSections(m);
  document.body.setAttribute('data-rendered', 'true');
})();
