// Line charts (SVG) of the in-server history: the last 15 minutes, one
// point per second.
import { h, s } from './dom.js';

const VW = 420, VH = 190, L = 54, R = 10, T = 10, B = 22;

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// series: [{name, colour, points: [[time_ms, value|null]...], dots}]
export function lineChart({ title, series, format, windowMs, now, testid }) {
  const t1 = now, t0 = now - windowMs;
  const values = series.flatMap((se) => se.points.map((p) => p[1]).filter((v) => v !== null && v !== undefined));
  const max = niceMax(Math.max(0, ...values));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (VW - L - R);
  const y = (v) => T + (1 - v / max) * (VH - T - B);

  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${VW} ${VH}` });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(s('line', { class: 'grid', x1: L, x2: VW - R, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  // At most six time labels, on round steps.
  const step = [10e3, 30e3, 60e3, 120e3, 300e3].find((st) => windowMs / st <= 6) || 300e3;
  for (let ago = 0; ago <= windowMs; ago += step) {
    const label = ago === 0 ? 'now' : ago < 60e3 ? `-${ago / 1e3}s` : `-${ago / 60e3}m`;
    svg.append(s('text', { class: 'axis', x: x(t1 - ago), y: VH - 6, 'text-anchor': ago === 0 ? 'end' : 'middle' }, label));
  }
  for (const se of series) {
    const pts = se.points.filter((p) => p[1] !== null && p[1] !== undefined && p[0] >= t0);
    if (se.dots) {
      for (const [t, v] of pts) svg.append(s('circle', { cx: x(t), cy: y(v), r: 3.5, fill: se.colour }, s('title', {}, format(v))));
      continue;
    }
    // Gaps (no value) break the line.
    let run = [];
    const flush = () => {
      if (run.length > 1) svg.append(s('polyline', { class: 'line', points: run.join(' '), stroke: se.colour }));
      else if (run.length === 1) { const [px, py] = run[0].split(','); svg.append(s('circle', { cx: px, cy: py, r: 2, fill: se.colour })); }
      run = [];
    };
    for (const p of se.points) {
      if (p[0] < t0) continue;
      if (p[1] === null || p[1] === undefined) { flush(); continue; }
      run.push(`${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    }
    flush();
  }
  const last = series.map((se) => {
    const v = [...se.points].reverse().find((p) => p[1] !== null && p[1] !== undefined);
    return h('span.legend-item', {}, h('span.swatch', { style: { background: se.colour } }), `${se.name} `, h('b', {}, v ? format(v[1]) : '—'));
  });
  return h('div.chart-card', { 'data-testid': testid }, h('div.chart-head', {}, h('h3', {}, title), h('div.legend', {}, last)), svg);
}
