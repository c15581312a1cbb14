#!/usr/bin/env node
// End-to-end test of the web console under authentication (API keys): a
// viewer signs in through the console's form and sees no mutating button
// (new pipeline, stop, cancel, rollback, delete, save), while an operator
// sees them and cancels a run; the viewer's live log shows the run's recent
// lines (replayed) and live ones over a WebSocket that carries the
// credential as a subprotocol. Screenshots in --out/screenshots.
//
//   node tests/e2e/console_auth_test.mjs --dataflow build/bin/dataflow --out /tmp/console-auth-e2e
import path from 'node:path';
import { setup, fail, log, waitFor, startServer, apiClient, launchBrowser, newPage } from './harness.mjs';

const env = setup(process.argv.slice(2));
const { outDir, shots } = env;

const VIEWER_KEY = 'e2e-viewer-key';
const OPERATOR_KEY = 'e2e-operator-key';
const SECURITY = [
  'security:',
  '  auth:',
  '    enabled: true',
  '    api_keys:',
  `      - {name: vic, key: ${VIEWER_KEY}, role: viewer}`,
  `      - {name: olga, key: ${OPERATOR_KEY}, role: operator}`,
  '  rbac:',
  '    roles: {viewer: [read], operator: [read, write, control]}',
];
const PIPELINE = `name: clicks
checkpoint: {interval: 500ms}
sources:
  - id: gen
    type: generator
    rate: 2000
    fields: {user: "i % 50"}
sinks:
  - id: out
    type: blackhole
    input: gen
`;
// What a viewer must not see, anywhere.
const MUTATING = ['#new-pipeline', '#submit', '#save', '#stop', '#start', '#delete', '#checkpoint-now', '.cancel-run', '.rollback'];

async function signIn(page, url, key, principal) {
  await page.goto(url + '/');
  await page.waitForSelector('#login-token');
  await page.fill('#login-token', key);
  await page.click('.dialog [data-action="login"]');
  await page.waitForFunction((p) => document.querySelector('#who .principal')?.textContent === p, principal);
}

async function expectNone(page, where) {
  for (const selector of MUTATING) {
    if (await page.$(selector)) throw new Error(`the viewer sees ${selector} on ${where}`);
  }
}

async function main() {
  log('starting the server with authentication');
  const server = await startServer(env, SECURITY);
  const operatorApi = apiClient(server, 'Bearer ' + OPERATOR_KEY);
  const anonymous = await fetch(server.url + '/api/v1/pipelines');
  if (anonymous.status !== 401) fail(`an anonymous call got ${anonymous.status}, not 401`);
  await operatorApi('POST', '/pipelines?start=true', PIPELINE, 'application/yaml');
  await waitFor('two checkpoints', async () => (await operatorApi('GET', '/pipelines/clicks/checkpoints')).checkpoints.length >= 2);

  const browser = await launchBrowser(env);
  const viewer = await newPage(browser.context);
  const operator = await newPage(browser.context);
  let page = viewer;
  let step = 'the viewer signs in';
  const shot = async (name) => page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
  try {
    log(step);
    await signIn(viewer, server.url, VIEWER_KEY, 'vic');
    await viewer.waitForSelector('tr[data-pipeline="clicks"] .badge[data-status="running"]');
    await expectNone(viewer, 'the pipeline list');
    await shot('auth-01-viewer-pipelines');

    step = 'the viewer sees no mutating button';
    log(step);
    await viewer.click('tr[data-pipeline="clicks"] a.name');
    await viewer.waitForSelector('svg.dag g[data-node="gen"]');
    await expectNone(viewer, 'the overview');
    await viewer.click('a.tab[data-tab="runs"]');
    await viewer.waitForSelector('#runs tr[data-status="running"]');
    await expectNone(viewer, 'the runs');
    await viewer.click('a.tab[data-tab="checkpoints"]');
    await viewer.waitForSelector('#checkpoints tr.current');
    await viewer.waitForSelector('#checkpoints tr:not(.current)[data-checkpoint]');
    await expectNone(viewer, 'the checkpoints');
    await shot('auth-02-viewer-checkpoints');
    await viewer.click('a.tab[data-tab="edit"]');
    await viewer.waitForSelector('#spec');
    await expectNone(viewer, 'the spec');

    step = "the viewer's live log under authentication";
    log(step);
    await viewer.click('a.tab[data-tab="log"]');
    await viewer.waitForSelector('#log .line-status');
    await viewer.waitForSelector('#log .line-recent');  // replayed before the status
    await viewer.waitForSelector('#log .line-status ~ .line:not(.line-status):not(.line-event)');  // live
    await shot('auth-03-viewer-live-log');

    step = 'the operator signs in and sees the mutating buttons';
    log(step);
    page = operator;
    await signIn(operator, server.url, OPERATOR_KEY, 'olga');
    await operator.waitForSelector('#new-pipeline');
    await shot('auth-04-operator-pipelines');
    await operator.click('tr[data-pipeline="clicks"] a.name');
    await operator.waitForSelector('#stop');
    await operator.waitForSelector('#checkpoint-now');
    await operator.click('a.tab[data-tab="checkpoints"]');
    await operator.waitForSelector('#checkpoints tr:not(.current) .rollback');
    await operator.click('a.tab[data-tab="edit"]');
    await operator.waitForSelector('#save');
    await operator.click('a.tab[data-tab="runs"]');
    await operator.waitForSelector('#runs tr[data-status="running"] .cancel-run');
    await shot('auth-05-operator-runs');

    step = 'the operator cancels the run';
    log(step);
    await operator.click('#runs tr[data-status="running"] .cancel-run');
    await operator.click('.dialog [data-action="confirm"]');
    await operator.waitForSelector('#runs tr[data-status="cancelled"]');
    await operator.click('a.tab[data-tab="overview"]');
    await operator.waitForSelector('.detail-head .badge[data-status="stopped"]');
    await operator.waitForSelector('#delete');
    await operator.waitForSelector('#start');
    await shot('auth-06-operator-stopped');

    step = 'the viewer sees no delete or start on the stopped pipeline';
    log(step);
    page = viewer;
    await viewer.waitForSelector('.log-status:has-text("cancelled")');
    await viewer.click('a.tab[data-tab="overview"]');
    await viewer.waitForSelector('.detail-head .badge[data-status="stopped"]');
    await expectNone(viewer, 'the stopped pipeline');
    await shot('auth-07-viewer-stopped');

    const errors = [...viewer.errors, ...operator.errors];
    if (errors.length) throw new Error(`the pages logged ${errors.length} errors, the first: ${errors[0]}`);
  } catch (e) {
    await shot('auth-failure').catch(() => {});
    await browser.close().catch(() => {});
    await server.stop().catch(() => {});
    fail(`${step}: ${e.message}\n(screenshots in ${shots}, server log in ${outDir}/server.log)`);
  }
  await browser.close();
  const exit = await server.stop();
  if (exit.code !== 0) fail(`the server exited with ${JSON.stringify(exit)}; see ${outDir}/server.log`);
  log(`passed; screenshots in ${shots}`);
}

main().catch((e) => fail(e.stack || String(e)));
