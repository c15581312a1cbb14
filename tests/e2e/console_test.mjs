#!/usr/bin/env node
// End-to-end test of the web console: a real `dataflow run` on 127.0.0.1,
// Debian's headless Chromium driven by playwright-core. Through the UI it
// submits a pipeline with a mistake (the problem shows at its line), fixes
// it and sees it run with non-zero throughput, reads the live log, cancels
// the run and rolls a checkpoint back. Saves a screenshot of each view in
// --out (screenshots/*.png) and the server's log (server.log).
//
//   node tests/e2e/console_test.mjs --dataflow build/bin/dataflow --out /tmp/console-e2e
//
// Needs tests/support/console/install.sh (playwright-core) and
// /usr/bin/chromium (scripts/install-deps.sh). Exit 0 on success, 1 on
// failure (with the failing step, a screenshot and the server log).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const dataflow = args.dataflow && path.resolve(args.dataflow);
const outDir = path.resolve(args.out || 'console-e2e');
const chromiumPath = args.chromium || '/usr/bin/chromium';
if (!dataflow || !fs.existsSync(dataflow)) fail(`--dataflow: no binary at ${dataflow}`);
if (!fs.existsSync(chromiumPath)) fail(`${chromiumPath} is missing: apt-get install chromium (scripts/install-deps.sh)`);
const require = createRequire(path.join(here, '../support/console/package.json'));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch {
  fail('playwright-core is missing: run tests/support/console/install.sh');
}

const STEP_TIMEOUT = 30000;
const shots = path.join(outDir, 'screenshots');
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(shots, { recursive: true });

function fail(message) {
  console.error('e2e_console: FAILED: ' + message);
  process.exit(1);
}
function log(message) { console.log(`[${new Date().toISOString().slice(11, 23)}] ${message}`); }

// Ports of 127.0.0.1 free a moment ago.
async function freePorts(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function waitFor(what, fn, timeout = STEP_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}` + (last ? `: ${last.message}` : ''));
}

// ---- the server
async function startServer() {
  const [api, metrics, health] = await freePorts(3);
  const work = path.join(outDir, 'server');
  fs.mkdirSync(work, { recursive: true });
  const config = path.join(work, 'config.yaml');
  fs.writeFileSync(config, [
    `server: {host: 127.0.0.1, port: ${api}, data_dir: ${work}/data, shutdown_grace_period: 20s}`,
    `runtime: {workers: 2, checkpoint_storage: ${work}/checkpoints}`,
    'monitoring:',
    `  metrics: {host: 127.0.0.1, port: ${metrics}}`,
    `  health: {host: 127.0.0.1, port: ${health}}`,
    '  logging: {level: info, format: text, output: stderr}',
    '',
  ].join('\n'));
  const logFile = fs.openSync(path.join(outDir, 'server.log'), 'w');
  const child = spawn(dataflow, ['run', '--config', config], { cwd: work, stdio: ['ignore', logFile, logFile] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  await waitFor('the server to be ready', async () => {
    if (exited) throw new Error(`the server exited (${JSON.stringify(exited)}); see ${outDir}/server.log`);
    const r = await fetch(`http://127.0.0.1:${health}/health/ready`).catch(() => null);
    return r && r.status === 200;
  }, 20000);
  return {
    url: `http://127.0.0.1:${api}`,
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      await waitFor('the server to exit', async () => exited, 40000);
      return exited;
    },
  };
}

const BROKEN = `name: clicks
checkpoint: {interval: 500ms}
sources:
  - id: gen
    type: generator
    rate: 3000
    fields: {user: "i % 50", amount: "i % 1000"}
transforms:
  - id: big
    type: filtre
    input: gen
    where: "amount >= 100"
sinks:
  - id: out
    type: blackhole
    input: big
`;
const BROKEN_LINE = 10;  // "type: filtre"
const FIXED = BROKEN.replace('type: filtre', 'type: filter');

async function main() {
  log('starting the server');
  const server = await startServer();
  const api = async (method, p, body) => {
    const r = await fetch(server.url + '/api/v1' + p, { method, body, headers: body ? { 'Content-Type': 'application/json' } : {} });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  const userData = fs.mkdtempSync(path.join(outDir, 'chromium-'));
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  // API answers the console handles (404 from /whoami without authentication,
  // 400 for the invalid pipeline) show up as "Failed to load resource".
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  let step = 'opening the console';
  const shot = async (name) => page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });

  try {
    await page.goto(server.url + '/');
    await page.waitForSelector('#pipelines td.empty');
    await shot('01-pipelines-empty');

    step = 'a validation error shown at its line';
    log(step);
    await page.click('#new-pipeline');
    await page.waitForSelector('#spec');
    await page.fill('#spec', BROKEN);
    await page.click('#submit');
    await page.waitForSelector(`.gutter .ln-error[data-line="${BROKEN_LINE}"]`);
    const problem = await page.textContent(`#problems li[data-line="${BROKEN_LINE}"]`);
    if (!/filtre/.test(problem)) throw new Error(`the problem at line ${BROKEN_LINE} does not name the type: ${problem}`);
    const marked = await page.$$eval('.gutter .ln-error', (els) => els.map((e) => Number(e.dataset.line)));
    if (marked.length !== 1 || marked[0] !== BROKEN_LINE) throw new Error(`lines marked: ${marked}, expected only ${BROKEN_LINE}`);
    await shot('02-validation-error');

    step = 'submitting a pipeline through the form';
    log(step);
    await page.fill('#spec', FIXED);
    if (!await page.isChecked('#start-after')) await page.check('#start-after');
    await page.click('#submit');
    await page.waitForURL(/#\/pipelines\/clicks\/overview$/);
    await page.waitForSelector('svg.dag g[data-node="big"]');

    step = 'seeing it run with non-zero throughput';
    log(step);
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-stat="throughput"] .stat-value');
      return v && /^[0-9.]+k?\/s$/.test(v.textContent) && parseFloat(v.textContent) > 0;
    });
    await page.waitForSelector('svg.dag path.edge-none, svg.dag path.edge-low, svg.dag path.edge-high', { state: 'attached' });
    const rate = await page.textContent('svg.dag g[data-node="gen"] .node-rate');
    if (!/\d/.test(rate) || /^0\/s/.test(rate)) throw new Error(`the source shows no rows/s: ${rate}`);
    // A few seconds of history for the charts and a few checkpoints.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chart-throughput"] polyline').length > 0);
    await waitFor('three checkpoints', async () => (await api('GET', '/pipelines/clicks/checkpoints')).checkpoints.length >= 3);
    await waitFor('ten seconds of history', async () => (await api('GET', '/pipelines/clicks/history')).samples.length >= 10);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chart-checkpoints"] circle').length > 0);
    await shot('03-overview');

    await page.click('.topnav a[data-nav="list"]');
    await page.waitForFunction(() => {
      const td = document.querySelector('tr[data-pipeline="clicks"] td.throughput');
      return td && parseFloat(td.textContent) > 0;
    });
    await page.waitForSelector('tr[data-pipeline="clicks"] .badge[data-status="running"]');
    await shot('04-pipelines');

    step = 'the live log';
    log(step);
    await page.click('tr[data-pipeline="clicks"] a.name');
    await page.click('a.tab[data-tab="log"]');
    await page.waitForSelector('#log .line-status');
    await shot('05-live-log');

    step = 'cancelling the run';
    log(step);
    await page.click('a.tab[data-tab="runs"]');
    await page.waitForSelector('#runs tr[data-status="running"] .cancel-run');
    await page.click('#runs tr[data-status="running"] .cancel-run');
    await page.waitForSelector('.dialog');
    await shot('06-cancel-confirmation');
    await page.click('.dialog [data-action="confirm"]');
    await page.waitForSelector('#runs tr[data-status="cancelled"]');
    await page.waitForSelector('.detail-head .badge[data-status="stopped"]');
    await shot('07-runs');

    step = 'rolling back a checkpoint';
    log(step);
    await page.click('a.tab[data-tab="checkpoints"]');
    await page.waitForSelector('#checkpoints tr.current');
    const before = (await api('GET', '/pipelines/clicks/checkpoints')).checkpoints;
    const target = before.find((c) => !c.current);
    if (!target) throw new Error('no checkpoint older than the current one: ' + JSON.stringify(before));
    await page.click(`#checkpoints tr[data-checkpoint="${target.id}"] .rollback`);
    await page.waitForSelector('.dialog');
    await shot('08-rollback-confirmation');
    await page.click('.dialog [data-action="confirm"]');
    await page.waitForSelector(`#checkpoints tr.current[data-checkpoint="${target.id}"]`);
    const after = (await api('GET', '/pipelines/clicks/checkpoints')).checkpoints;
    if (!after.some((c) => c.id === target.id && c.current)) throw new Error('the server did not roll back: ' + JSON.stringify(after));
    await shot('09-checkpoints');

    step = 'the spec view';
    await page.click('a.tab[data-tab="edit"]');
    await page.waitForSelector('#spec');
    const spec = await page.inputValue('#spec');
    if (!spec.includes('type: filter')) throw new Error('the spec view does not show the pipeline file');
    await shot('10-spec');

    if (consoleErrors.length) throw new Error(`the page logged ${consoleErrors.length} errors, the first: ${consoleErrors[0]}`);
  } catch (e) {
    await shot('failure').catch(() => {});
    await context.close().catch(() => {});
    await server.stop().catch(() => {});
    fail(`${step}: ${e.message}\n(screenshots in ${shots}, server log in ${outDir}/server.log)`);
  }
  await context.close();
  fs.rmSync(userData, { recursive: true, force: true });
  const exit = await server.stop();
  if (exit.code !== 0) fail(`the server exited with ${JSON.stringify(exit)}; see ${outDir}/server.log`);
  log(`passed; screenshots in ${shots}`);
}

main().catch((e) => fail(e.stack || String(e)));
