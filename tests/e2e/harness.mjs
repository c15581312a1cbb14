// Shared by the console's end-to-end specs: arguments, failing with a
// message, bounded waits, a real `dataflow run` on free ports of 127.0.0.1
// (with extra config.yaml lines, e.g. a `security:` section) and Debian's
// headless Chromium through playwright-core.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const STEP_TIMEOUT = 30000;

export function fail(message) {
  console.error('e2e_console: FAILED: ' + message);
  process.exit(1);
}
export function log(message) { console.log(`[${new Date().toISOString().slice(11, 23)}] ${message}`); }

// --dataflow <binary> --out <dir> [--chromium <path>]; loads playwright-core,
// empties `out` and makes out/screenshots.
export function setup(argv) {
  const args = Object.fromEntries(argv.reduce((acc, a, i, all) => {
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
  const shots = path.join(outDir, 'screenshots');
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(shots, { recursive: true });
  return { dataflow, outDir, chromium, chromiumPath, shots };
}

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

export async function waitFor(what, fn, timeout = STEP_TIMEOUT) {
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

// `dataflow run` with its data under outDir/server and its log in
// outDir/server.log; `extraConfig`: more lines of config.yaml.
export async function startServer({ dataflow, outDir }, extraConfig = []) {
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
    ...extraConfig,
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

// A JSON client of the server's /api/v1 (`authorization`: an Authorization value).
export function apiClient(server, authorization = '') {
  return async (method, p, body, contentType = 'application/json') => {
    const headers = body ? { 'Content-Type': contentType } : {};
    if (authorization) headers.Authorization = authorization;
    const r = await fetch(server.url + '/api/v1' + p, { method, body, headers });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

// A headless Chromium with its profile under outDir.
export async function launchBrowser({ chromium, chromiumPath, outDir }) {
  const userData = fs.mkdtempSync(path.join(outDir, 'chromium-'));
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(userData, { recursive: true, force: true });
    },
  };
}

// A page whose uncaught errors and console errors are collected in
// page.errors (API answers the console handles — 401 before login, 404,
// 400 — show up as "Failed to load resource" and are not errors).
export async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) page.errors.push(m.text());
  });
  return page;
}
