// Draws a pipeline's DAG (GET /pipelines/{name}/graph) as SVG: one column
// per depth from the sources, nodes with their type, parallelism, live
// rows/s and watermark lag, edges coloured by backpressure.
import { s } from './dom.js';
import * as fmt from './format.js';

const W = 210, H = 78, GAP_X = 90, GAP_Y = 26, PAD = 20;

export const EDGE_COLOURS = { idle: '#b4bcc6', none: '#2f9e62', low: '#e3a008', high: '#d64545' };

function layout(nodes) {
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const depth = nodes.map(() => 0);
  // Nodes come in topological order: one pass settles every depth.
  nodes.forEach((n, i) => {
    for (const from of n.inputs) depth[i] = Math.max(depth[i], depth[index.get(from)] + 1);
  });
  const columns = [];
  nodes.forEach((n, i) => { (columns[depth[i]] ||= []).push(i); });
  const tallest = Math.max(...columns.map((c) => c.length));
  const pos = new Map();
  columns.forEach((col, d) => {
    const offset = ((tallest - col.length) * (H + GAP_Y)) / 2;
    col.forEach((i, row) => {
      pos.set(nodes[i].id, { x: PAD + d * (W + GAP_X), y: PAD + offset + row * (H + GAP_Y) });
    });
  });
  return {
    pos,
    width: PAD * 2 + columns.length * W + (columns.length - 1) * GAP_X,
    height: PAD * 2 + tallest * H + (tallest - 1) * GAP_Y,
  };
}

function nodeLine(n, running) {
  if (!running) return 'stopped';
  if (n.role === 'source') return fmt.rate(n.rows_out_per_second) + ' out';
  if (n.role === 'sink') return fmt.rate(n.rows_in_per_second) + ' in';
  return fmt.rate(n.rows_in_per_second) + ' → ' + fmt.rate(n.rows_out_per_second);
}

function nodeDetail(n, running) {
  if (!running) return '';
  const parts = [];
  if (n.watermark_lag_ms !== null && n.watermark_lag_ms !== undefined) parts.push('wm lag ' + fmt.millis(n.watermark_lag_ms));
  if (n.role === 'sink' && n.latency_p99_seconds !== null && n.latency_p99_seconds !== undefined) parts.push('p99 ' + fmt.seconds(n.latency_p99_seconds));
  if (n.data_errors) parts.push(fmt.count(n.data_errors) + ' errors');
  return parts.join(' · ');
}

export function renderDag(graph) {
  const { pos, width, height } = layout(graph.nodes);
  const svg = s('svg', {
    class: 'dag', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `DAG of ${graph.pipeline}`,
  });
  const defs = s('defs');
  for (const [level, colour] of Object.entries(EDGE_COLOURS)) {
    defs.append(s('marker', { id: 'arrow-' + level, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
      s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: colour })));
  }
  svg.append(defs);

  for (const e of graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const level = graph.running ? (e.backpressure || 'none') : 'idle';
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x - 2, y2 = b.y + H / 2;
    const mid = (x1 + x2) / 2;
    const path = s('path', {
      class: 'edge edge-' + level, d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`,
      stroke: EDGE_COLOURS[level], 'marker-end': `url(#arrow-${level})`,
      'data-from': e.from, 'data-to': e.to,
    }, s('title', {}, `${e.from} → ${e.to}` + (e.port ? ` (side output ${e.port})` : '') +
      (graph.running ? `\nbackpressure: ${e.backpressure} (${fmt.rate(e.backpressure_per_second)})` : '')));
    svg.append(path);
    if (graph.running && e.backpressure_per_second > 0) {
      svg.append(s('text', { class: 'edge-label', x: mid, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, 'bp ' + fmt.rate(e.backpressure_per_second)));
    }
  }

  for (const n of graph.nodes) {
    const p = pos.get(n.id);
    const g = s('g', { class: `node node-${n.role}`, transform: `translate(${p.x},${p.y})`, 'data-node': n.id });
    g.append(
      s('title', {}, `${n.id} (${n.role}, ${n.type}) ×${n.parallelism}` +
        (graph.running ? `\nrows in ${fmt.count(n.rows_in)}, out ${fmt.count(n.rows_out)}\nbackpressure events ${fmt.count(n.backpressure_events)}` +
          (n.watermark ? `\nwatermark ${n.watermark}` : '') : '')),
      s('rect', { class: 'node-box', width: W, height: H, rx: 8 }),
      s('rect', { class: 'node-stripe', width: 6, height: H, rx: 3 }),
      s('text', { class: 'node-id', x: 16, y: 22 }, n.id),
      s('text', { class: 'node-par', x: W - 12, y: 22, 'text-anchor': 'end' }, '×' + n.parallelism),
      s('text', { class: 'node-type', x: 16, y: 40 }, `${n.role} · ${n.type}`),
      s('text', { class: 'node-rate', x: 16, y: 58 }, nodeLine(n, graph.running)),
      s('text', { class: 'node-detail', x: 16, y: 71 }, nodeDetail(n, graph.running)),
    );
    svg.append(g);
  }
  return svg;
}
