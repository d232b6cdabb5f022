// JSON-RPC 2.0 client for `kflow serve --stdio` (LSP framing), no vscode dependency.
import { spawn, ChildProcess } from 'child_process';
import { Readable, Writable } from 'stream';
import * as rpc from 'vscode-jsonrpc/node';

export interface SecretStore {
  get(key: string): Promise<string | undefined>;
  store(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
}

export interface ErrorData { kind?: string; problem?: string; fix?: string | null; eventId?: string | null; message?: string }

export class KflowError extends Error {
  constructor(public code: number, message: string, public data: ErrorData) { super(message); }
  get kind(): string { return this.data.kind ?? ''; }
}

export type NotificationHandler = (params: any) => void;

export class KflowClient {
  private conn: rpc.MessageConnection;
  private handlers = new Map<string, NotificationHandler[]>();
  /** every key the server ever stored through us (Sign Out deletes them all) */
  readonly knownSecretKeys = new Set<string>();
  private exited = false;
  /** the error spawning the process failed with (ENOENT: not found) */
  spawnError: (Error & { code?: string }) | undefined;
  onExit?: (code: number | null, stderr: string) => void;
  private exitWaiters: Array<() => void> = [];
  private gone: Promise<never>;

  private proc: ChildProcess | undefined;
  private stderrTail = '';

  /** `io`: the server's output (we read) and input (we write); `proc` when it is a child process. */
  constructor(io: { input: Readable; output: Writable; proc?: ChildProcess }, private secrets: SecretStore) {
    this.proc = io.proc;
    this.gone = this.exited$().then(() => { throw new KflowError(-32099, `kflow serve ended${this.stderrTail ? ': ' + this.stderrTail.trim() : ''}`, { kind: 'ended' }); });
    this.gone.catch(() => undefined);
    this.proc?.stderr?.on('data', (d) => { this.stderrTail = (this.stderrTail + d.toString()).slice(-4000); });
    this.proc?.on('exit', (code) => { this.markExited(code); });
    this.proc?.on('error', (e) => { this.spawnError = e; this.markExited(null); });
    io.input.on('close', () => { if (!this.proc) { this.markExited(null); } });
    this.conn = rpc.createMessageConnection(new rpc.StreamMessageReader(io.input), new rpc.StreamMessageWriter(io.output));
    this.conn.onClose(() => { if (!this.proc) { this.markExited(null); } });
    this.conn.onRequest('secrets/get', async (p: { key: string }) => ({ value: (await this.secrets.get(p.key)) ?? null }));
    this.conn.onRequest('secrets/store', async (p: { key: string; value: string }) => {
      this.knownSecretKeys.add(p.key); await this.secrets.store(p.key, p.value); return null;
    });
    this.conn.onRequest('secrets/delete', async (p: { key: string }) => { await this.secrets.delete(p.key); return null; });
    for (const m of ['watch/changes', 'logs/lines', 'logs/end', 'session/state']) {
      this.conn.onNotification(m, (p: any) => { for (const h of this.handlers.get(m) ?? []) { h(p); } });
    }
    this.conn.listen();
  }

  static start(command: string, args: string[], secrets: SecretStore, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): KflowClient {
    const proc = spawn(command, [...args, 'serve', '--stdio'], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    return new KflowClient({ input: proc.stdout!, output: proc.stdin!, proc }, secrets);
  }

  private markExited(code: number | null) {
    if (this.exited) { return; }
    this.exited = true;
    this.onExit?.(code, this.stderrTail);
    for (const w of this.exitWaiters.splice(0)) { w(); }
  }
  /** resolves when the server has gone (its process ended, or the stream closed) */
  exited$(): Promise<void> { return this.exited ? Promise.resolve() : new Promise((r) => this.exitWaiters.push(r)); }

  get stderr(): string { return this.stderrTail; }
  get pid(): number | undefined { return this.proc?.pid; }
  get alive(): boolean { return !this.exited; }

  on(method: string, h: NotificationHandler): () => void {
    const list = this.handlers.get(method) ?? [];
    list.push(h); this.handlers.set(method, list);
    return () => { const l = this.handlers.get(method) ?? []; const i = l.indexOf(h); if (i >= 0) { l.splice(i, 1); } };
  }

  async request<T = any>(method: string, params: any = {}): Promise<T> {
    if (this.exited) { throw new KflowError(-32099, `kflow serve is not running${this.stderrTail ? ': ' + this.stderrTail.trim() : ''}`, { kind: 'ended' }); }
    try {
      return await Promise.race([this.conn.sendRequest(method, params) as Promise<T>, this.gone]);
    } catch (e: any) {
      if (e instanceof rpc.ResponseError) {
        const data = (e.data ?? {}) as ErrorData;
        throw new KflowError(e.code, data.message ?? e.message, data);
      }
      throw e;
    }
  }

  initialize(settings: any, workspaceFolder: string | undefined, clientName: string) {
    return this.request('initialize', { settings, workspaceFolder, secretStore: 'client', clientName });
  }

  async stop(): Promise<void> {
    if (this.exited) { return; }
    try { await Promise.race([this.request('shutdown'), new Promise((r) => setTimeout(r, 2000))]); } catch { /* ended */ }
    try { await this.conn.sendNotification('exit'); } catch { /* ended */ }
    this.conn.dispose();
    this.proc?.stdin?.end();
    const p = this.proc;
    if (p) { setTimeout(() => { if (!this.exited) { p.kill(); } }, 2000).unref(); }
  }
}

/** Sign Out: `logout`, then delete every kflow key from the editor's store. */
export async function signOut(client: KflowClient, secrets: SecretStore, extraKeys: Iterable<string>): Promise<any> {
  let who: any = null;
  try { who = await client.request('logout'); } finally {
    for (const k of new Set([...client.knownSecretKeys, ...extraKeys])) { await secrets.delete(k); }
  }
  return who;
}
