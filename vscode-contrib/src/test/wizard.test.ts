import * as assert from 'assert';
import { Wizard, STEPS, buildRunOptions, imageItems, TtlCache } from '../wizard';

const ctx = { images: ['pytorch:2.3', 'tf:2.15'], defaultImage: 'pytorch:2.3', defaultNamespace: 'team-a', autoPVC: false };

describe('run wizard steps', () => {
  it('walks every step in order, job type first (default PyTorchJob), and builds RunOptions', () => {
    const w = new Wizard(ctx);
    assert.strictEqual(w.current.id, 'kind');
    assert.strictEqual(w.values.kind, 'PyTorchJob');
    assert.strictEqual(w.totalSteps, STEPS.length);
    const answers: Record<string, string> = { kind: 'PyTorchJob', name: 'mnist', image: 'tf:2.15', gpu: '1', cpu: '2', memory: '8Gi', workers: '2', pip: 'numpy  torch==2.3', apt: '', namespace: '', pip_cache: 'Yes', confirm: 'Run' };
    while (!w.done) { assert.strictEqual(w.accept(answers[w.current.id]), undefined); }
    assert.deepStrictEqual(w.runOptions('train.py'), { script: 'train.py', kind: 'PyTorchJob', name: 'mnist', image: 'tf:2.15', cpu: '2', memory: '8Gi', gpu: 1, workers: 2, pip: ['numpy', 'torch==2.3'], pip_cache: true });
  });

  it('Back returns to the previous step with its value kept', () => {
    const w = new Wizard(ctx);
    w.accept('TFJob'); w.accept('my-job');
    assert.strictEqual(w.current.id, 'image');
    assert.ok(w.canGoBack);
    w.back();
    assert.strictEqual(w.current.id, 'name');
    assert.strictEqual(w.values.name, 'my-job');
    w.back(); w.back();
    assert.strictEqual(w.index, 0);
    assert.strictEqual(w.canGoBack, false);
  });

  it('refuses invalid values and stays on the step', () => {
    const w = new Wizard(ctx);
    w.accept('PyTorchJob');
    assert.match(w.accept('Bad_Name')!, /Lowercase/);
    assert.strictEqual(w.current.id, 'name');
    w.accept(''); w.accept('pytorch:2.3');
    assert.match(w.accept('two')!, /whole number/);
    w.accept('0'); w.accept('500m'); w.accept('512Mi');
    assert.strictEqual(w.current.id, 'workers');
    assert.match(w.accept('0')!, /at least 1/);
  });

  it('a template skips the fields it sets and the options leave them to it', () => {
    const w = new Wizard(ctx, {}, { image: 'custom:1', gpu: 2, workers: 4, pip: ['x'], apt: [] });
    const ids = w.steps.map((s) => s.id);
    assert.ok(!ids.includes('image') && !ids.includes('gpu') && !ids.includes('workers') && !ids.includes('pip'));
    assert.ok(ids.includes('apt'), 'an empty list in the template does not skip the step');
    assert.strictEqual(w.totalSteps, STEPS.length - 4);
    while (!w.done) { w.accept(w.current.id === 'confirm' ? 'Run' : (w.values[w.current.id] ?? '')); }
    const o = w.runOptions('t.py');
    assert.strictEqual(o.image, undefined);
    assert.strictEqual(o.gpu, undefined);
    assert.strictEqual(o.workers, undefined);
    assert.strictEqual(o.kind, 'PyTorchJob');
    assert.strictEqual(o.namespace, 'team-a');
  });

  it('remembered values are the starting values; the confirm choice is not remembered', () => {
    const w = new Wizard(ctx, { image: 'tf:2.15', workers: '3' });
    assert.strictEqual(w.values.image, 'tf:2.15');
    while (!w.done) { w.accept(w.current.id === 'confirm' ? 'Run' : (w.values[w.current.id] ?? '')); }
    const r = w.remembered();
    assert.strictEqual(r.workers, '3');
    assert.strictEqual(r.confirm, undefined);
  });

  it('builds only known RunOptions keys, snake_case', () => {
    const o = buildRunOptions({ kind: 'MPIJob', pip: 'a,b', apt: 'libgl1', pip_cache: 'No' }, 's.py');
    assert.deepStrictEqual(o, { script: 's.py', kind: 'MPIJob', pip: ['a', 'b'], apt: ['libgl1'], pip_cache: false });
  });

  it('image list: default, recent, then the deployment\'s, without duplicates; cached with a short TTL', async () => {
    assert.deepStrictEqual(imageItems({ default: 'a', options: ['a', 'b', 'c'] }, ['c', 'r']), ['a', 'c', 'r', 'b']);
    let now = 0, loads = 0;
    const cache = new TtlCache<number>(1000, () => now);
    assert.strictEqual(await cache.get('k', async () => ++loads), 1);
    now = 500; assert.strictEqual(await cache.get('k', async () => ++loads), 1);
    now = 1500; assert.strictEqual(await cache.get('k', async () => ++loads), 2);
  });
});
