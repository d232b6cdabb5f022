#!/usr/bin/env node
// JupyterLab with jupyter-scheduler and kflow's backend, in headless Chromium (playwright-core):
// a notebook job is created from the "Create Job" form with the kflow environment, the Notebook
// Jobs list shows it Completed, and its outputs download. Screenshots of each step are kept in
// target/jupyterlab-artifacts/.
//
//   node tests/jupyterlab/e2e.js
//
// Needs: <repo>/.venv with kflow, jupyterlab and jupyter-scheduler; Debian chromium; playwright-core
// (vscode-contrib's node_modules).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const crypto = require('crypto');
const { spawn } = require('child_process');

const REPO = path.resolve(__dirname, '..', '..');
const { chromium } = require(require.resolve('playwright-core', { paths: [path.join(REPO, 'vscode-contrib')] }));
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
const ARTIFACTS = process.env.KFLOW_JUPYTERLAB_ARTIFACTS || path.join(REPO, 'target', 'jupyterlab-artifacts');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'kflow-jupyterlab-e2e-'));
const TOKEN = crypto.randomBytes(16).toString('hex');
const T0 = Date.now();
const log = (...a) => console.log(`[jlab ${((Date.now() - T0) / 1000).toFixed(1)}s]`, ...a);

fs.rmSync(ARTIFACTS, { recursive: true, force: true });
fs.mkdirSync(ARTIFACTS, { recursive: true });
const D = {};
for (const n of ['root', 'home', 'jupyter-config', 'jupyter-data', 'jupyter-runtime', 'kflow-state', 'kflow-config', 'kflow-cache', 'chrome', 'logs']) {
  D[n] = path.join(TMP, n); fs.mkdirSync(D[n], { recursive: true });
}
let shots = 0;
let page, browser, server;

async function shot(name) {
  if (!page) { return; }
  const file = path.join(ARTIFACTS, `${String(++shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file }).catch((e) => log('screenshot failed', e.message));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer(); s.unref(); s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { Authorization: `token ${TOKEN}` } }, (res) => {
      const chunks = []; res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
}

async function until(what, f, timeoutMs = 30000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) { return v; }
    if (Date.now() > end) { throw new Error(`timed out waiting for ${what}`); }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function notebook() {
  const cell = (source, tags) => ({ cell_type: 'code', execution_count: null, metadata: tags ? { tags } : {}, outputs: [], source });
  return {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' }, language_info: { name: 'python' } },
    cells: [cell('greeting = "hello"', ['parameters']), cell('print(f"{greeting} from a scheduled notebook")'),
      cell('open("result.txt", "w").write(greeting.upper())')],
  };
}

async function startLab() {
  const port = await freePort();
  fs.writeFileSync(path.join(D.root, 'report.ipynb'), JSON.stringify(notebook(), null, 1));
  const config = path.join(TMP, 'jupyter_server_config.py');
  fs.writeFileSync(config, [
    'c.SchedulerApp.scheduler_class = "kflow.scheduler.KflowScheduler"',
    'c.SchedulerApp.environment_manager_class = "kflow.scheduler.KflowEnvironmentManager"', ''].join('\n'));
  const env = {
    PATH: `${path.dirname(PYTHON)}:${process.env.PATH}`, HOME: D.home, LANG: 'C.UTF-8',
    JUPYTER_CONFIG_DIR: D['jupyter-config'], JUPYTER_DATA_DIR: D['jupyter-data'], JUPYTER_RUNTIME_DIR: D['jupyter-runtime'],
    KFLOW_STATE_DIR: D['kflow-state'], KFLOW_CONFIG_DIR: D['kflow-config'], KFLOW_CACHE_DIR: D['kflow-cache'],
    JUPYTER_TOKEN: TOKEN,
  };
  const out = fs.openSync(path.join(D.logs, 'jupyterlab.log'), 'a');
  server = spawn(PYTHON, ['-m', 'jupyterlab', '--no-browser', `--config=${config}`, `--ServerApp.port=${port}`, '--ServerApp.ip=127.0.0.1',
    `--ServerApp.root_dir=${D.root}`, '--ServerApp.port_retries=0', '--allow-root', '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
  { env, cwd: D.root, stdio: ['ignore', out, out], detached: true });
  const url = `http://127.0.0.1:${port}`;
  await until('JupyterLab', async () => (await get(`${url}/api/status`)).status === 200, 90000);
  log('JupyterLab up on port', port);
  return url;
}

function which(cmd) {
  return (process.env.PATH || '').split(':').some((d) => d && fs.existsSync(path.join(d, cmd)));
}

async function step(name, f) {
  const t = Date.now();
  await f();
  log(`${name}: ${((Date.now() - t) / 1000).toFixed(2)} s`);
  await shot(name);
}

async function main() {
  const url = await startLab();
  browser = await chromium.launchPersistentContext(D.chrome, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
  });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(30000);
  page.on('console', (m) => { if (m.type() === 'error') { fs.appendFileSync(path.join(D.logs, 'browser-console.log'), m.text() + '\n'); } });
  await step('notebook-open', async () => {
    await page.goto(`${url}/lab/tree/report.ipynb?token=${TOKEN}`);
    await page.locator('.jp-Notebook').first().waitFor({ timeout: 90000 });
  });
  await step('create-job-form', async () => {
    await page.locator('[data-command="scheduling:create-from-notebook"]').first().click();
    await page.getByText('Create Job', { exact: true }).first().waitFor();
    await page.getByRole('button', { name: 'No', exact: true }).click().catch(() => undefined);
    const name = page.getByLabel('Job name');
    await name.fill('ui-report');
    // The environments are kflow's (the default and each job template); with one, the form
    // shows no picker.
    if (await page.getByLabel('Environment').count()) {
      await page.getByLabel('Environment').click();
      await page.getByRole('option', { name: 'kflow', exact: true }).click();
    }
    // Every format offered is one this machine can write, so all are checked by default.
    for (const f of ['Notebook', 'HTML', 'Script', 'Markdown']) {
      if (!(await page.getByLabel(f, { exact: true }).isChecked())) { throw new Error(`output format ${f} is not offered checked`); }
    }
    if (await page.getByLabel('PDF', { exact: true }).count() && !(await which('xelatex'))) { throw new Error('PDF is offered where no LaTeX can write it'); }
  });
  await step('job-created', async () => {
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByText('"ui-report" has been created').first().waitFor();
  });
  await step('job-completed-in-list', async () => {
    const row = page.locator('tr', { hasText: 'ui-report' });
    await row.first().waitFor();
    await until('the job Completed in the list', async () => {
      if (await row.filter({ hasText: 'Completed' }).count()) { return true; }
      const reload = page.getByRole('button', { name: /reload/i });
      if (await reload.count()) { await reload.first().click(); }
      return false;
    }, 180000, 1000);
  });
  await step('outputs-downloaded', async () => {
    const row = page.locator('tr', { hasText: 'ui-report' }).first();
    // The Output files cell's download icon.
    await row.locator('td').nth(2).locator('button, [role="button"], svg').first().click();
    const jobs = path.join(D.root, 'jobs');
    const folder = await until('the downloaded job folder', async () => {
      // jupyter-scheduler names the folder after the input file and the job id.
      const f = fs.existsSync(jobs) && fs.readdirSync(jobs).find((n) => n.startsWith('report-'));
      const dir = f && path.join(jobs, f);
      return dir && fs.readdirSync(dir).some((n) => n.endsWith('.html')) && dir;
    }, 60000, 500);
    const files = fs.readdirSync(folder);
    log('  downloaded:', files.join(', '));
    const html = fs.readFileSync(path.join(folder, files.find((n) => n.endsWith('.html'))), 'utf8');
    if (!html.includes('hello from a scheduled notebook')) { throw new Error('the HTML output lacks the cell output'); }
    for (const ext of ['.ipynb', '.script', '.markdown']) {
      if (!files.some((n) => n.startsWith('report-') && n.endsWith(ext))) { throw new Error(`no ${ext} output downloaded`); }
    }
    // The list links each output by its format's name now.
    await row.getByText('HTML', { exact: true }).waitFor();
  });
  const jobs = JSON.parse((await get(`${url}/scheduler/jobs`)).body).jobs;
  const job = jobs.find((j) => j.name === 'ui-report');
  if (!job || job.status !== 'COMPLETED') { throw new Error(`the REST API says ${job && job.status}`); }
  log('REST: ui-report', job.status, 'runtime_environment_name', job.runtime_environment_name);
  if (job.runtime_environment_name !== 'kflow') { throw new Error('the job did not use the kflow environment'); }
}

let code = 0;
main().catch(async (e) => {
  code = 1;
  console.error(`\nFAIL: ${e && e.stack || e}`);
  await shot('failure');
  for (const f of ['jupyterlab.log', 'browser-console.log']) {
    const p = path.join(D.logs, f);
    if (fs.existsSync(p)) { console.error(`\n===== ${f} (last 40 lines) =====\n` + fs.readFileSync(p, 'utf8').split('\n').slice(-40).join('\n')); }
  }
}).finally(async () => {
  if (browser) { await browser.close().catch(() => undefined); }
  if (server && server.exitCode === null) { try { process.kill(-server.pid, 'SIGTERM'); } catch { /* gone */ } }
  console.log(code ? `\njupyterlab e2e: FAILED (artifacts in ${ARTIFACTS})` : `\njupyterlab e2e: OK in ${((Date.now() - T0) / 1000).toFixed(1)} s (artifacts in ${ARTIFACTS})`);
  if (!process.env.KFLOW_KEEP_TMP && !code) { fs.rmSync(TMP, { recursive: true, force: true }); }
  process.exit(code);
});
