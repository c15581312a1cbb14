// The DataFlow web console: a single page over the REST API (/api/v1).
// Views (hash routes): #/ pipelines, #/new submit, #/pipelines/NAME/TAB with
// TAB one of overview (DAG + charts), runs (with healing events),
// checkpoints (rollback), log (the run's WebSocket stream), edit.
import { api, whoami, allows, parseProblem, streamRun, setAuthorization, authorization, onLoginNeeded } from './api.js';
import { h, clear } from './dom.js';
import * as fmt from './format.js';
import { renderDag, EDGE_COLOURS } from './dag.js';
import { lineChart } from './charts.js';

const main = document.getElementById('main');
const state = { me: { permissions: ['*'], open: true }, timers: [], socket: null, route: 0 };

// ---- permissions: a viewer sees no mutating buttons
function can(action) { return allows(state.me.permissions, action); }
function guarded(action, el) { return can(action) ? el : null; }

// ---- refresh loops and the live log stop when the view changes
function every(ms, fn) {
  const route = state.route;
  let busy = false;
  const tick = async () => {
    if (busy || route !== state.route) return;
    busy = true;
    try { await fn(); } catch (e) { showError(e); } finally { busy = false; }
  };
  state.timers.push(setInterval(tick, ms));
  return tick();
}
function leaveView() {
  state.route++;
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
}

// ---- toasts and dialogs
function toast(message, kind = 'info') {
  const el = h('div.toast.toast-' + kind, { role: 'status' }, message);
  document.getElementById('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}
function showError(e) {
  const details = e && e.details && e.details.length ? ': ' + e.details.join('; ') : '';
  toast((e && e.message ? e.message : String(e)) + details, 'error');
}

function modal(title, body, buttons) {
  return new Promise((resolve) => {
    const close = (value) => { overlay.remove(); resolve(value); };
    const overlay = h('div.overlay', {},
      h('div.dialog', { role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
        h('h2', {}, title), body,
        h('div.dialog-buttons', {}, buttons.map((b) => h('button.btn' + (b.primary ? '.btn-primary' : '') + (b.danger ? '.btn-danger' : ''),
          { type: b.submit ? 'submit' : 'button', 'data-action': b.id, onclick: async () => close(b.value ? await b.value() : b.id) }, b.label)))));
    overlay.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(null); });
    document.body.append(overlay);
    const first = overlay.querySelector('input, .btn-primary, .btn-danger');
    if (first) first.focus();
  });
}

function confirmDialog(title, text, label, danger = true) {
  return modal(title, h('p', {}, text), [
    { id: 'cancel', label: 'Cancel' },
    { id: 'confirm', label, primary: !danger, danger },
  ]).then((v) => v === 'confirm');
}

let loginOpen = null;
let loginDeclined = false;  // until "Sign in" is clicked again: no form on every refresh
onLoginNeeded(() => {
  // Several calls may get 401 at once: one form answers them all.
  if (loginOpen) return loginOpen;
  if (loginDeclined) return Promise.resolve(false);
  const token = h('input#login-token', { type: 'password', autocomplete: 'off', placeholder: 'API key or JWT' });
  const user = h('input#login-user', { autocomplete: 'username', placeholder: 'user' });
  const password = h('input#login-password', { type: 'password', autocomplete: 'current-password', placeholder: 'password' });
  const body = h('div.login', {},
    h('p.muted', {}, 'The server asks for credentials. They are kept for this tab only.'),
    h('label', {}, 'Token', token),
    h('div.or', {}, 'or'),
    h('label', {}, 'User', user),
    h('label', {}, 'Password', password));
  loginOpen = modal('Sign in', body, [
    { id: 'cancel', label: 'Cancel', value: () => false },
    { id: 'login', label: 'Sign in', primary: true, value: () => {
      if (token.value.trim()) setAuthorization('Bearer ' + token.value.trim());
      else if (user.value) setAuthorization('Basic ' + btoa(unescape(encodeURIComponent(user.value + ':' + password.value))));
      else return false;
      return true;
    } },
  ]).then((ok) => { loginOpen = null; loginDeclined = !ok; if (ok) refreshIdentity(); return !!ok; });
  return loginOpen;
});

async function refreshIdentity() {
  try { state.me = await whoami(); } catch { state.me = { principal: '', roles: [], permissions: [], open: false }; }
  const who = document.getElementById('who');
  clear(who);
  if (!state.me.open) {
    who.append(h('span.principal', {}, state.me.principal || 'signed out'),
      state.me.roles.length ? h('span.muted', {}, ' (' + state.me.roles.join(', ') + ')') : null,
      authorization()
        ? h('button.btn.btn-small.btn-ghost', { onclick: () => { setAuthorization(''); location.reload(); } }, 'Sign out')
        : h('button.btn.btn-small.btn-ghost', { onclick: () => { loginDeclined = false; refreshIdentity().then(route); } }, 'Sign in'));
  }
}

// ---- shared bits
function badge(status) { return h('span.badge.badge-' + (status || 'none'), { 'data-status': status }, status || '—'); }
function page(title, actions, ...content) {
  return h('section.page', {}, h('div.page-head', {}, h('h1', {}, title), h('div.actions', {}, actions)), content);
}
function table(headers, rows, cls = '') {
  return h('table' + cls, {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows));
}
function enc(name) { return encodeURIComponent(name); }
function show(view) { clear(main).append(view); }

async function action(fn, done) {
  try { await fn(); if (done) toast(done, 'ok'); } catch (e) { showError(e); }
}

// ---- pipeline list
async function listView() {
  const body = h('tbody');
  const view = page('Pipelines', [guarded('pipeline:create', h('a.btn.btn-primary', { href: '#/new', id: 'new-pipeline' }, 'New pipeline'))],
    h('div.card', {}, h('table.list#pipelines', {},
      h('thead', {}, h('tr', {}, ['Pipeline', 'Status', 'Version', 'Throughput', 'Last checkpoint', 'Restarts', ''].map((x) => h('th', {}, x)))), body)));
  show(view);
  await every(2000, async () => {
    const { pipelines } = await api('GET', '/pipelines');
    const rows = await Promise.all(pipelines.map(async (p) => {
      const [run, history, checkpoints] = await Promise.all([
        p.current_run ? api('GET', '/runs/' + enc(p.current_run)).catch(() => null) : null,
        p.status === 'running' ? api('GET', `/pipelines/${enc(p.name)}/history`).catch(() => null) : null,
        api('GET', `/pipelines/${enc(p.name)}/checkpoints`).catch(() => null),
      ]);
      const last = history && history.samples.length ? history.samples[history.samples.length - 1] : null;
      const newest = checkpoints && checkpoints.checkpoints.length ? checkpoints.checkpoints[0] : null;
      return h('tr', { 'data-pipeline': p.name },
        h('td', {}, h('a.name', { href: `#/pipelines/${enc(p.name)}` }, p.name)),
        h('td', {}, badge(p.status)),
        h('td', {}, 'v' + p.version),
        h('td.num.throughput', {}, last && last.running ? fmt.rate(last.rows_per_second) : '—'),
        h('td', {}, newest ? h('span', { title: fmt.time(newest.time) }, `#${newest.id} · ${fmt.ago(newest.time)}`) : '—'),
        h('td.num', {}, run ? String(run.restarts) : '—'),
        h('td.row-actions', {},
          p.status === 'running'
            ? guarded('run:stop', h('button.btn.btn-small', { onclick: () => action(() => api('POST', `/pipelines/${enc(p.name)}/stop`), `Stopping ${p.name}`) }, 'Stop'))
            : guarded('run:start', h('button.btn.btn-small', { onclick: () => action(() => api('POST', `/pipelines/${enc(p.name)}/start`), `Started ${p.name}`) }, 'Start'))));
    }));
    clear(body).append(...rows);
    if (!rows.length) body.append(h('tr', {}, h('td.empty', { colspan: 7 }, 'No pipelines yet.', can('pipeline:create') ? [' ', h('a', { href: '#/new' }, 'Submit one.')] : null)));
  });
}

// ---- pipeline detail
const TABS = [['overview', 'Overview'], ['runs', 'Runs'], ['checkpoints', 'Checkpoints'], ['log', 'Live log'], ['edit', 'Spec']];

async function detailView(name, tab) {
  const head = h('div.detail-head');
  const content = h('div.tab-content');
  const nav = h('nav.tabs', {}, TABS.map(([id, label]) =>
    h('a.tab' + (id === tab ? '.active' : ''), { href: `#/pipelines/${enc(name)}/${id}`, 'data-tab': id }, label)));
  show(h('section.page', {}, head, nav, content));
  let pipeline = await api('GET', '/pipelines/' + enc(name));
  const renderHead = (p) => {
    const running = p.status === 'running';
    clear(head).append(
      h('div', {}, h('a.crumb', { href: '#/' }, 'Pipelines'), h('h1', {}, p.name, ' ', badge(p.status)),
        h('div.muted', {}, `version ${p.version} · updated ${fmt.ago(p.updated)}`, p.current_run ? [' · run ', h('code', {}, p.current_run)] : null)),
      h('div.actions', {},
        running ? guarded('checkpoint:create', h('button.btn#checkpoint-now', { onclick: () => action(() => api('POST', `/pipelines/${enc(name)}/checkpoints`), 'Checkpoint requested') }, 'Checkpoint now')) : null,
        running
          ? guarded('run:stop', h('button.btn#stop', { onclick: () => action(() => api('POST', `/pipelines/${enc(name)}/stop`), 'Stopping with a final checkpoint') }, 'Stop'))
          : guarded('run:start', h('button.btn.btn-primary#start', { onclick: () => action(() => api('POST', `/pipelines/${enc(name)}/start`), 'Started') }, 'Start')),
        !running ? guarded('pipeline:delete', h('button.btn.btn-danger#delete', { onclick: async () => {
          if (!await confirmDialog('Delete pipeline', `Delete ${name} with its versions, runs and checkpoints? This cannot be undone.`, 'Delete')) return;
          await action(async () => { await api('DELETE', '/pipelines/' + enc(name)); location.hash = '#/'; }, `Deleted ${name}`);
        } }, 'Delete')) : null));
  };
  renderHead(pipeline);
  const reloadHead = async () => { pipeline = await api('GET', '/pipelines/' + enc(name)); renderHead(pipeline); return pipeline; };
  const views = { overview: overviewTab, runs: runsTab, checkpoints: checkpointsTab, log: logTab, edit: editTab };
  await (views[tab] || overviewTab)(name, content, reloadHead, pipeline);
}

async function overviewTab(name, content, reloadHead) {
  const stats = h('div.stats');
  const dag = h('div.card.dag-card', {}, h('div.card-head', {}, h('h2', {}, 'Dataflow graph'), edgeLegend()), h('div.dag-scroll#dag'));
  const charts = h('div.charts');
  content.append(stats, dag, charts);
  let ticks = 0;
  await every(1000, async () => {
    const [graph, history] = await Promise.all([
      api('GET', `/pipelines/${enc(name)}/graph`), api('GET', `/pipelines/${enc(name)}/history`)]);
    if (ticks++ % 3 === 0) await reloadHead();
    clear(dag.querySelector('#dag')).append(renderDag(graph));
    const last = history.samples.length ? history.samples[history.samples.length - 1] : null;
    const live = graph.running && last && last.running;
    const stat = (label, value, id) => h('div.stat', { 'data-stat': id }, h('div.stat-label', {}, label), h('div.stat-value', {}, value));
    clear(stats).append(
      stat('Throughput', live ? fmt.rate(last.rows_per_second) : '—', 'throughput'),
      stat('Latency p99', live ? fmt.seconds(last.latency_p99_seconds) : '—', 'latency'),
      stat('Backpressure', live ? fmt.rate(last.backpressure_per_second) : '—', 'backpressure'),
      stat('Fullest channel', graph.channels ? Math.round(graph.channels.fill * 100) + '%' : '—', 'fill'));
    const now = Date.now();
    // Zoomed to the samples there are: from one minute up to the whole window (15 min).
    const first = history.samples.length ? history.samples[0].time_ms : now;
    const windowMs = Math.min((history.window_seconds || 900) * 1000, Math.max(60e3, now - first));
    const pts = (key) => history.samples.map((x) => [x.time_ms, x.running ? x[key] : null]);
    clear(charts).append(
      lineChart({ title: 'Throughput (rows/s)', series: [{ name: 'rows/s', colour: '#2563eb', points: pts('rows_per_second') }], format: fmt.rate, windowMs, now, testid: 'chart-throughput' }),
      lineChart({ title: 'Sink latency', series: [
        { name: 'p50', colour: '#0ea5a4', points: pts('latency_p50_seconds') },
        { name: 'p99', colour: '#c2410c', points: pts('latency_p99_seconds') }], format: fmt.seconds, windowMs, now, testid: 'chart-latency' }),
      lineChart({ title: 'Checkpoint duration', series: [{ name: 'duration', colour: '#7c3aed', points: pts('checkpoint_seconds'), dots: true }], format: fmt.seconds, windowMs, now, testid: 'chart-checkpoints' }));
  });
}

function edgeLegend() {
  const item = (level, label) => h('span.legend-item', {}, h('span.swatch', { style: { background: EDGE_COLOURS[level] } }), label);
  return h('div.legend', {}, item('none', 'flowing'), item('low', 'some backpressure'), item('high', 'backpressured'), item('idle', 'stopped'));
}

async function runsTab(name, content, reloadHead) {
  const list = h('div.card');
  content.append(list);
  const open = new Set();
  let first = true;
  const refresh = async () => {
    const [{ runs }] = await Promise.all([api('GET', `/pipelines/${enc(name)}/runs`), reloadHead()]);
    if (first && runs.length) open.add(runs[0].id);
    first = false;
    const events = new Map(await Promise.all([...open].map(async (id) =>
      [id, (await api('GET', `/runs/${enc(id)}/events`).catch(() => ({ events: [] }))).events])));
    const rows = [];
    for (const r of runs) {
      const live = r.status === 'running' || r.status === 'pending';
      rows.push(h('tr', { 'data-run': r.id, 'data-status': r.status },
        h('td', {}, h('button.btn-link', { onclick: () => { if (!open.delete(r.id)) open.add(r.id); refresh().catch(showError); } },
          open.has(r.id) ? '▾ ' : '▸ ', h('code', {}, r.id))),
        h('td', {}, badge(r.status)), h('td', {}, 'v' + r.version),
        h('td', {}, fmt.time(r.started)), h('td', {}, fmt.time(r.ended)),
        h('td.num', {}, String(r.checkpoints)), h('td.num', {}, String(r.restarts)),
        h('td.error-text', {}, r.error || ''),
        h('td.row-actions', {}, live ? guarded('run:cancel', h('button.btn.btn-small.btn-danger.cancel-run', { onclick: async () => {
          if (!await confirmDialog('Cancel run', `Cancel run ${r.id}? It stops at the next safe point; a later start resumes from its last checkpoint.`, 'Cancel run')) return;
          await action(async () => { await api('POST', `/runs/${enc(r.id)}/cancel`); await reloadHead(); }, 'Cancelling ' + r.id);
        } }, 'Cancel')) : null)));
      if (open.has(r.id)) {
        const ev = events.get(r.id) || [];
        rows.push(h('tr.events-row', {}, h('td', { colspan: 9 }, ev.length
          ? table(['Time', 'Class', 'Action', 'Node', 'Attempt', 'Delay', 'Message'], ev.map((e) => h('tr', {},
            h('td', {}, fmt.time(e.time)), h('td', {}, e.class), h('td', {}, h('span.pill', {}, e.action)), h('td', {}, e.node || ''),
            h('td.num', {}, e.attempt ?? ''), h('td.num', {}, e.delay_ms ? fmt.millis(e.delay_ms) : ''), h('td', {}, e.message))), '.events')
          : h('div.muted.pad', {}, 'No self-healing events in this run.'))));
      }
    }
    clear(list).append(runs.length
      ? table(['Run', 'Status', 'Version', 'Started', 'Ended', 'Checkpoints', 'Restarts', 'Error', ''], rows, '.list#runs')
      : h('div.empty', {}, 'This pipeline has not run yet.'));
  };
  await every(2000, refresh);
}

async function checkpointsTab(name, content, reloadHead) {
  const list = h('div.card');
  content.append(list);
  await every(2000, async () => {
    const [{ checkpoints }, p] = await Promise.all([api('GET', `/pipelines/${enc(name)}/checkpoints`), reloadHead()]);
    const running = p.status === 'running';
    const rows = checkpoints.map((c) => h('tr', { 'data-checkpoint': c.id, class: c.current ? 'current' : '' },
      h('td.num', {}, '#' + c.id), h('td', {}, fmt.time(c.time)), h('td', {}, c.kind || '—'),
      h('td.num', {}, fmt.bytes(c.size_bytes)), h('td.num', {}, c.duration_ms !== undefined ? fmt.millis(c.duration_ms) : '—'),
      h('td', {}, c.current ? h('span.pill.pill-current', {}, 'current') : '', c.valid === false ? h('span.pill.pill-bad', { title: c.problem || '' }, 'invalid') : ''),
      h('td.row-actions', {}, !c.current ? guarded('checkpoint:rollback', h('button.btn.btn-small.rollback', {
        disabled: running, title: running ? 'Stop the pipeline to roll back' : null,
        onclick: async () => {
          if (!await confirmDialog('Roll back', `Make checkpoint #${c.id} (${fmt.time(c.time)}) the current one? The next start of ${name} resumes from it.`, 'Roll back')) return;
          await action(async () => { const r = await api('POST', `/pipelines/${enc(name)}/rollback`, { body: { id: c.id } }); toast(`Checkpoint #${r.current} is current`, 'ok'); });
        } }, 'Roll back')) : null)));
    clear(list);
    if (!checkpoints.length) list.append(h('div.empty', {}, 'No checkpoints yet.'));
    else {
      if (running && can('checkpoint:rollback')) list.append(h('div.note', {}, 'Stop the pipeline to roll back to an earlier checkpoint.'));
      list.append(table(['Id', 'Time', 'Kind', 'Size', 'Duration', '', ''], rows, '.list#checkpoints'));
    }
  });
}

async function logTab(name, content, reloadHead, pipeline) {
  const lines = h('div.log#log', { role: 'log' });
  const status = h('div.log-status.muted');
  content.append(h('div.card', {}, h('div.card-head', {}, h('h2', {}, 'Live log'), status), lines));
  const runId = pipeline.current_run;
  if (!runId) { status.textContent = 'No run yet.'; return; }
  status.textContent = 'Connecting to run ' + runId + '…';
  const append = (el) => {
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
    lines.append(el);
    while (lines.childElementCount > 2000) lines.firstChild.remove();
    if (atBottom) lines.scrollTop = lines.scrollHeight;
  };
  // Lines before the first status are the run's recent ones, replayed.
  let live = false;
  state.socket = streamRun(runId, (m) => {
    if (m.type === 'status') {
      live = true;
      status.textContent = `run ${m.run.id}: ${m.run.status}` + (m.run.error ? ' — ' + m.run.error : '');
      append(h('div.line.line-status', {}, h('span.t', {}, fmt.time(new Date().toISOString())), ' status ', h('b', {}, m.run.status)));
    } else if (m.type === 'event') {
      const e = m.event;
      append(h('div.line.line-event', {}, h('span.t', {}, fmt.time(e.time)), ` healing ${e.class} → ${e.action}`, e.node ? ` at ${e.node}` : '', ': ', e.message));
    } else if (m.type === 'log') {
      const l = m.log;
      const level = (l.level || 'info').toLowerCase();
      append(h('div.line.line-' + level + (live ? '' : '.line-recent'), {}, h('span.t', {}, fmt.time(l.time || l.ts)), ' ', h('span.lvl', {}, level), ' ',
        l.component ? h('span.comp', {}, l.component + ' ') : null, l.message || l.msg || JSON.stringify(l)));
    }
  }, () => { status.textContent += ' (stream closed)'; });
}

// ---- submit / edit with problems shown at their lines
const TEMPLATE = `name: my-pipeline
checkpoint: {interval: 10s}
sources:
  - id: events
    type: generator
    rate: 1000
    fields: {id: "i", value: "i % 100"}
sinks:
  - id: out
    type: blackhole
    input: events
`;

function editor(text) {
  const gutter = h('div.gutter', { 'aria-hidden': 'true' });
  const area = h('textarea#spec', { spellcheck: 'false', wrap: 'off', 'aria-label': 'pipeline file' });
  area.value = text;
  const problems = h('ul.problems#problems');
  let marks = new Map();
  const paint = () => {
    const n = area.value.split('\n').length;
    clear(gutter);
    for (let i = 1; i <= n; i++) {
      const msg = marks.get(i);
      gutter.append(h('div.ln' + (msg ? '.ln-error' : ''), { 'data-line': i, title: msg || null }, String(i)));
    }
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener('input', paint);
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  const goTo = (line, column) => {
    const all = area.value.split('\n');
    let pos = 0;
    for (let i = 0; i < line - 1 && i < all.length; i++) pos += all[i].length + 1;
    area.focus();
    area.setSelectionRange(pos + Math.max(0, (column || 1) - 1), pos + (all[line - 1] || '').length);
    area.scrollTop = Math.max(0, (line - 3) * 20);
  };
  const setProblems = (list) => {
    marks = new Map();
    clear(problems);
    for (const text of list) {
      const p = parseProblem(text);
      if (p.line) marks.set(p.line, (marks.get(p.line) ? marks.get(p.line) + '\n' : '') + p.message);
      problems.append(h('li.problem', { 'data-line': p.line ?? '' },
        p.line ? h('button.btn-link', { onclick: () => goTo(p.line, p.column) }, `line ${p.line}, column ${p.column}`) : null,
        p.line ? ': ' : '', p.message));
    }
    paint();
  };
  paint();
  return { el: h('div.editor-wrap', {}, h('div.editor', {}, gutter, area), problems), area, setProblems };
}

function formatOf(text) { return /^\s*[{[]/.test(text) ? 'json' : 'yaml'; }

async function editorView() {
  const ed = editor(TEMPLATE);
  const start = h('input#start-after', { type: 'checkbox', checked: true });
  const submit = h('button.btn.btn-primary#submit', { type: 'submit' }, 'Create pipeline');
  const form = h('form.card.pad', { onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const text = ed.area.value;
      const p = await api('POST', '/pipelines' + (start.checked ? '?start=true' : ''), { body: text, contentType: formatOf(text) === 'json' ? 'application/json' : 'application/yaml' });
      toast(`Created ${p.name}` + (start.checked ? ' and started it' : ''), 'ok');
      location.hash = `#/pipelines/${enc(p.name)}/overview`;
    } catch (err) {
      ed.setProblems(err.details && err.details.length ? err.details : [err.message]);
      toast(err.message, 'error');
    } finally { submit.disabled = false; }
  } }, h('p.muted', {}, 'A pipeline file (YAML or JSON, docs/pipeline-format.md). Problems are shown at their line.'), ed.el,
    h('div.form-foot', {}, h('label.check', {}, start, ' Start after saving'), submit));
  show(page('New pipeline', [h('a.btn', { href: '#/' }, 'Cancel')], form));
}

async function editTab(name, content, reloadHead, pipeline) {
  const ed = editor(pipeline.spec || '');
  const allowLoss = h('input#allow-state-loss', { type: 'checkbox' });
  const save = h('button.btn.btn-primary#save', { type: 'submit' }, 'Save new version');
  const canEdit = can('pipeline:update');
  ed.area.readOnly = !canEdit;
  const form = h('form.card.pad', { onsubmit: async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const text = ed.area.value;
      const q = allowLoss.checked ? '?allow_state_loss=true' : '';
      const p = await api('PUT', `/pipelines/${enc(name)}${q}`, { body: text, contentType: formatOf(text) === 'json' ? 'application/json' : 'application/yaml', headers: { 'If-Match': pipeline.etag } });
      pipeline = p;
      ed.setProblems([]);
      toast(`Saved version ${p.version}`, 'ok');
      await reloadHead();
    } catch (err) {
      ed.setProblems(err.details && err.details.length ? err.details : [err.message]);
      toast(err.message, 'error');
    } finally { save.disabled = false; }
  } }, ed.el, canEdit ? h('div.form-foot', {}, h('label.check', { title: 'Needed when a stateful node changes or goes' }, allowLoss, ' Allow dropping operator state'), save) : null);
  content.append(form);
}

// ---- routing
async function route() {
  leaveView();
  document.querySelectorAll('.toast-error').forEach((t) => t.remove());  // about the view just left
  const hash = location.hash.replace(/^#/, '') || '/';
  const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
  document.querySelectorAll('.topnav a').forEach((a) => a.classList.toggle('active', hash === '/' ? a.dataset.nav === 'list' : parts[0] === a.dataset.nav));
  try {
    if (parts.length === 0) await listView();
    else if (parts[0] === 'new') await editorView();
    else if (parts[0] === 'pipelines' && parts[1]) await detailView(parts[1], parts[2] || 'overview');
    else show(page('Not found', [], h('p', {}, 'No such view. ', h('a', { href: '#/' }, 'Back to the pipelines.'))));
  } catch (e) {
    show(page('Error', [h('a.btn', { href: '#/' }, 'Pipelines')], h('div.card.pad.error-text', {}, e.message, e.details && e.details.length ? h('ul', {}, e.details.map((d) => h('li', {}, d))) : null)));
  }
}

window.addEventListener('hashchange', route);
refreshIdentity().then(route);
