#!/usr/bin/env node
// End-to-end test of the kflow VS Code extension in a real VS Code (code-server), driven by
// headless Chromium with playwright-core, against kflow-testcluster with its realm.
//
//   node tests/vscode/e2e.js            the e2e (sign in, panel, run, logs, YAML, describe, restart,
//                                        delete, sign out, then the sentinel search)
//   node tests/vscode/e2e.js --bench    the measurements (5,000 jobs: panel → first rows; wizard
//                                        open; Run → first log line), medians printed
//
// Needs: KFLOW_TESTCLUSTER_BIN, KFLOW_CRD_DIR (optional), <repo>/.venv/bin/python with kflow,
// code-server (CODE_SERVER, default $KFLOW_VSCODE_TOOLS/code-server/bin/code-server), the .vsix
// (KFLOW_VSIX, default vscode-contrib/kflow-0.1.0.vsix), /usr/bin/chromium.
//
// The sentinel password is generated here and lives only in this process's memory: it reaches
// the realm through a pipe (--idp-config <(cat)) and the sign-in form through the browser's
// keyboard events — never argv, environment or a file.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const https = require('https');
const crypto = require('crypto');
const { spawn, spawnSync } = require('child_process');

const REPO = path.resolve(__dirname, '..', '..');
const { chromium } = require(require.resolve('playwright-core', { paths: [path.join(REPO, 'vscode-contrib')] }));

const BENCH = process.argv.includes('--bench');
const KEEP = process.env.KFLOW_E2E_KEEP === '1';
const TOTAL_TIMEOUT_MS = (BENCH ? 9 : 6) * 60 * 1000;
const NS = 'kubeflow-user-example-com';
const USER = 'user@example.com';
const SENTINEL = 'Sentinel-pw-7c1e-' + crypto.randomBytes(9).toString('hex');
const ARTIFACTS = process.env.KFLOW_VSCODE_ARTIFACTS || path.join(REPO, 'target', 'vscode-artifacts', BENCH ? 'bench' : 'e2e');
const CODE_SERVER = process.env.CODE_SERVER || path.join(process.env.KFLOW_VSCODE_TOOLS || path.join(os.tmpdir(), 'kflow-vscode-tools'), 'code-server', 'bin', 'code-server');
const VSIX = process.env.KFLOW_VSIX || path.join(REPO, 'vscode-contrib', 'kflow-0.1.0.vsix');
const TESTCLUSTER = process.env.KFLOW_TESTCLUSTER_BIN;
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');

const T0 = Date.now();
const log = (...a) => console.log(`[e2e ${((Date.now() - T0) / 1000).toFixed(1)}s]`, ...a);

// ---------- the sandbox: every file any process of the test writes lies under TMP ----------
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'kflow-vscode-e2e-'));
const D = {};
for (const n of ['home', 'xdg-config', 'xdg-data', 'xdg-cache', 'xdg-state', 'tmp', 'kflow-state', 'kflow-config', 'kflow-cache',
  'cs-data', 'cs-ext', 'chrome', 'ws', 'bin', 'logs', 'cluster']) { D[n] = path.join(TMP, n); fs.mkdirSync(D[n], { recursive: true }); }
fs.mkdirSync(ARTIFACTS, { recursive: true });
for (const f of fs.readdirSync(ARTIFACTS)) { if (/\.(png|txt|json)$/.test(f)) { fs.rmSync(path.join(ARTIFACTS, f)); } }

function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(KFLOW_|KUBECONFIG|DBUS_|VSCODE_|npm_|XDG_)/.test(k)) { continue; }
    env[k] = v;
  }
  Object.assign(env, {
    HOME: D.home, TMPDIR: D.tmp, XDG_CONFIG_HOME: D['xdg-config'], XDG_DATA_HOME: D['xdg-data'], XDG_CACHE_HOME: D['xdg-cache'],
    XDG_STATE_HOME: D['xdg-state'], KFLOW_STATE_DIR: D['kflow-state'], KFLOW_CONFIG_DIR: D['kflow-config'], KFLOW_CACHE_DIR: D['kflow-cache'],
    PYTHONDONTWRITEBYTECODE: '1',
  });
  return env;
}

const children = [];
function start(name, cmd, args, opts = {}) {
  const out = fs.openSync(path.join(D.logs, `${name}.log`), 'a');
  const p = spawn(cmd, args, { env: opts.env || baseEnv(), cwd: opts.cwd || TMP, stdio: opts.stdio || ['ignore', out, out], detached: true });
  p.on('exit', (code, sig) => { p.exitedWith = { code, sig }; });
  children.push({ name, p });
  return p;
}
function stopAll() {
  for (const { p } of children.reverse()) {
    if (p.exitCode === null && p.signalCode === null) { try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ } }
  }
}

async function until(what, f, timeoutMs = 30000, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) { return v; }
    if (Date.now() > end) { throw new Error(`timed out waiting for ${what}`); }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer(); s.unref(); s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// ---------- the test cluster with its realm ----------
async function startCluster() {
  if (!TESTCLUSTER || !fs.existsSync(TESTCLUSTER)) { throw new Error(`KFLOW_TESTCLUSTER_BIN is not set to the built kflow-testcluster (${TESTCLUSTER || 'unset'})`); }
  const realm = JSON.stringify({
    realm: 'kubeflow', clients: ['kflow'], accessTokenSeconds: 300, refreshTokenSeconds: 1800,
    users: [{ username: USER, email: USER, password: SENTINEL, namespaces: [NS] }],
  });
  const env = baseEnv();
  if (process.env.KFLOW_CRD_DIR) { env.KFLOW_CRD_DIR = path.resolve(process.env.KFLOW_CRD_DIR); } else if (fs.existsSync(path.join(REPO, '..', 'shared', 'crds'))) { env.KFLOW_CRD_DIR = path.join(REPO, '..', 'shared', 'crds'); }
  const state = path.join(D.cluster, 'state');
  const kubeconfig = path.join(D.cluster, 'kubeconfig');
  const out = fs.openSync(path.join(D.logs, 'testcluster.log'), 'a');
  // The realm config goes through a pipe (bash's <(cat) of our stdin): the password is in no
  // file and no argv. (Node's own stdio "pipes" are socketpairs, which /dev/fd/N cannot open.)
  const p = start('testcluster', 'bash', ['-c', 'exec "$@" --idp-config <(cat)', 'bash', TESTCLUSTER, '--port', '0', '--state-dir', state,
    '--kubeconfig-out', kubeconfig, '--restart-backoff-ms', '200', '--gateway-port', '0'], { env, stdio: ['pipe', out, out] });
  p.stdin.end(realm);
  await until('the testcluster kubeconfig and gateway-url', () => {
    if (p.exitedWith) { throw new Error(`kflow-testcluster exited ${JSON.stringify(p.exitedWith)}`); }
    return fs.existsSync(kubeconfig) && fs.existsSync(path.join(state, 'gateway-url'));
  }, 60000);
  const kc = fs.readFileSync(kubeconfig, 'utf8');
  const server = /server:\s*(\S+)/.exec(kc)[1];
  const caData = /certificate-authority-data:\s*(\S+)/.exec(kc);
  const token = /token:\s*(\S+)/.exec(kc)[1].replace(/^["']|["']$/g, '');
  const ca = caData ? Buffer.from(caData[1], 'base64') : undefined;
  const caFile = path.join(D.cluster, 'ca.crt');
  if (ca) { fs.writeFileSync(caFile, ca); }
  const url = fs.readFileSync(path.join(state, 'gateway-url'), 'utf8').trim();
  log('testcluster up: api', server, 'gateway', url);
  return { server, token, ca, caFile, url, kubeconfig };
}

/** The cluster's REST API directly (admin token), as kubectl would. */
function api(cluster, method, p, body) {
  const u = new URL(cluster.server + p);
  const mod = u.protocol === 'https:' ? https : http;
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method, ca: cluster.ca, agent: cluster.agent, headers: { Authorization: `Bearer ${cluster.token}`, 'Content-Type': 'application/json', ...(data ? { 'Content-Length': data.length } : {}) } }, (res) => {
      const chunks = []; res.on('data', (c) => chunks.push(c));
      res.on('end', () => { const t = Buffer.concat(chunks).toString(); if (res.statusCode >= 300) { reject(new Error(`${method} ${p}: ${res.statusCode} ${t.slice(0, 300)}`)); } else { resolve(t ? JSON.parse(t) : null); } });
    });
    req.on('error', reject); if (data) { req.write(data); } req.end();
  });
}

function foreignJob(name, { suspend = false, text = 'hi' } = {}) {
  return {
    apiVersion: 'kubeflow.org/v1', kind: 'PyTorchJob', metadata: { name, namespace: NS },
    spec: { ...(suspend ? { runPolicy: { suspend: true } } : {}), pytorchReplicaSpecs: { Master: { replicas: 1, template: { spec: { containers: [
      { name: 'pytorch', image: 'python:3.12', command: ['python', '-c', `print(${JSON.stringify(text)})`] }] } } } } },
  };
}

async function createJobs(cluster, names, opts) {
  cluster.agent = new https.Agent({ keepAlive: true, maxSockets: 32, ca: cluster.ca });
  let i = 0;
  const worker = async () => { while (i < names.length) { const n = names[i++]; await api(cluster, 'POST', `/apis/kubeflow.org/v1/namespaces/${NS}/pytorchjobs`, foreignJob(n, opts)); } };
  await Promise.all(Array.from({ length: 32 }, worker));
}

// ---------- code-server ----------
async function startCodeServer(cluster) {
  if (!fs.existsSync(CODE_SERVER)) { throw new Error(`code-server not found at ${CODE_SERVER} (ci.sh installs it; or set CODE_SERVER)`); }
  if (!fs.existsSync(VSIX)) { throw new Error(`the extension is not built: ${VSIX}`); }
  if (!fs.existsSync(PYTHON)) { throw new Error(`${PYTHON} is missing (the repo's venv with kflow installed)`); }
  // kflow.path: a wrapper running the repo's kflow; its stderr is kept for failure reports.
  const wrapper = path.join(D.bin, 'kflow');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(PYTHON)} -m kflow "$@" 2>>${JSON.stringify(path.join(D.logs, 'kflow-serve.stderr'))}\n`, { mode: 0o755 });
  const user = path.join(D['cs-data'], 'User');
  fs.mkdirSync(user, { recursive: true });
  fs.writeFileSync(path.join(user, 'settings.json'), JSON.stringify({
    'workbench.startupEditor': 'none', 'telemetry.telemetryLevel': 'off', 'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false,
    'workbench.enableExperiments': false, 'update.mode': 'none', 'security.workspace.trust.enabled': false, 'workbench.tips.enabled': false,
    'chat.commandCenter.enabled': false, 'workbench.colorTheme': 'Default Dark Modern', 'files.autoSave': 'off',
    'kflow.path': wrapper, 'kflow.url': cluster.url, 'kflow.apiServer': cluster.server, 'kflow.defaultNamespace': NS, 'kflow.backend': 'cluster',
  }, null, 2));
  const env = baseEnv();
  env.KFLOW_CA_FILE = cluster.caFile;
  const common = ['--user-data-dir', D['cs-data'], '--extensions-dir', D['cs-ext']];
  const inst = spawnSync(CODE_SERVER, [...common, '--install-extension', VSIX], { env, encoding: 'utf8', timeout: 120000 });
  fs.writeFileSync(path.join(D.logs, 'install-extension.log'), (inst.stdout || '') + (inst.stderr || ''));
  if (inst.status !== 0) { throw new Error(`installing the .vsix failed: ${inst.stderr || inst.stdout}`); }
  const port = await freePort();
  fs.writeFileSync(path.join(TMP, 'cs-config.yaml'), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  start('code-server', CODE_SERVER, ['--config', path.join(TMP, 'cs-config.yaml'), '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', ...common, D.ws], { env });
  await until('code-server /healthz', () => new Promise((r) => http.get(`http://127.0.0.1:${port}/healthz`, (res) => { res.resume(); r(res.statusCode === 200); }).on('error', () => r(false))), 60000, 100);
  log('code-server up on port', port);
  return `http://127.0.0.1:${port}/?folder=${encodeURIComponent(D.ws)}`;
}

// ---------- the browser ----------
let page, browser, shotNo = 0;
async function shot(name) {
  const f = path.join(ARTIFACTS, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  try { await page.screenshot({ path: f }); } catch (e) { log('screenshot failed', e.message); }
}
async function step(name, f) {
  log('step:', name);
  const t = Date.now();
  await f();
  await shot(name);
  log(`  ok (${Date.now() - t} ms)`);
}

async function openBrowser(url) {
  browser = await chromium.launchPersistentContext(D.chrome, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, viewport: { width: 1500, height: 950 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    env: baseEnv(),
  });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(30000);
  page.on('console', (m) => { if (m.type() === 'error') { fs.appendFileSync(path.join(D.logs, 'browser-console.log'), m.text() + '\n'); } });
  await page.goto(url);
  await page.locator('.monaco-workbench').waitFor({ timeout: 90000 });
}

const panel = () => page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Kubeflow Panel' }) });
const row = (text) => panel().locator('.monaco-list-row', { hasText: text });
const quickInput = () => page.locator('.quick-input-widget');
const notification = (text) => page.locator('.notifications-toasts .notification-toast', { hasText: text });

async function expandPane(header) {
  const h = page.locator('.pane-header', { hasText: header }).first();
  await h.waitFor();
  if ((await h.getAttribute('aria-expanded')) !== 'true') { await h.click(); }
  await until(`${header} expanded`, async () => (await h.getAttribute('aria-expanded')) === 'true', 10000);
}
async function collapsePane(header) {
  const h = page.locator('.pane-header', { hasText: header }).first();
  if ((await h.getAttribute('aria-expanded')) === 'true') { await h.click(); }
  await until(`${header} collapsed`, async () => (await h.getAttribute('aria-expanded')) !== 'true', 10000);
}
async function expandRow(r) {
  await r.waitFor();
  if ((await r.getAttribute('aria-expanded')) !== 'true') { await r.click(); }
  await until('tree row expanded', async () => (await r.getAttribute('aria-expanded')) === 'true', 10000);
}

async function runCommand(title) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('F1');
  const input = quickInput().locator('input');
  await input.waitFor();
  await input.fill('>' + title);
  const item = quickInput().locator('.monaco-list-row', { hasText: title }).first();
  await item.waitFor();
  await page.keyboard.press('Enter');
}

/** A quick-input step whose title contains `title`; fills `value` (when given) and accepts. */
async function quickStep(title, value, { pick } = {}) {
  await quickInput().locator('.quick-input-title', { hasText: title }).waitFor({ state: 'visible' });
  const input = quickInput().locator('.quick-input-box input');
  if (pick !== undefined) {
    await input.fill(pick);
    await quickInput().locator('.monaco-list-row.focused', { hasText: pick }).waitFor();
  } else if (value !== undefined) {
    await input.fill(value);
  }
  await input.press('Enter');
}

async function contextMenu(target, item, { beforeClick } = {}) {
  await target.click({ button: 'right' });
  const it = page.locator('.monaco-menu .action-item:not(.disabled) .action-label', { hasText: item }).first();
  await it.waitFor();
  // VS Code's menus ignore a click that comes right as they open: hover, click, and click again
  // while the menu is still there.
  await it.hover();
  for (let i = 0; i < 5 && await it.isVisible(); i++) {
    if (beforeClick) { await beforeClick(); }
    await it.click().catch(() => undefined);
    await page.locator('.monaco-menu').first().waitFor({ state: 'hidden', timeout: 1000 }).catch(() => undefined);
  }
}

async function signIn(cluster) {
  await expandPane('Kubeflow Panel');
  const button = panel().locator('.welcome-view-content .monaco-button', { hasText: 'Sign In' });
  await button.waitFor({ timeout: 60000 });
  await shot('welcome-view');
  await button.click();
  await quickStep('Kubeflow sign in (1/3)', cluster.url);
  // a wrong password first: the realm's error is shown in place, on the form
  await quickStep('Kubeflow sign in (2/3)', USER);
  await quickStep('Kubeflow sign in (3/3)', SENTINEL.slice(0, -1) + 'x');
  await page.locator('.quick-input-widget', { hasText: 'Invalid username or password' }).waitFor({ timeout: 30000 });
  await shot('sign-in-wrong-password');
  await quickStep('Kubeflow sign in (1/3)');
  await quickStep('Kubeflow sign in (2/3)');
  await quickStep('Kubeflow sign in (3/3)', SENTINEL);
  await notification(`Signed in to Kubeflow as ${USER}`).waitFor({ timeout: 30000 });
  await page.locator('.statusbar-item', { hasText: USER }).first().waitFor();
}

// ---------- the leak search ----------
const procSamples = [];
function sampleProcs(when) {
  let hits = 0;
  for (const pid of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    for (const f of ['cmdline', 'environ']) {
      try {
        const b = fs.readFileSync(`/proc/${pid}/${f}`);
        if (b.includes(SENTINEL)) { procSamples.push(`${when}: /proc/${pid}/${f} (${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`); hits++; }
      } catch { /* gone or not ours */ }
    }
  }
  return hits;
}
function filesContaining(root, needle) {
  const hits = [];
  const walk = (d) => {
    let ents; try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { walk(p); } else if (e.isFile()) {
        try { if (fs.readFileSync(p).includes(needle)) { hits.push(p); } } catch { /* unreadable socket etc. */ }
      }
    }
  };
  walk(root);
  return hits;
}

// ---------- failure reports ----------
function dumpLogs() {
  const show = (title, f, max = 12000) => {
    try { const t = fs.readFileSync(f, 'utf8'); console.log(`\n===== ${title} (${f}) =====\n${t.slice(-max)}`); } catch { console.log(`\n===== ${title}: none (${f})`); }
  };
  show('code-server log', path.join(D.logs, 'code-server.log'));
  const find = (root, re) => { const out = []; const walk = (d) => { let es; try { es = fs.readdirSync(d, { withFileTypes: true }); } catch { return; } for (const e of es) { const p = path.join(d, e.name); if (e.isDirectory()) { walk(p); } else if (re.test(p)) { out.push(p); } } }; walk(root); return out; };
  for (const f of find(path.join(D['cs-data'], 'logs'), /(exthost\d*\.log|remoteexthost\.log|kflow\.log)$/)) { show('extension host log', f); }
  show('kflow serve stderr', path.join(D.logs, 'kflow-serve.stderr'));
  show('kflow events', path.join(D['kflow-state'], 'events.log'), 6000);
  show('testcluster log', path.join(D.logs, 'testcluster.log'), 4000);
  show('browser console errors', path.join(D.logs, 'browser-console.log'), 4000);
}
function copyLogs() {
  const dst = path.join(ARTIFACTS, 'logs');
  try { fs.cpSync(D.logs, dst, { recursive: true }); fs.cpSync(path.join(D['cs-data'], 'logs'), path.join(dst, 'code-server'), { recursive: true }); } catch { /* best effort */ }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

// In-page timing: performance.now() at the user's input (pointer or key) to the first DOM state.
async function armTimer() {
  await page.evaluate(() => {
    const w = window;
    w.__kf = { input: 0 };
    const mark = () => { w.__kf.input = performance.now(); };
    if (!w.__kfArmed) {
      w.__kfArmed = true;
      document.addEventListener('mouseup', () => { if (w.__kf.armed) { mark(); w.__kf.armed = false; } }, true);
      document.addEventListener('keydown', (e) => { if (w.__kf.armed && e.key === 'Enter') { mark(); w.__kf.armed = false; } }, true);
    }
    w.__kf.armed = true;
  });
}
/** ms from the armed input to when `selector` has an element containing `text` (MutationObserver). */
async function timeTo(selector, text, timeoutMs = 60000) {
  return page.evaluate(({ selector, text, timeoutMs }) => new Promise((resolve, reject) => {
    const w = window;
    // Monaco draws spaces as no-break spaces.
    const deepFind = () => [...document.querySelectorAll(selector)].some((e) => e.textContent.replace(/\u00a0/g, ' ').includes(text) && e.getClientRects().length > 0);
    const done = () => { obs.disconnect(); clearTimeout(t); resolve(performance.now() - w.__kf.input); };
    const obs = new MutationObserver(() => { if (w.__kf.input && deepFind()) { done(); } });
    const t = setTimeout(() => { obs.disconnect(); reject(new Error(`timed out waiting for ${selector} "${text}"`)); }, timeoutMs);
    obs.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    if (w.__kf.input && deepFind()) { done(); }
  }), { selector, text, timeoutMs });
}

// ---------- the scenario ----------
const TRAIN_PY = `import time
print("epoch 1 loss 0.912", flush=True)
time.sleep(2)
print("ERROR: simulated data loader error (the run goes on)", flush=True)
for i in range(2, 5):
    time.sleep(0.5)
    print(f"epoch {i} loss {1.0 / i:.3f}", flush=True)
print("training done", flush=True)
`;

async function e2e(cluster) {
  await createJobs(cluster, ['foreign-hello', 'foreign-bye']);
  const url = await startCodeServer(cluster);
  await openBrowser(url);
  await step('workbench', async () => { await expandPane('Kubeflow Panel'); });
  await step('sign-in', () => signIn(cluster));
  sampleProcs('after sign-in');
  await step('panel-lists-jobs', async () => {
    await expandRow(row('Jobs').first());
    await row('foreign-hello').waitFor();
    await row('foreign-bye').waitFor();
  });
  await step('run-from-explorer-context-menu', async () => {
    await expandPane(path.basename(D.ws).toUpperCase());
    const file = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'train.py' });
    await file.waitFor();
    await contextMenu(file, 'Run as Kubeflow Training Job');
    await quickStep('Job type', undefined, { pick: 'PyTorchJob' });
    await shot('wizard-name');
    await quickStep('Job name', 'e2e-train');
    // Back once, then forward again: the value is kept
    await quickStep('Image');
    await quickInput().locator('.quick-input-title', { hasText: 'GPUs per replica' }).waitFor();
    await quickInput().locator('.quick-input-back, .codicon-quick-input-back').first().click();
    await quickStep('Image');
    await quickStep('GPUs per replica', '');
    await quickStep('CPU per replica', '');
    await quickStep('Memory per replica', '');
    await quickStep('Workers', '1');
    await quickStep('pip packages', '');
    await quickStep('apt packages', '');
    await quickStep('Namespace');
    await quickStep('Auto PVC', undefined, { pick: 'No' });
    await quickInput().locator('.quick-input-title', { hasText: ': Run' }).waitFor();
    await shot('wizard-confirm');
    await quickStep(': Run', undefined, { pick: 'Run' });
  });
  sampleProcs('after run');
  await step('logs-live-with-error-highlighted', async () => {
    const editor = page.locator('.editor-instance .monaco-editor');
    await page.locator('.tab', { hasText: 'e2e-train.log' }).waitFor({ timeout: 90000 });
    await editor.locator('.view-line', { hasText: 'epoch 1 loss 0.912' }).waitFor({ timeout: 120000 });
    const liveBeforeEnd = (await editor.locator('.view-line', { hasText: 'end of logs' }).count()) === 0;
    if (!liveBeforeEnd) { throw new Error('the first log line appeared only with the end of the logs (not live)'); }
    const errLine = editor.locator('.view-line', { hasText: 'ERROR: simulated data loader error' });
    await errLine.waitFor({ timeout: 60000 });
    await shot('log-error-line');
    const colorOf = async (l) => l.locator('span > span').last().evaluate((e) => getComputedStyle(e).color);
    const plain = await colorOf(editor.locator('.view-line', { hasText: 'epoch 1 loss 0.912' }));
    const err = await colorOf(errLine);
    const errClass = await errLine.locator('span > span').last().getAttribute('class');
    log(`  plain line color ${plain}, error line color ${err} (${errClass})`);
    if (plain === err) { throw new Error(`the error line is not highlighted (both ${plain})`); }
    const lang = await page.locator('.statusbar-item', { hasText: 'kflow log' }).count();
    if (!lang) { throw new Error('the log document is not in the kflow-log language'); }
    await editor.locator('.view-line', { hasText: 'end of logs' }).waitFor({ timeout: 120000 });
  });
  await step('status-icon-succeeded', async () => {
    const r = row('e2e-train').filter({ hasText: 'Succeeded' });
    await r.first().waitFor({ timeout: 60000 });
    await r.first().locator('.codicon-pass').waitFor();
    await notification('Kubeflow job e2e-train succeeded').waitFor({ timeout: 30000 }).catch(() => log('  (no status notification seen)'));
  });
  await step('show-yaml', async () => {
    await contextMenu(row('e2e-train').first(), 'Show YAML');
    await page.locator('.tab', { hasText: 'e2e-train.yaml' }).waitFor();
    await page.locator('.editor-instance .view-line', { hasText: 'kind: PyTorchJob' }).first().waitFor();
  });
  await step('describe', async () => {
    await contextMenu(row('e2e-train').first(), 'Describe');
    await page.locator('.tab', { hasText: 'e2e-train.describe' }).waitFor();
    await page.locator('.editor-instance .view-line', { hasText: 'Succeeded' }).first().waitFor();
  });
  let restarted;
  await step('restart', async () => {
    await contextMenu(row('e2e-train').first(), 'Restart Job');
    const n = notification('Restarted e2e-train as');
    await n.waitFor({ timeout: 60000 });
    restarted = /as (\S+) \(attempt/.exec(await n.innerText())[1];
    log('  restarted as', restarted);
    if (restarted !== 'e2e-train') { await row(restarted).first().waitFor(); }
  });
  await step('delete', async () => {
    await contextMenu(row('foreign-bye').first(), 'Delete Training Job');
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor();
    await shot('delete-confirmation');
    await dialog.locator('.monaco-button', { hasText: /^Delete$/ }).click();
    await notification('Deleted foreign-bye').waitFor();
    await row('foreign-bye').waitFor({ state: 'detached' });
  });
  sampleProcs('before sign-out');
  await step('sign-out-empties-secret-storage', async () => {
    await runCommand('Kubeflow: Sign Out');
    const n = notification('Signed out of Kubeflow');
    await n.waitFor({ timeout: 30000 });
    const text = await n.innerText();
    log('  ' + text.split('\n')[0]);
    if (!/Removed [1-9]\d* stored secrets?; none remain/.test(text)) { throw new Error(`Sign Out did not empty SecretStorage: ${text}`); }
    // A new window (a new kflow serve asking SecretStorage) is signed out too.
    await page.reload();
    await page.locator('.monaco-workbench').waitFor();
    await expandPane('Kubeflow Panel');
    await panel().locator('.welcome-view-content .monaco-button', { hasText: 'Sign In' }).waitFor({ timeout: 60000 });
  });
  sampleProcs('after sign-out');
}

async function bench(cluster) {
  const N = parseInt(process.env.KFLOW_BENCH_JOBS || '5000', 10);
  const t = Date.now();
  await createJobs(cluster, Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(5, '0')}`), { suspend: true });
  log(`created ${N} suspended PyTorchJobs through the REST API in ${Date.now() - t} ms`);
  const url = await startCodeServer(cluster);
  await openBrowser(url);
  await signIn(cluster);
  await collapsePane(path.basename(D.ws).toUpperCase());
  const results = { jobs: N, panelFirstRowsMs: [], kubectlGetMs: [], wizardOpenMs: [], runToFirstLogLineMs: [] };
  // What was measured is reported even when a later measurement fails.
  try {
    // Panel open → first rows: expand Jobs (after Refresh Panel, so every time is a fresh listing).
    for (let i = 0; i < 6; i++) {
      const jobs = row('Jobs').first();
      await jobs.waitFor();
      if ((await jobs.getAttribute('aria-expanded')) === 'true') { await jobs.click(); await until('Jobs collapsed', async () => (await jobs.getAttribute('aria-expanded')) !== 'true'); }
      if (i > 0) { await runCommand('Kubeflow: Refresh Panel'); await page.keyboard.press('Escape'); }
      await armTimer();
      await jobs.click();
      const ms = await timeTo('.monaco-list-row', 'bench-0');
      results.panelFirstRowsMs.push(Math.round(ms));
      if (i === 0) { await shot('bench-panel-5000'); const msg = await panel().locator('.tree-explorer-viewlet-tree-view-message, .message').first().innerText().catch(() => ''); log(`  TreeView message: ${msg}`); results.treeMessage = msg; }
    }
    // The peer: the Kubernetes extension lists a kind by running kubectl (`get -o json`, every
    // object, no pages) when its tree node opens; timed here from spawn to exit, same cluster.
    const kubectl = findKubectl();
    if (kubectl) {
      for (let i = 0; i < 6; i++) {
        const t0 = performance.now();
        const r = spawnSync(kubectl, ['--kubeconfig', cluster.kubeconfig, 'get', 'pytorchjobs', '-n', NS, '-o', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
        if (r.status !== 0) { throw new Error(`kubectl get pytorchjobs failed: ${r.stderr}`); }
        results.kubectlGetMs.push(Math.round(performance.now() - t0));
      }
    } else { log('  (no kubectl on PATH or in bench/.venv: the peer figure is left out)'); }
    // Wizard open: the explorer context menu's Run as Kubeflow Training Job → the first step shown.
    await expandPane(path.basename(D.ws).toUpperCase());
    const file = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'train.py' });
    for (let i = 0; i < 6; i++) {
      // Timed from the click the menu takes (each try re-arms the timer).
      await contextMenu(file, 'Run as Kubeflow Training Job', { beforeClick: armTimer });
      results.wizardOpenMs.push(Math.round(await timeTo('.quick-input-title', 'Job type')));
      await page.keyboard.press('Escape');
      await quickInput().waitFor({ state: 'hidden' });
    }
    // Run → first log line on screen.
    for (let i = 0; i < 3; i++) {
      // The last run's log document would show the awaited line already.
      await runCommand('View: Close All Editors');
      await page.locator('.editor-instance .view-line', { hasText: 'epoch 1 loss 0.912' }).waitFor({ state: 'detached' });
      await contextMenu(file, 'Run as Kubeflow Training Job');
      await quickStep('Job type', undefined, { pick: 'PyTorchJob' });
      await quickStep('Job name', `bench-run-${i}`);
      for (const s of ['Image', 'GPUs per replica', 'CPU per replica', 'Memory per replica', 'Workers', 'pip packages', 'apt packages', 'Namespace']) { await quickStep(s); }
      await quickStep('Auto PVC', undefined, { pick: 'No' });
      const input = quickInput().locator('.quick-input-box input');
      await quickInput().locator('.quick-input-title', { hasText: ': Run' }).waitFor();
      await input.fill('Run');
      await quickInput().locator('.monaco-list-row.focused', { hasText: 'Run' }).waitFor();
      await armTimer();
      await input.press('Enter');
      results.runToFirstLogLineMs.push(Math.round(await timeTo('.editor-instance .view-line', 'epoch 1 loss 0.912', 120000)));
      if (i === 0) { await shot('bench-first-log-line'); }
      await page.locator('.editor-instance .view-line', { hasText: 'end of logs' }).waitFor({ timeout: 120000 });
    }
  } finally {
    reportBench(results);
  }
}

function findKubectl() {
  const local = path.join(REPO, 'bench', '.venv', 'bin', 'kubectl');
  if (process.env.KUBECTL) { return process.env.KUBECTL; }
  if (fs.existsSync(local)) { return local; }
  const found = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

function reportBench(results) {
  const N = results.jobs;
  const summary = {
    jobs: N,
    panel_open_to_first_rows_ms: { median: median(results.panelFirstRowsMs), first: results.panelFirstRowsMs[0], samples: results.panelFirstRowsMs },
    peer_kubectl_get_pytorchjobs_ms: { median: median(results.kubectlGetMs), samples: results.kubectlGetMs },
    wizard_open_ms: { median: median(results.wizardOpenMs), samples: results.wizardOpenMs },
    run_to_first_log_line_ms: { median: median(results.runToFirstLogLineMs), samples: results.runToFirstLogLineMs },
    tree_message: results.treeMessage,
    machine: `${os.cpus().length} CPUs ${os.cpus()[0] && os.cpus()[0].model}`,
  };
  fs.writeFileSync(path.join(ARTIFACTS, 'bench-vscode.json'), JSON.stringify(summary, null, 2) + '\n');
  console.log('\nkflow VS Code extension, measured in code-server + headless Chromium:');
  console.log(`  panel open -> first rows (${N} jobs): median ${summary.panel_open_to_first_rows_ms.median} ms (first ${summary.panel_open_to_first_rows_ms.first} ms; ${results.panelFirstRowsMs.join(', ')})`);
  if (results.kubectlGetMs.length) {
    const ratio = (median(results.panelFirstRowsMs) / median(results.kubectlGetMs)).toFixed(2);
    console.log(`  peer: kubectl get pytorchjobs -o json (what the Kubernetes extension runs): median ${summary.peer_kubectl_get_pytorchjobs_ms.median} ms (${results.kubectlGetMs.join(', ')}); kflow/kubectl ${ratio}x`);
  }
  console.log(`  wizard open:                        median ${summary.wizard_open_ms.median} ms (${results.wizardOpenMs.join(', ')})`);
  console.log(`  Run -> first log line on screen:    median ${summary.run_to_first_log_line_ms.median} ms (${results.runToFirstLogLineMs.join(', ')})`);
}

async function main() {
  fs.writeFileSync(path.join(D.ws, 'train.py'), TRAIN_PY);
  const watchdog = setTimeout(() => { console.error(`\nFAIL: over the overall timeout of ${TOTAL_TIMEOUT_MS / 1000} s`); finish(1); }, TOTAL_TIMEOUT_MS);
  let code = 0;
  try {
    const cluster = await startCluster();
    if (BENCH) { await bench(cluster); } else { await e2e(cluster); }
  } catch (e) {
    code = 1;
    console.error(`\nFAIL: ${e && e.stack || e}`);
    await shot('failure');
  }
  clearTimeout(watchdog);
  await finish(code);
}

let finishing = false;
async function finish(code) {
  if (finishing) { return; }
  finishing = true;
  try { await browser?.close(); } catch { /* gone */ }
  sampleProcs('at the end');
  stopAll();
  await until('processes to end', () => children.every(({ p }) => p.exitCode !== null || p.signalCode !== null), 15000).catch(() => {
    for (const { p } of children) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  // The sentinel search: every file of the sandbox (HOME, XDG dirs, kflow's state, code-server's
  // user-data and extensions dirs, Chromium's profile, all logs, the workspace) and every
  // process's argv and environment, sampled while it ran.
  const fileHits = filesContaining(TMP, SENTINEL).filter((p) => !p.startsWith(path.join(D.cluster, 'state') + path.sep) || true);
  const uniqueProcs = [...new Set(procSamples)];
  console.log(`\nsentinel search: ${fileHits.length} file(s), ${uniqueProcs.length} process sample(s) under ${TMP}`);
  for (const h of fileHits) { console.log('  LEAK file', h); }
  for (const h of uniqueProcs) { console.log('  LEAK', h); }
  if (fileHits.length || uniqueProcs.length) { code = 1; }
  copyLogs();
  if (code) { dumpLogs(); }
  if (!KEEP) { fs.rmSync(TMP, { recursive: true, force: true }); } else { console.log('kept', TMP); }
  console.log(code ? `\n${BENCH ? 'bench' : 'e2e'}: FAILED (artifacts in ${ARTIFACTS})` : `\n${BENCH ? 'bench' : 'e2e'}: OK in ${((Date.now() - T0) / 1000).toFixed(1)} s (artifacts in ${ARTIFACTS})`);
  process.exit(code);
}

process.on('SIGINT', () => finish(130));
process.on('SIGTERM', () => finish(143));
main();
