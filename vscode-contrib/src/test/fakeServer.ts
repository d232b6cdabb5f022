// A stand-in for `kflow serve --stdio` that speaks LSP framing by hand (no vscode-jsonrpc), so the
// client's framing, id matching, error mapping and server→client secrets requests are tested over a
// real pipe. Run as a child process: `node fakeServer.js serve --stdio`.
import { Readable, Writable } from 'stream';

type Msg = { jsonrpc: '2.0'; id?: number | string; method?: string; params?: any; result?: any; error?: any };

export function frame(m: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/** Splits LSP-framed messages out of a byte stream. */
export function reader(input: Readable, onMessage: (m: Msg) => void) {
  let buf = Buffer.alloc(0);
  input.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const sep = buf.indexOf('\r\n\r\n');
      if (sep < 0) { return; }
      const header = buf.subarray(0, sep).toString('ascii');
      const m = /Content-Length: (\d+)/i.exec(header);
      if (!m) { throw new Error('no Content-Length'); }
      const len = parseInt(m[1], 10);
      if (buf.length < sep + 4 + len) { return; }
      const body = buf.subarray(sep + 4, sep + 4 + len).toString('utf8');
      buf = buf.subarray(sep + 4 + len);
      onMessage(JSON.parse(body));
    }
  });
}

export const TOTAL_JOBS = 450;
const URL = 'https://kubeflow.test';

/** The fake server's behaviour over any stream pair. */
export function serve(input: Readable, output: Writable) {
  let initialized = false;
  let nextId = 1000;
  const pending = new Map<number, (m: Msg) => void>();
  const send = (m: Msg) => output.write(frame(m));
  const ask = (method: string, params: any) => new Promise<Msg>((resolve) => { const id = nextId++; pending.set(id, resolve); send({ jsonrpc: '2.0', id, method, params }); });
  const notify = (method: string, params: any) => send({ jsonrpc: '2.0', method, params });
  const fail = (id: any, code: number, kind: string, problem: string, fix: string | null, eventId: string | null) =>
    send({ jsonrpc: '2.0', id, error: { code, message: fix ? `${problem}\n${fix}` : problem, data: { kind, problem, fix, eventId, message: fix ? `${problem}\n${fix}` : problem } } });
  const identity = (signed: boolean, username?: string) => ({ signed_in: signed, url: signed ? URL : null, username: username ?? null, store: 'editor' });

  const handle = async (m: Msg) => {
    if (m.id !== undefined && m.method === undefined) { pending.get(m.id as number)?.(m); pending.delete(m.id as number); return; }
    if (m.method === 'exit') { process.exit(0); }
    if (m.id === undefined) { return; }
    const ok = (result: any) => send({ jsonrpc: '2.0', id: m.id, result });
    const p = m.params ?? {};
    if (m.method !== 'initialize' && !initialized) { return fail(m.id, -32002, 'not-initialized', 'initialize first', null, null); }
    switch (m.method) {
      case 'initialize':
        initialized = true;
        return ok({ version: '0.1.0', protocol: 1, identity: identity(false), secretStore: p.secretStore === 'client' ? 'editor' : 'keyring', echo: p });
      case 'login': {
        if (p.password !== 'right-password') { return fail(m.id, 1001, 'validation', 'Invalid username or password.', 'Check the password and sign in again.', 'ev-42'); }
        const key = `session:${p.username}@${URL}`;
        const r = await ask('secrets/store', { key, value: `{"refresh":"tok-for-${p.username}"}` });
        if (r.error) { return fail(m.id, 1008, 'backend', 'the editor refused the secret', null, 'ev-43'); }
        notify('session/state', { state: 'signed-in', identity: identity(true, p.username) });
        return ok(identity(true, p.username));
      }
      case 'whoami': {
        const r = await ask('secrets/get', { key: 'session:me@' + URL });
        return ok(identity(!!r.result?.value, r.result?.value ? 'me' : undefined));
      }
      case 'logout':
        await ask('secrets/delete', { key: 'session:me@' + URL });
        notify('session/state', { state: 'signed-out', identity: identity(false) });
        return ok(identity(true, 'me'));
      case 'list': {
        if (p.what === 'pipelines') { return fail(m.id, 1007, 'not-installed', 'Kubeflow Pipelines is not installed here', null, 'ev-44'); }
        const start = p.cursor ? parseInt(p.cursor, 10) : 0;
        const limit = p.limit ?? 100;
        const items = [];
        for (let i = start; i < Math.min(start + limit, TOTAL_JOBS); i++) { items.push({ name: `job-${String(i).padStart(4, '0')}`, kind: 'PyTorchJob', phase: i % 2 ? 'Running' : 'Succeeded' }); }
        const next = start + limit < TOTAL_JOBS ? String(start + limit) : null;
        return ok({ items, next, total: TOTAL_JOBS });
      }
      case 'slow':
        setTimeout(() => ok({ slow: true }), 300);
        return;
      case 'logs/follow':
        ok({ followId: 7, replicas: ['master-0', 'worker-0'] });
        setTimeout(() => notify('logs/lines', { followId: 7, name: p.name, lines: [{ replica: 'master-0', text: 'ERROR: first', severity: 'error' }] }), 5);
        setTimeout(() => {
          notify('logs/lines', { followId: 7, name: p.name, lines: [{ replica: 'master-0', text: 'epoch 1', severity: 'normal' }, { replica: 'worker-0', text: 'RuntimeError: CUDA out of memory', severity: 'error' }] });
          notify('logs/end', { followId: 7, name: p.name, status: { phase: 'Succeeded', replicas: [] } });
        }, 20);
        return;
      case 'shutdown':
        return ok(null);
      case 'doctor':
        return ok({ cluster_configured: false, connection: null, kinds: [], problem: null, notes: [] });
      case 'watch/start':
        return ok({ watchId: 3 });
      case 'watch/stop':
        return ok({ stopped: true });
      case 'images':
        return ok({ default: 'python:3.12', options: ['python:3.12', 'pytorch/pytorch:2.3'], from_deployment: false });
      case 'templates':
        return ok([]);
      case 'run':
        setTimeout(() => notify('watch/changes', { watchId: 3, changes: [{ change: 'upsert', row: { name: p.options.name || 'train', kind: 'PyTorchJob', phase: 'Running' } }] }), 50);
        setTimeout(() => notify('watch/changes', { watchId: 3, changes: [{ change: 'upsert', row: { name: p.options.name || 'train', kind: 'PyTorchJob', phase: 'Succeeded' } }] }), 1500);
        return ok({ name: p.options.name || 'train', kind: 'PyTorchJob', backend: 'cluster', namespace: 'ns', code_sha256: 'x', replicas: ['master-0'], warnings: [] });
      case 'job/status':
        return ok({ name: p.name, kind: 'PyTorchJob', phase: 'Succeeded', replicas: [{ name: 'master-0', phase: 'Succeeded', exit_code: 0 }] });
      case 'job/yaml':
        return ok({ yaml: `apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata:\n  name: ${p.name}\n` });
      case 'job/describe':
        return ok({ name: p.name, status: { phase: 'Succeeded' } });
      case 'job/restart':
        return ok({ name: p.name, attempt: 2 });
      case 'job/delete':
        return ok(null);
      default:
        return fail(m.id, -32601, 'method-not-found', `no method ${m.method}`, null, null);
    }
  };
  reader(input, (m) => { void handle(m); });
}

if (require.main === module) {
  if (process.argv.slice(2).join(' ') !== 'serve --stdio') { process.stderr.write(`usage: fakeServer serve --stdio (got ${process.argv.slice(2).join(' ')})\n`); process.exit(2); }
  serve(process.stdin, process.stdout);
  process.stdin.on('end', () => process.exit(0));
}
