import * as assert from 'assert';
import * as path from 'path';
import { PassThrough } from 'stream';
import { KflowClient, KflowError, SecretStore, signOut } from '../rpc';
import { serve, TOTAL_JOBS } from './fakeServer';

class MemSecrets implements SecretStore {
  m = new Map<string, string>();
  log: string[] = [];
  async get(k: string) { this.log.push(`get ${k}`); return this.m.get(k); }
  async store(k: string, v: string) { this.log.push(`store ${k}`); this.m.set(k, v); }
  async delete(k: string) { this.log.push(`delete ${k}`); this.m.delete(k); }
}

const FAKE = path.join(__dirname, 'fakeServer.js');

describe('KflowClient over a child process (LSP framing on a real pipe)', () => {
  let secrets: MemSecrets;
  let c: KflowClient;
  beforeEach(() => { secrets = new MemSecrets(); c = KflowClient.start(process.execPath, [FAKE], secrets); });
  afterEach(async () => { await c.stop(); });

  it('initializes with the editor as the secret store', async () => {
    const r: any = await c.initialize({ url: 'https://x', verifySSL: true }, '/ws', 'test 1.0');
    assert.strictEqual(r.protocol, 1);
    assert.strictEqual(r.secretStore, 'editor');
    assert.deepStrictEqual(r.echo, { settings: { url: 'https://x', verifySSL: true }, workspaceFolder: '/ws', secretStore: 'client', clientName: 'test 1.0' });
    assert.ok(c.pid && c.pid > 0);
  });

  it('maps error data to KflowError fields (kind, problem, fix, eventId, message)', async () => {
    await c.initialize({}, undefined, 't');
    await assert.rejects(c.request('login', { username: 'me', password: 'wrong' }), (e: any) => {
      assert.ok(e instanceof KflowError);
      assert.strictEqual(e.code, 1001);
      assert.strictEqual(e.kind, 'validation');
      assert.strictEqual(e.data.problem, 'Invalid username or password.');
      assert.strictEqual(e.data.fix, 'Check the password and sign in again.');
      assert.strictEqual(e.data.eventId, 'ev-42');
      assert.strictEqual(e.message, 'Invalid username or password.\nCheck the password and sign in again.');
      return true;
    });
    await assert.rejects(c.request('nope'), (e: any) => e instanceof KflowError && e.code === -32601 && e.kind === 'method-not-found' && e.data.eventId === null);
  });

  it('refuses requests before initialize with not-initialized', async () => {
    await assert.rejects(c.request('whoami'), (e: any) => e.kind === 'not-initialized' && e.code === -32002);
  });

  it('answers secrets/store, secrets/get and secrets/delete from the editor store while its own request waits', async () => {
    await c.initialize({}, undefined, 't');
    const states: string[] = [];
    c.on('session/state', (p) => states.push(p.state));
    const id: any = await c.request('login', { username: 'me', password: 'right-password' });
    assert.strictEqual(id.signed_in, true);
    assert.strictEqual(secrets.m.get('session:me@https://kubeflow.test'), '{"refresh":"tok-for-me"}');
    assert.ok(c.knownSecretKeys.has('session:me@https://kubeflow.test'));
    const who: any = await c.request('whoami');
    assert.strictEqual(who.signed_in, true);
    assert.ok(secrets.log.includes('get session:me@https://kubeflow.test'));
    await c.request('logout');
    assert.strictEqual(secrets.m.size, 0);
    assert.deepStrictEqual(states, ['signed-in', 'signed-out']);
    const after: any = await c.request('whoami');
    assert.strictEqual(after.signed_in, false);
  });

  it('matches concurrent responses by id (a slow request does not hold up others)', async () => {
    await c.initialize({}, undefined, 't');
    const order: string[] = [];
    const slow = c.request('slow').then(() => order.push('slow'));
    const page = c.request('list', { what: 'jobs', limit: 5 }).then((p: any) => { order.push('list'); return p; });
    const [, p] = await Promise.all([slow, page]);
    assert.deepStrictEqual(order, ['list', 'slow']);
    assert.strictEqual(p.items.length, 5);
    assert.strictEqual(p.total, TOTAL_JOBS);
  });

  it('delivers logs/lines then logs/end notifications for a follow', async () => {
    await c.initialize({}, undefined, 't');
    const got: any[] = [];
    const ended = new Promise<any>((resolve) => c.on('logs/end', resolve));
    c.on('logs/lines', (p) => got.push(...p.lines));
    const r: any = await c.request('logs/follow', { name: 'j1', follow: true });
    assert.strictEqual(r.followId, 7);
    const end = await ended;
    assert.strictEqual(end.status.phase, 'Succeeded');
    assert.deepStrictEqual(got.map((l) => l.replica), ['master-0', 'master-0', 'worker-0']);
    assert.strictEqual(got[2].severity, 'error');
  });

  it('Sign Out deletes every key the server stored, even if logout fails', async () => {
    await c.initialize({}, undefined, 't');
    await c.request('login', { username: 'other', password: 'right-password' });
    await secrets.store('password:other@https://kubeflow.test', 'x');
    await signOut(c, secrets, ['password:other@https://kubeflow.test']);
    assert.strictEqual(secrets.m.size, 0);
  });

  it('fails pending and later requests clearly when the server process ends', async () => {
    await c.initialize({}, undefined, 't');
    const p = c.request('slow');
    c.request('shutdown').catch(() => undefined);
    (c as any).proc.kill('SIGKILL');
    await assert.rejects(p, (e: any) => e instanceof KflowError && /kflow serve ended/.test(e.message));
    await assert.rejects(c.request('whoami'), (e: any) => /not running/.test(e.message));
    assert.strictEqual(c.alive, false);
  });

  it('reports a missing executable as a spawn error (ENOENT)', async () => {
    const bad = KflowClient.start('/nonexistent/kflow', [], secrets);
    await bad.exited$();
    assert.strictEqual(bad.spawnError?.code, 'ENOENT');
    await assert.rejects(bad.request('initialize', {}), /not running/);
  });
});

describe('KflowClient over an in-process stream pair', () => {
  it('speaks the same protocol on any Readable/Writable pair', async () => {
    const toServer = new PassThrough(), toClient = new PassThrough();
    serve(toServer, toClient);
    const s = new MemSecrets();
    const c = new KflowClient({ input: toClient, output: toServer }, s);
    await c.initialize({}, undefined, 't');
    const p: any = await c.request('list', { what: 'jobs', limit: 200, cursor: '400' });
    assert.strictEqual(p.items.length, TOTAL_JOBS - 400);
    assert.strictEqual(p.next, null);
    await assert.rejects(c.request('list', { what: 'pipelines' }), (e: any) => e.kind === 'not-installed' && e.code === 1007);
    toClient.end();
    await c.exited$();
    assert.strictEqual(c.alive, false);
  });
});
