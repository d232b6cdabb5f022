// The thin VS Code adapter over the pure modules and `kflow serve --stdio`.
import * as vscode from 'vscode';
import * as path from 'path';
import * as fs from 'fs';
import { KflowClient, KflowError } from './rpc';
import { TrackedSecrets } from './secrets';
import { settingsFromConfig, classifyChange } from './settings';
import { locateKflow, installCommand, tooOld, KflowCommand } from './locate';
import { SECTIONS, SectionModel, SectionDef, Row, phaseOf, phaseIcon, tooltipOf, contextValueOf, rowKey, childrenOf, viewMessage, sectionDescription } from './tree';
import { Wizard, TtlCache, imageItems, Values } from './wizard';
import { LogBuffer, tracebackFrames, mapToWorkspace, phaseChangeMessage } from './logs';

let client: KflowClient | undefined;
let ctx: vscode.ExtensionContext;
let secrets: TrackedSecrets;
let identity: any;
let connected = false;
let starting: Promise<KflowClient | undefined> | undefined;
let installPrompted = false;
let expiredPrompted = false;
let found: KflowCommand | undefined;
const output = vscode.window.createOutputChannel('kflow');
const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);

function cfg() { return vscode.workspace.getConfiguration('kflow'); }
function wsFolder(): string | undefined { return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath; }
function errMsg(e: any): string { return e instanceof KflowError ? e.message : (e?.message ?? String(e)); }
async function showError(prefix: string, e: any) {
  const id = e instanceof KflowError && e.data.eventId ? ` (event ${e.data.eventId})` : '';
  output.appendLine(`${prefix}: ${errMsg(e)}${id}`);
  void vscode.window.showErrorMessage(`${prefix}: ${errMsg(e)}${id}`);
}

async function pythonInterpreter(): Promise<string[] | undefined> {
  const ext = vscode.extensions.getExtension('ms-python.python');
  if (!ext) { return undefined; }
  try {
    const api: any = ext.isActive ? ext.exports : await ext.activate();
    const d = api?.settings?.getExecutionDetails?.(vscode.workspace.workspaceFolders?.[0]?.uri);
    return d?.execCommand?.length ? d.execCommand : undefined;
  } catch { return undefined; }
}

async function promptInstall(reason: string) {
  if (installPrompted) { return; }
  installPrompted = true;
  const cmd = installCommand(await pythonInterpreter());
  const pick = await vscode.window.showErrorMessage(`${reason} Install it with: ${cmd}`, 'Install kflow');
  if (pick === 'Install kflow') {
    const t = vscode.window.createTerminal('kflow install'); t.show(); t.sendText(cmd);
  }
}

async function getClient(): Promise<KflowClient | undefined> {
  if (client?.alive) { return client; }
  if (!starting) { starting = startClient().finally(() => { starting = undefined; }); }
  return starting;
}

async function startClient(): Promise<KflowClient | undefined> {
  found = locateKflow({ settingPath: cfg().get<string>('path'), pythonInterpreter: await pythonInterpreter() });
  if (!found) { await promptInstall('kflow was not found (kflow.path, the Python interpreter, PATH).'); return undefined; }
  output.appendLine(`starting ${found.command} ${[...found.args, 'serve', '--stdio'].join(' ')} (${found.source})`);
  const c = KflowClient.start(found.command, found.args, secrets, { cwd: wsFolder() });
  c.onExit = (code, stderr) => { output.appendLine(`kflow serve ended (${code}) ${stderr}`); if (client === c) { client = undefined; } };
  wireNotifications(c);
  try {
    const init: any = await Promise.race([
      c.initialize(settingsFromConfig((k) => cfg().get(k)), wsFolder(), `vscode ${vscode.version}`),
      new Promise((_, rej) => setTimeout(() => rej(c.spawnError ?? new Error('kflow serve did not answer initialize')), 30000)),
    ]);
    if (tooOld(init)) { await promptInstall('This kflow is too old for the editor (no `serve --stdio` protocol 1).'); await c.stop(); return undefined; }
    client = c;
    setIdentity(init.identity);
    void refreshConnection();
    return c;
  } catch (e: any) {
    await c.stop();
    if (c.spawnError?.code === 'ENOENT' || e?.code === 'ENOENT' || /-32601|No such option|unrecognized|invalid choice|ended/.test(String(e?.message))) {
      await promptInstall(`kflow could not be started (${found.command}).`);
    } else { await showError('kflow serve', e); }
    return undefined;
  }
}

async function refreshConnection() {
  try {
    const d: any = await client?.request('doctor');
    connected = !!(identity?.signed_in || d?.connection);
  } catch { connected = !!identity?.signed_in; }
  void vscode.commands.executeCommand('setContext', 'kflow.connected', connected);
  tree.refreshAll();
}

function setIdentity(id: any, state?: string) {
  identity = id;
  const signed = !!id?.signed_in;
  void vscode.commands.executeCommand('setContext', 'kflow.signedIn', signed);
  const ns = cfg().get<string>('defaultNamespace') || id?.namespace || '';
  status.text = signed ? `$(cloud) ${id.username}${ns ? ' @ ' + ns : ''}${state === 'expired' ? ' (expired)' : ''}` : (connected ? '$(cloud) kubeconfig' : '$(cloud) Kubeflow: signed out');
  status.tooltip = signed ? `Kubeflow: ${id.username} at ${id.url}${id.expires_in_seconds ? `\nSession expires in ${Math.round(id.expires_in_seconds / 60)} min` : ''}` : 'Kubeflow: click to sign in';
  status.command = signed ? 'kflow.showStatus' : 'kflow.login';
  status.show();
}

// ---------- notifications ----------
const watches = new Map<string, SectionModel>();
const follows = new Map<string, LogDoc>();
// JSON-RPC does not order a request's answer before the notifications it starts: a finished
// job's lines (even its end) can arrive before the logs/follow answer names their followId.
const early = new Map<string, Array<(d: LogDoc) => void>>();
function toFollow(id: string, f: (d: LogDoc) => void) {
  const d = follows.get(id);
  if (d) { f(d); } else { early.set(id, [...(early.get(id) ?? []), f]); }
}
const lastPhase = new Map<string, string>();

function wireNotifications(c: KflowClient) {
  c.on('session/state', (p) => {
    setIdentity(p.identity, p.state);
    if (p.state === 'expired' && !expiredPrompted) {
      expiredPrompted = true;
      void vscode.window.showWarningMessage('Your Kubeflow session has expired.', 'Sign in again').then((b) => { if (b) { void vscode.commands.executeCommand('kflow.login'); } });
    }
    if (p.state === 'signed-in') { expiredPrompted = false; void refreshConnection(); }
    if (p.state === 'signed-out') { void refreshConnection(); }
  });
  c.on('watch/changes', (p) => {
    const m = watches.get(p.watchId); if (!m) { return; }
    for (const ch of p.changes ?? []) {
      if (ch.change === 'upsert' && m.def.what === 'jobs') {
        const phase = phaseOf(ch.row), prev = lastPhase.get(ch.row.name);
        lastPhase.set(ch.row.name, phase);
        const msg = prev && prev !== phase ? phaseChangeMessage(ch.row.name, phase, ch.row.reason) : undefined;
        if (msg) {
          void (phase === 'Failed' ? vscode.window.showErrorMessage : vscode.window.showInformationMessage)(msg, 'Show Logs')
            .then((b) => { if (b) { void openLogs(ch.row.name); } });
        }
      }
    }
    if (m.applyChanges(p.changes ?? [])) { tree.refreshSection(m); }
  });
  c.on('logs/lines', (p) => { toFollow(p.followId, (d) => d.append(p.lines ?? [])); });
  c.on('logs/end', (p) => { toFollow(p.followId, (d) => d.end(p.status, p.error)); });
}

// ---------- tree ----------
type Node =
  | { type: 'section'; model: SectionModel }
  | { type: 'row'; model: SectionModel; row: Row }
  | { type: 'more'; model: SectionModel }
  | { type: 'info'; label: string; icon?: string }
  | { type: 'replica'; job: string; replica: any }
  | { type: 'jobLogs'; job: string }
  | { type: 'jobDetails'; job: string };

class PanelProvider implements vscode.TreeDataProvider<Node> {
  private emitter = new vscode.EventEmitter<Node | undefined>();
  onDidChangeTreeData = this.emitter.event;
  view!: vscode.TreeView<Node>;
  models: SectionModel[] = [];
  sectionNodes = new Map<SectionModel, Node>();
  rowNodes = new Map<string, Node>();
  private watchIds = new Map<SectionModel, string>();

  constructor() {
    this.models = SECTIONS.map((d: SectionDef) => new SectionModel(d, async (p) => {
      const c = await getClient(); if (!c) { throw new Error('kflow is not running'); }
      return c.request('list', { what: p.what, limit: p.limit, cursor: p.cursor, namespace: cfg().get<string>('defaultNamespace') || undefined });
    }));
    for (const m of this.models) { this.sectionNodes.set(m, { type: 'section', model: m }); }
  }

  refreshAll() { for (const m of this.models) { m.reset(); } this.rowNodes.clear(); this.emitter.fire(undefined); this.updateMessage(); }
  refreshSection(m: SectionModel) { this.emitter.fire(this.sectionNodes.get(m)); this.updateMessage(); }
  updateMessage() {
    if (!this.view) { return; }
    this.view.message = viewMessage(this.models);
  }

  async ensureWatch(m: SectionModel) {
    if (!m.def.watch || this.watchIds.has(m) || !client) { return; }
    try {
      const r: any = await client.request('watch/start', { what: m.def.what, namespace: cfg().get<string>('defaultNamespace') || undefined });
      this.watchIds.set(m, r.watchId); watches.set(r.watchId, m);
    } catch (e) { output.appendLine(`watch ${m.def.what}: ${errMsg(e)}`); }
  }
  async stopWatches() {
    for (const [m, id] of this.watchIds) { watches.delete(id); try { await client?.request('watch/stop', { watchId: id }); } catch { /* gone */ } this.watchIds.delete(m); }
  }

  getTreeItem(n: Node): vscode.TreeItem {
    switch (n.type) {
      case 'section': {
        const t = new vscode.TreeItem(n.model.def.label, vscode.TreeItemCollapsibleState.Collapsed);
        t.id = `section:${n.model.def.what}`; t.contextValue = 'kflowSection';
        t.description = sectionDescription(n.model);
        return t;
      }
      case 'row': {
        const r = n.row, phase = phaseOf(r), job = n.model.def.what === 'jobs';
        const t = new vscode.TreeItem(r.name, job ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
        t.id = `${n.model.def.what}:${rowKey(r)}`;
        t.description = [job ? r.kind : undefined, phase].filter((x) => x).join(' · ');
        const ic = phaseIcon(phase);
        t.iconPath = new vscode.ThemeIcon(ic.id, ic.color ? new vscode.ThemeColor(ic.color) : undefined);
        t.tooltip = tooltipOf(r);
        t.contextValue = contextValueOf(n.model.def.what);
        return t;
      }
      case 'more': {
        const t = new vscode.TreeItem('Load more…'); t.id = `more:${n.model.def.what}:${n.model.rows.length}`;
        t.command = { command: 'kflow.loadMore', title: 'Load more', arguments: [n.model.def.what] };
        t.iconPath = new vscode.ThemeIcon('ellipsis'); return t;
      }
      case 'info': { const t = new vscode.TreeItem(n.label); if (n.icon) { t.iconPath = new vscode.ThemeIcon(n.icon); } return t; }
      case 'replica': {
        const t = new vscode.TreeItem(n.replica.name);
        const ic = phaseIcon(n.replica.phase ?? '');
        t.iconPath = new vscode.ThemeIcon(ic.id, ic.color ? new vscode.ThemeColor(ic.color) : undefined);
        t.description = `${n.replica.phase ?? ''}${n.replica.exit_code !== undefined && n.replica.exit_code !== null ? ` (exit ${n.replica.exit_code})` : ''}`;
        return t;
      }
      case 'jobLogs': { const t = new vscode.TreeItem('Logs'); t.iconPath = new vscode.ThemeIcon('output'); t.command = { command: 'kflow.showLogs', title: 'Show Logs', arguments: [n.job] }; return t; }
      case 'jobDetails': { const t = new vscode.TreeItem('Details'); t.iconPath = new vscode.ThemeIcon('info'); t.command = { command: 'kflow.describeJob', title: 'Describe', arguments: [n.job] }; return t; }
    }
  }

  async getChildren(n?: Node): Promise<Node[]> {
    if (!n) {
      // Signed out and no other connection: no sections, so VS Code shows the welcome view (Sign In).
      await getClient();
      if (!identity?.signed_in && !connected) { return []; }
      return this.models.map((m) => this.sectionNodes.get(m)!);
    }
    if (n.type === 'section') {
      const m = n.model;
      if (!m.loaded) { await m.loadFirst(); this.updateMessage(); void this.ensureWatch(m); }
      return childrenOf(m).map((ch): Node => {
        if (ch.type === 'row') {
          const node: Node = { type: 'row', model: m, row: ch.row }; this.rowNodes.set(`${m.def.what}:${rowKey(ch.row)}`, node); return node;
        }
        return ch.type === 'more' ? { type: 'more', model: m } : { type: 'info', label: ch.label, icon: ch.icon };
      });
    }
    if (n.type === 'row' && n.model.def.what === 'jobs') {
      const kids: Node[] = [];
      try {
        const s: any = await client?.request('job/status', { name: n.row.name });
        for (const r of s?.replicas ?? []) { kids.push({ type: 'replica', job: n.row.name, replica: r }); }
      } catch (e) { kids.push({ type: 'info', label: errMsg(e), icon: 'warning' }); }
      kids.push({ type: 'jobLogs', job: n.row.name }, { type: 'jobDetails', job: n.row.name });
      return kids;
    }
    return [];
  }
  getParent(n: Node): Node | undefined { return n.type === 'row' || n.type === 'more' ? this.sectionNodes.get(n.model) : undefined; }

  jobs(): SectionModel { return this.models[0]; }
  async reveal(name: string) {
    const m = this.jobs();
    const sec = this.sectionNodes.get(m)!;
    if (!m.loaded) { await m.loadFirst(); }
    if (!m.rows.find((r) => r.name === name)) { m.applyChanges([{ change: 'upsert', row: { name, phase: 'Pending' } }]); this.refreshSection(m); }
    await this.view.reveal(sec, { expand: true });
    await this.getChildren(sec);
    const node = [...this.rowNodes.entries()].find(([k]) => k.startsWith('jobs:') && k.endsWith(`/${name}`))?.[1];
    if (node) { await this.view.reveal(node, { select: true, focus: false }); }
  }
}
let tree: PanelProvider;

// ---------- virtual documents ----------
class StaticDocs implements vscode.TextDocumentContentProvider {
  private emitter = new vscode.EventEmitter<vscode.Uri>(); onDidChange = this.emitter.event;
  content = new Map<string, string>();
  provideTextDocumentContent(uri: vscode.Uri) { return this.content.get(uri.toString()) ?? ''; }
  set(uri: vscode.Uri, text: string) { this.content.set(uri.toString(), text); this.emitter.fire(uri); }
}
const yamlDocs = new StaticDocs();
const describeDocs = new StaticDocs();

class LogDoc {
  buf = new LogBuffer();
  followId?: string;
  private timer?: NodeJS.Timeout;
  constructor(readonly name: string, readonly uri: vscode.Uri) {}
  append(lines: any[]) { this.buf.append(lines); this.schedule(); }
  end(st?: any, error?: any) { if (error?.message) { this.buf.append([{ text: `error: ${error.message}` }]); } this.buf.end(st); this.schedule(); }
  private schedule() { if (!this.timer) { this.timer = setTimeout(() => { this.timer = undefined; logDocs.changed(this.uri); }, 50); } }
}
class LogProvider implements vscode.TextDocumentContentProvider {
  private emitter = new vscode.EventEmitter<vscode.Uri>(); onDidChange = this.emitter.event;
  docs = new Map<string, LogDoc>();
  provideTextDocumentContent(uri: vscode.Uri) { return this.docs.get(uri.toString())?.buf.text() ?? ''; }
  changed(uri: vscode.Uri) { this.emitter.fire(uri); }
}
const logDocs = new LogProvider();
const relanguaging = new Set<string>();

async function openLogs(name: string, beside = false) {
  const c = await getClient(); if (!c) { return; }
  const uri = vscode.Uri.parse(`kflow-logs:/${encodeURIComponent(name)}.log`);
  let d = logDocs.docs.get(uri.toString());
  if (!d || d.buf.ended) {
    d = new LogDoc(name, uri); logDocs.docs.set(uri.toString(), d);
    try {
      const r: any = await c.request('logs/follow', { name, follow: true });
      d.followId = r.followId; d.buf.replicas = r.replicas ?? []; follows.set(r.followId, d);
      for (const f of early.get(r.followId) ?? []) { f(d); }
      early.delete(r.followId);
    } catch (e) { d.buf.append([{ text: `error: ${errMsg(e)}` }]); d.buf.end(); }
  }
  let doc = await vscode.workspace.openTextDocument(uri);
  if (doc.languageId !== 'kflow-log') {
    // Setting the language closes and reopens the document: that close must not end the follow.
    relanguaging.add(uri.toString());
    try { doc = await vscode.languages.setTextDocumentLanguage(doc, 'kflow-log'); } finally { relanguaging.delete(uri.toString()); }
  }
  await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: false, viewColumn: beside ? vscode.ViewColumn.Beside : undefined });
}

async function showYaml(title: string, text: string) {
  const uri = vscode.Uri.parse(`kflow-yaml:/${encodeURIComponent(title)}.yaml`);
  yamlDocs.set(uri, text);
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.languages.setTextDocumentLanguage(doc, 'yaml');
  await vscode.window.showTextDocument(doc, { preview: false });
}

async function describe(name: string) {
  const c = await getClient(); if (!c) { return; }
  const uri = vscode.Uri.parse(`kflow-describe:/${encodeURIComponent(name)}.describe`);
  try { describeDocs.set(uri, describeText(await c.request('job/describe', { name }))); } catch (e) { return showError(`Describe ${name}`, e); }
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.window.showTextDocument(doc, { preview: false });
}
function describeText(d: any): string {
  const lines: string[] = [];
  const walk = (v: any, indent: string) => {
    for (const [k, x] of Object.entries(v ?? {})) {
      if (x === null || x === undefined) { continue; }
      if (Array.isArray(x)) { lines.push(`${indent}${k}:`); for (const i of x) { if (typeof i === 'object') { lines.push(`${indent}  -`); walk(i, indent + '    '); } else { lines.push(`${indent}  - ${i}`); } } }
      else if (typeof x === 'object') { lines.push(`${indent}${k}:`); walk(x, indent + '  '); }
      else { lines.push(`${indent}${k}: ${x}`); }
    }
  };
  walk(d, ''); return lines.join('\n') + '\n';
}

// ---------- sign-in ----------
async function login() {
  const c = await getClient(); if (!c) { return; }
  let url = cfg().get<string>('url') || identity?.url || '';
  let username = identity?.username || '';
  let message: string | undefined;
  for (;;) {
    const u = await input({ title: 'Kubeflow sign in (1/3)', prompt: message ?? 'Kubeflow URL', value: url, ignoreFocusOut: true,
      validate: (v) => (/^https?:\/\/\S+$/.test(v.trim()) ? undefined : 'A URL like https://kubeflow.example.com') });
    if (typeof u !== 'string') { return; } url = u.trim();
    const n = await input({ title: 'Kubeflow sign in (2/3)', prompt: message ?? 'Username', value: username, ignoreFocusOut: true, validate: (v) => (v.trim() ? undefined : 'Enter your username') });
    if (typeof n !== 'string') { return; } username = n.trim();
    const pw = await input({ title: 'Kubeflow sign in (3/3)', prompt: message ?? `Password for ${username}`, password: true, ignoreFocusOut: true, validate: (v) => (v ? undefined : 'Enter your password') });
    if (typeof pw !== 'string') { return; }
    try {
      const id = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Signing in to Kubeflow…' },
        () => c.request('login', { url, username, password: pw }));
      setIdentity(id); void refreshConnection();
      void vscode.window.showInformationMessage(`Signed in to Kubeflow as ${id.username}.`);
      return;
    } catch (e: any) {
      if (e instanceof KflowError && (e.kind === 'validation' || e.kind === 'backend')) { message = `⚠ ${e.data.problem ?? e.message}`; continue; }
      return showError('Sign in', e);
    }
  }
}

function input(o: { title: string; prompt: string; value?: string; password?: boolean; ignoreFocusOut?: boolean; validate?: (v: string) => string | undefined; step?: number; total?: number; back?: boolean }): Promise<string | undefined | typeof BACK> {
  return new Promise((resolve) => {
    const box = vscode.window.createInputBox();
    box.title = o.title; box.prompt = o.prompt; box.value = o.value ?? ''; box.password = !!o.password; box.ignoreFocusOut = !!o.ignoreFocusOut;
    if (o.step) { box.step = o.step; box.totalSteps = o.total; }
    if (o.back) { box.buttons = [vscode.QuickInputButtons.Back]; }
    let done = false;
    const finish = (v: any) => { if (!done) { done = true; resolve(v); box.dispose(); } };
    box.onDidTriggerButton((b) => { if (b === vscode.QuickInputButtons.Back) { finish(BACK); } });
    box.onDidChangeValue((v) => { box.validationMessage = undefined; void v; });
    box.onDidAccept(() => { const m = o.validate?.(box.value); if (m) { box.validationMessage = m; return; } finish(box.value); });
    box.onDidHide(() => finish(undefined));
    box.show();
  }) as any;
}
const BACK = Symbol('back');

function pick(o: { title: string; items: string[]; value?: string; step: number; total: number; back: boolean; extraButton?: vscode.QuickInputButton }): Promise<string | undefined | typeof BACK | 'preview'> {
  return new Promise((resolve) => {
    const qp = vscode.window.createQuickPick();
    qp.title = o.title; qp.step = o.step; qp.totalSteps = o.total; qp.ignoreFocusOut = true;
    qp.items = o.items.map((label) => ({ label }));
    const cur = qp.items.find((i) => i.label === o.value); if (cur) { qp.activeItems = [cur]; }
    qp.buttons = [...(o.back ? [vscode.QuickInputButtons.Back] : []), ...(o.extraButton ? [o.extraButton] : [])];
    let done = false;
    const finish = (v: any) => { if (!done) { done = true; resolve(v); qp.dispose(); } };
    qp.onDidTriggerButton((b) => finish(b === vscode.QuickInputButtons.Back ? BACK : 'preview'));
    qp.onDidAccept(() => { const s = qp.selectedItems[0]?.label ?? (qp.value || undefined); if (s) { finish(s); } });
    qp.onDidHide(() => finish(undefined));
    qp.show();
  });
}

// ---------- run wizard ----------
const imageCache = new TtlCache<any>(60_000);

async function runWizard(uri: vscode.Uri | undefined, withTemplate: boolean) {
  const file = uri?.fsPath ?? vscode.window.activeTextEditor?.document.uri.fsPath;
  if (!file || !file.endsWith('.py')) { void vscode.window.showErrorMessage('Choose a Python (.py) file to run as a Kubeflow training job.'); return; }
  const c = await getClient(); if (!c) { return; }
  const root = wsFolder();
  const script = root && file.startsWith(root + path.sep) ? path.relative(root, file) : file;
  let tplOptions: any, tplName: string | undefined;
  if (withTemplate) {
    let templates: any[] = [];
    try { templates = await c.request('templates', {}); } catch (e) { return showError('Templates', e); }
    if (!templates.length) { void vscode.window.showInformationMessage('No kflow templates found (project or user).'); return; }
    const t = await vscode.window.showQuickPick(templates.map((x) => ({ label: x.name, description: `${x.scope} · ${x.path}`, t: x })), { title: 'Run using template' });
    if (!t) { return; }
    tplOptions = t.t.options ?? {}; tplName = t.t.path ?? t.t.name;
  }
  const ns = cfg().get<string>('defaultNamespace') || undefined;
  // The images are fetched while the first steps are shown (the wizard opens at once, NFR-3).
  const imagesP: Promise<any> = imageCache.get(`${ns}`, () => c.request('images', { namespace: ns })).catch((e) => { output.appendLine(`images: ${errMsg(e)}`); return undefined; });
  const remembered = ctx.workspaceState.get<Values>('kflow.lastRun') ?? {};
  const recent = ctx.workspaceState.get<string[]>('kflow.recentImages') ?? [];
  const w = new Wizard({ images: imageItems(undefined, recent), defaultNamespace: ns, autoPVC: cfg().get<boolean>('autoPVCforPip') }, remembered, tplOptions);
  let imagesLoaded = false;
  const previewBtn: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon('file-code'), tooltip: 'Show YAML' };
  const options = () => { const o = w.runOptions(script); if (tplName) { o.template = tplName; } return o; };
  while (!w.done) {
    const s = w.current;
    const title = `Run ${path.basename(file)} as Kubeflow Training Job: ${s.title}`;
    let v: any;
    if (s.id === 'image' && !imagesLoaded) {
      const images = await imagesP; imagesLoaded = true;
      w.ctx.images = imageItems(images, recent);
      if (!w.values.image) { w.values.image = images?.default ?? w.ctx.images[0] ?? ''; }
    }
    if (s.type === 'pick') {
      v = await pick({ title, items: s.items!(w.ctx), value: w.values[s.id], step: w.stepNumber, total: w.totalSteps, back: w.canGoBack, extraButton: previewBtn });
    } else {
      v = await input({ title, prompt: s.placeholder ?? s.title, value: w.values[s.id], step: w.stepNumber, total: w.totalSteps, back: w.canGoBack, validate: s.validate, ignoreFocusOut: true });
    }
    if (v === undefined) { return; }
    if (v === BACK) { w.back(); continue; }
    if (v === 'preview' || (s.id === 'confirm' && v === 'Show YAML')) {
      try { const p: any = await c.request('preview', { options: options() }); await showYaml(`${path.basename(file, '.py')}-preview`, p.yaml); } catch (e) { await showError('Preview', e); }
      continue;
    }
    const msg = w.accept(v);
    if (msg) { void vscode.window.showWarningMessage(msg); }
  }
  await ctx.workspaceState.update('kflow.lastRun', w.remembered());
  if (w.values.image) { await ctx.workspaceState.update('kflow.recentImages', [w.values.image, ...recent.filter((i) => i !== w.values.image)].slice(0, 10)); }
  try {
    const r: any = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Submitting Kubeflow training job…' }, () => c.request('run', { options: options() }));
    for (const wmsg of r.warnings ?? []) { void vscode.window.showWarningMessage(wmsg); }
    void vscode.window.showInformationMessage(`Started ${r.kind} ${r.name}${r.namespace ? ' in ' + r.namespace : ''}.`);
    lastPhase.set(r.name, 'Pending');
    try { await tree.reveal(r.name); } catch (e) { output.appendLine(`reveal: ${errMsg(e)}`); }
    await openLogs(r.name);
  } catch (e) { await showError('Run', e); }
}

// ---------- job commands ----------
async function jobName(arg: any, action: string): Promise<string | undefined> {
  if (typeof arg === 'string') { return arg; }
  if (arg?.row?.name) { return arg.row.name; }
  const m = tree.jobs(); if (!m.loaded) { await m.loadFirst(); }
  const p = await vscode.window.showQuickPick(m.rows.map((r) => ({ label: r.name, description: `${r.kind ?? ''} ${phaseOf(r)}` })), { title: `${action}: choose a job` });
  return p?.label;
}

function cmd(name: string, f: (...a: any[]) => any) { ctx.subscriptions.push(vscode.commands.registerCommand(name, async (...a) => { try { await f(...a); } catch (e) { await showError(name, e); } })); }

export async function activate(context: vscode.ExtensionContext) {
  ctx = context;
  secrets = new TrackedSecrets(context.secrets);
  tree = new PanelProvider();
  tree.view = vscode.window.createTreeView('kflowPanel', { treeDataProvider: tree, showCollapseAll: true });
  context.subscriptions.push(tree.view, status, output,
    vscode.workspace.registerTextDocumentContentProvider('kflow-yaml', yamlDocs),
    vscode.workspace.registerTextDocumentContentProvider('kflow-describe', describeDocs),
    vscode.workspace.registerTextDocumentContentProvider('kflow-logs', logDocs),
    vscode.languages.registerDocumentLinkProvider({ language: 'kflow-log' }, {
      provideDocumentLinks(doc) {
        const root = wsFolder(); if (!root) { return []; }
        return tracebackFrames(doc.getText()).flatMap((f) => {
          const rel = mapToWorkspace(f.file, (r) => fs.existsSync(path.join(root, r))); if (!rel) { return []; }
          const target = vscode.Uri.file(path.join(root, rel)).with({ fragment: `L${f.lineNo}` });
          return [new vscode.DocumentLink(new vscode.Range(f.line, f.start, f.line, f.end), target)];
        });
      },
    }),
    vscode.workspace.onDidCloseTextDocument((d) => {
      if (d.uri.scheme !== 'kflow-logs' || relanguaging.has(d.uri.toString())) { return; }
      const ld = logDocs.docs.get(d.uri.toString());
      if (ld?.followId) { follows.delete(ld.followId); void client?.request('logs/unfollow', { followId: ld.followId }).catch(() => undefined); }
      logDocs.docs.delete(d.uri.toString());
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      const ch = classifyChange((s) => e.affectsConfiguration(s));
      if (ch.restart) { await client?.stop(); client = undefined; installPrompted = false; await getClient(); return; }
      if (ch.update && client) {
        try { await client.request('settings/update', { settings: settingsFromConfig((k) => cfg().get(k)) }); } catch (e2) { await showError('kflow settings', e2); }
        if (e.affectsConfiguration('kflow.defaultNamespace') || e.affectsConfiguration('kflow.url') || e.affectsConfiguration('kflow.apiServer')) { await tree.stopWatches(); setIdentity(identity); tree.refreshAll(); }
      }
    }),
  );
  setIdentity(undefined);

  cmd('kflow.login', login);
  cmd('kflow.signOut', async () => {
    const c = await getClient();
    let who: any;
    let removed: string[] = [];
    try { who = await c?.request('logout'); } finally {
      removed = [...new Set([...await secrets.clear(), ...(c?.knownSecretKeys ?? [])])];
      for (const k of removed) { await context.secrets.delete(k); }
      c?.knownSecretKeys.clear();
    }
    let left = (await secrets.keys()).length;
    for (const k of removed) { if ((await context.secrets.get(k)) !== undefined) { left++; } }
    await tree.stopWatches();
    setIdentity({ signed_in: false }); await refreshConnection();
    const msg = `Signed out of Kubeflow${who?.username ? ' (' + who.username + ')' : ''}. Removed ${removed.length} stored secret${removed.length === 1 ? '' : 's'}; ${left ? left + ' remain' : 'none remain'}.`;
    output.appendLine(msg);
    void (left ? vscode.window.showErrorMessage(msg) : vscode.window.showInformationMessage(msg));
  });
  cmd('kflow.showStatus', async () => {
    const c = await getClient(); if (!c) { return; }
    const id: any = await c.request('whoami');
    const b = await vscode.window.showInformationMessage(id.signed_in ? `Kubeflow: ${id.username} at ${id.url} (${id.store_description ?? id.store})` : 'Not signed in to Kubeflow.', id.signed_in ? 'Sign Out' : 'Sign In');
    if (b === 'Sign Out') { await vscode.commands.executeCommand('kflow.signOut'); } else if (b === 'Sign In') { await login(); }
  });
  cmd('kflow.refresh', async () => { await tree.stopWatches(); tree.refreshAll(); });
  cmd('kflow.loadMore', async (what: string) => { const m = tree.models.find((x) => x.def.what === what); if (m) { await m.loadMore(); tree.refreshSection(m); } });
  cmd('kflow.runTrainingJob', (uri?: vscode.Uri) => runWizard(uri instanceof vscode.Uri ? uri : undefined, false));
  cmd('kflow.runAsJob', (uri?: vscode.Uri) => runWizard(uri instanceof vscode.Uri ? uri : undefined, false));
  cmd('kflow.runUsingTemplate', (uri?: vscode.Uri) => runWizard(uri instanceof vscode.Uri ? uri : undefined, true));
  cmd('kflow.showLogs', async (a) => { const n = await jobName(a, 'Show Logs'); if (n) { await openLogs(n); } });
  cmd('kflow.showLogsBeside', async (a) => {
    const u = vscode.window.activeTextEditor?.document.uri;
    const n = a === undefined && u?.scheme === 'kflow-logs' ? decodeURIComponent(u.path.slice(1).replace(/\.log$/, '')) : await jobName(a, 'Open Logs in New Panel');
    if (n) { await openLogs(n, true); }
  });
  cmd('kflow.describeJob', async (a) => { const n = await jobName(a, 'Describe'); if (n) { await describe(n); } });
  cmd('kflow.refreshDescribe', async () => {
    const u = vscode.window.activeTextEditor?.document.uri; if (u?.scheme !== 'kflow-describe') { return; }
    const name = decodeURIComponent(u.path.slice(1).replace(/\.describe$/, ''));
    describeDocs.set(u, describeText(await client!.request('job/describe', { name })));
  });
  cmd('kflow.showYaml', async (a) => { const n = await jobName(a, 'Show YAML'); if (!n) { return; } const r: any = await (await getClient())!.request('job/yaml', { name: n }); await showYaml(n, r.yaml); });
  cmd('kflow.restartJob', async (a) => {
    const n = await jobName(a, 'Restart'); if (!n) { return; }
    const r: any = await (await getClient())!.request('job/restart', { name: n });
    void vscode.window.showInformationMessage(`Restarted ${n} as ${r.name} (attempt ${r.attempt}).`);
    await tree.reveal(r.name).catch(() => undefined);
  });
  cmd('kflow.cancelJob', async (a) => {
    const n = await jobName(a, 'Cancel'); if (!n) { return; }
    const ok = await vscode.window.showWarningMessage(`Cancel Kubeflow job ${n}?`, { modal: true }, 'Cancel Job'); if (ok !== 'Cancel Job') { return; }
    const s: any = await (await getClient())!.request('job/cancel', { name: n });
    void vscode.window.showInformationMessage(`${n}: ${s.phase}${s.reason ? ' (' + s.reason + ')' : ''}`);
  });
  cmd('kflow.deleteJob', async (a) => {
    const n = await jobName(a, 'Delete'); if (!n) { return; }
    const ok = await vscode.window.showWarningMessage(`Delete Kubeflow job ${n}? This cannot be undone.`, { modal: true }, 'Delete'); if (ok !== 'Delete') { return; }
    await (await getClient())!.request('job/delete', { name: n });
    const m = tree.jobs(); if (m.applyChanges([{ change: 'delete', name: n }])) { tree.refreshSection(m); }
    void vscode.window.showInformationMessage(`Deleted ${n}.`);
  });
  cmd('kflow.deleteItem', async (a) => {
    const what = a?.model?.def?.what as string, name = a?.row?.name as string; if (!name) { return; }
    const ok = await vscode.window.showWarningMessage(`Delete ${what === 'pvcs' ? 'PVC' : 'notebook'} ${name}?`, { modal: true }, 'Delete'); if (ok !== 'Delete') { return; }
    await (await getClient())!.request(what === 'pvcs' ? 'pvc/delete' : 'notebook/delete', { name });
    if (a.model.applyChanges([{ change: 'delete', name }])) { tree.refreshSection(a.model); }
  });
  cmd('kflow.openDashboard', async () => { const r: any = await (await getClient())!.request('dashboard', { namespace: cfg().get<string>('defaultNamespace') || undefined }); await vscode.env.openExternal(vscode.Uri.parse(r.url)); });
  cmd('kflow.createNotebook', async () => {
    const c = await getClient(); if (!c) { return; }
    const name = await vscode.window.showInputBox({ title: 'Create Notebook: name', validateInput: (v) => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v) ? undefined : 'Lowercase letters, digits and "-"') }); if (!name) { return; }
    let imgs: any; try { imgs = await c.request('notebook/images', {}); } catch { imgs = undefined; }
    const image = imgs?.options?.length ? (await vscode.window.showQuickPick(imageItems(imgs, []), { title: 'Create Notebook: image' })) : undefined;
    if (imgs?.options?.length && !image) { return; }
    const r: any = await c.request('notebook/create', { name, image });
    void vscode.window.showInformationMessage(`Created notebook ${r?.name ?? name}.`);
  });
  cmd('kflow.createPVC', async () => {
    const c = await getClient(); if (!c) { return; }
    const name = await vscode.window.showInputBox({ title: 'Create PVC: name', validateInput: (v) => (/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v) ? undefined : 'Lowercase letters, digits, "-" and "."') }); if (!name) { return; }
    const size = await vscode.window.showInputBox({ title: 'Create PVC: size', value: cfg().get<string>('defaultPVCsize') || '10Gi', validateInput: (v) => (/^\d+(Mi|Gi|Ti)$/.test(v) ? undefined : 'A size like 10Gi') }); if (!size) { return; }
    const r: any = await c.request('pvc/create', { name, size });
    void vscode.window.showInformationMessage(`Created PVC ${r?.name ?? name}.`);
  });
  cmd('kflow.installKernel', async () => {
    if (!client) { await getClient(); }
    if (!found) { await promptInstall('kflow was not found.'); return; }
    const t = vscode.window.createTerminal('kflow kernel');
    t.show(); t.sendText([found.command, ...found.args, 'kernel', 'install'].map((s) => (/^[\w./:-]+$/.test(s) ? s : `'${s}'`)).join(' '));
  });

  void getClient();
}

export async function deactivate() { await tree?.stopWatches(); await client?.stop(); }
