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
import path from 'node:path';
import { setup, fail, log, waitFor, startServer, apiClient, launchBrowser, newPage } from './harness.mjs';

const env = setup(process.argv.slice(2));
const { outDir, shots } = env;

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
  const server = await startServer(env);
  const api = apiClient(server);
  const browser = await launchBrowser(env);
  const { context } = browser;
  const page = await newPage(context);
  const consoleErrors = page.errors;
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
  await browser.close();
  const exit = await server.stop();
  if (exit.code !== 0) fail(`the server exited with ${JSON.stringify(exit)}; see ${outDir}/server.log`);
  log(`passed; screenshots in ${shots}`);
}

main().catch((e) => fail(e.stack || String(e)));
