import * as assert from 'assert';
import { SectionModel, SECTIONS, childrenOf, viewMessage, sectionDescription, phaseIcon, tooltipOf, contextValueOf, Page, Fetch } from '../tree';

const jobsDef = SECTIONS.find((s) => s.what === 'jobs')!;
const pipelinesDef = SECTIONS.find((s) => s.what === 'pipelines')!;

function fakeCluster(total: number) {
  const calls: Array<{ limit: number; cursor?: string }> = [];
  const fetch: Fetch = async ({ limit, cursor }) => {
    calls.push({ limit, cursor });
    const start = cursor ? parseInt(cursor, 10) : 0;
    const items = Array.from({ length: Math.max(0, Math.min(limit, total - start)) }, (_, i) => ({ name: `job-${start + i}`, kind: 'PyTorchJob', phase: 'Running' }));
    return { items, next: start + limit < total ? String(start + limit) : null, total } as Page;
  };
  return { fetch, calls };
}

describe('tree model paging', () => {
  it('shows the first page of 200 of 5,000 with a "Load more…" item and the TreeView message', async () => {
    const { fetch, calls } = fakeCluster(5000);
    const m = new SectionModel(jobsDef, fetch);
    await m.loadFirst();
    assert.deepStrictEqual(calls, [{ limit: 200, cursor: undefined }]);
    const kids = childrenOf(m);
    assert.strictEqual(kids.length, 201);
    assert.deepStrictEqual(kids[200], { type: 'more', label: 'Load more…' });
    assert.strictEqual(m.message(), 'Jobs: 200 of 5,000');
    assert.strictEqual(viewMessage([m]), 'Jobs: 200 of 5,000');
    assert.strictEqual(sectionDescription(m), '200 of 5,000');
  });

  it('"Load more…" fetches the next page with the cursor, until everything is shown', async () => {
    const { fetch, calls } = fakeCluster(450);
    const m = new SectionModel(jobsDef, fetch);
    await m.loadFirst();
    await m.loadMore();
    assert.strictEqual(calls[1].cursor, '200');
    assert.strictEqual(m.rows.length, 400);
    assert.strictEqual(m.message(), 'Jobs: 400 of 450');
    await m.loadMore();
    assert.strictEqual(m.rows.length, 450);
    assert.strictEqual(m.hasMore, false);
    assert.strictEqual(childrenOf(m).some((c) => c.type === 'more'), false);
    assert.strictEqual(m.message(), undefined);
    assert.strictEqual(viewMessage([m]), undefined);
    await m.loadMore();
    assert.strictEqual(calls.length, 3, 'no request past the last page');
  });

  it('concurrent Load more clicks make one request', async () => {
    const { fetch, calls } = fakeCluster(5000);
    const m = new SectionModel(jobsDef, fetch);
    await m.loadFirst();
    await Promise.all([m.loadMore(), m.loadMore(), m.loadMore()]);
    assert.strictEqual(calls.length, 2);
    assert.strictEqual(m.rows.length, 400);
  });

  it('applies watch changes: upsert in place, new rows first, deletes, and keeps the total', async () => {
    const { fetch } = fakeCluster(5000);
    const m = new SectionModel(jobsDef, fetch);
    await m.loadFirst();
    assert.ok(m.applyChanges([{ change: 'upsert', row: { name: 'job-3', kind: 'PyTorchJob', phase: 'Succeeded' } }]));
    assert.strictEqual(m.rows[3].phase, 'Succeeded');
    assert.strictEqual(m.total, 5000);
    m.applyChanges([{ change: 'upsert', row: { name: 'new-job', kind: 'TFJob', phase: 'Pending' } }]);
    assert.strictEqual(m.rows[0].name, 'new-job');
    assert.strictEqual(m.message(), 'Jobs: 201 of 5,001');
    m.applyChanges([{ change: 'delete', name: 'new-job', kind: 'TFJob' }]);
    assert.strictEqual(m.rows[0].name, 'job-0');
    assert.strictEqual(m.total, 5000);
    assert.strictEqual(m.applyChanges([{ change: 'delete', name: 'absent' }]), false);
  });

  it("a watch's initial listing updates shown rows but leaves unloaded pages' rows out", async () => {
    const { fetch } = fakeCluster(5000);
    const m = new SectionModel(jobsDef, fetch);
    await m.loadFirst();
    const initial = Array.from({ length: 5000 }, (_, i) => ({ change: 'upsert' as const, initial: true, row: { name: `job-${i}`, kind: 'PyTorchJob', phase: i === 7 ? 'Failed' : 'Running' } }));
    assert.ok(m.applyChanges(initial));
    assert.strictEqual(m.rows.length, 200);
    assert.strictEqual(m.rows[0].name, 'job-0');
    assert.strictEqual(m.rows[7].phase, 'Failed');
    assert.strictEqual(m.message(), 'Jobs: 200 of 5,000');
    // Once every page is shown, an initial row it lacks is one created in between: it is added.
    const { fetch: few } = fakeCluster(3);
    const all = new SectionModel(jobsDef, few);
    await all.loadFirst();
    all.applyChanges([{ change: 'upsert', initial: true, row: { name: 'made-meanwhile', kind: 'PyTorchJob', phase: 'Pending' } }]);
    assert.strictEqual(all.rows[0].name, 'made-meanwhile');
  });

  it('keeps the total of the first page when later pages do not tell it', async () => {
    const m = new SectionModel(jobsDef, async (p) => ({ items: [{ name: `j-${p.cursor ?? 0}` }], next: p.cursor ? null : '1', total: p.cursor ? null : 2 }), 1);
    await m.loadFirst();
    await m.loadMore();
    assert.strictEqual(m.total, 2);
    assert.strictEqual(m.rows.length, 2);
  });

  it('a placeholder row without a kind (a job just submitted) is replaced by the watched row, not duplicated', async () => {
    const { fetch } = fakeCluster(10);
    const m = new SectionModel(jobsDef, fetch);
    await m.loadFirst();
    m.applyChanges([{ change: 'upsert', row: { name: 'fresh', phase: 'Pending' } }]);
    m.applyChanges([{ change: 'upsert', row: { name: 'fresh', kind: 'PyTorchJob', phase: 'Running' } }]);
    assert.strictEqual(m.rows.filter((r) => r.name === 'fresh').length, 1);
    assert.strictEqual(m.rows[0].kind, 'PyTorchJob');
    assert.strictEqual(m.rows[0].phase, 'Running');
    assert.strictEqual(m.total, 11);
  });

  it('a component the deployment lacks says so', async () => {
    const m = new SectionModel(pipelinesDef, async () => { throw Object.assign(new Error('Kubeflow Pipelines is not installed here'), { kind: 'not-installed' }); });
    await m.loadFirst();
    assert.deepStrictEqual(childrenOf(m), [{ type: 'info', label: 'Pipelines are not installed here', icon: 'info' }]);
    assert.strictEqual(viewMessage([m]), undefined);
  });

  it('other errors are shown in the section and an empty section says so', async () => {
    const m = new SectionModel(jobsDef, async () => { throw new Error('connection refused'); });
    await m.loadFirst();
    assert.deepStrictEqual(childrenOf(m), [{ type: 'info', label: 'connection refused', icon: 'warning' }]);
    const e = new SectionModel(jobsDef, async () => ({ items: [], next: null, total: 0 }));
    await e.loadFirst();
    assert.deepStrictEqual(childrenOf(e), [{ type: 'info', label: 'No jobs' }]);
  });

  it('icons, tooltips (phase and failure reason) and context values', () => {
    assert.strictEqual(phaseIcon('Succeeded').id, 'pass');
    assert.strictEqual(phaseIcon('Failed').id, 'error');
    assert.strictEqual(phaseIcon('Running').id, 'sync~spin');
    assert.strictEqual(tooltipOf({ name: 'a', kind: 'PyTorchJob', phase: 'Failed', reason: 'OOMKilled' }), 'PyTorchJob a\nPhase: Failed\nReason: OOMKilled');
    assert.strictEqual(contextValueOf('jobs'), 'kflowJob');
    assert.strictEqual(contextValueOf('pvcs'), 'kflowPvc');
  });
});
