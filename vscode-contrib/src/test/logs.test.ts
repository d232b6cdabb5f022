import * as assert from 'assert';
import { LogBuffer, tracebackFrames, mapToWorkspace, phaseChangeMessage } from '../logs';

describe('log documents', () => {
  it('prefixes lines with [replica] when the job has several replicas', () => {
    const b = new LogBuffer(['master-0', 'worker-0']);
    b.append([{ replica: 'master-0', text: 'a\n' }, { replica: 'worker-0', text: 'b' }]);
    b.end({ phase: 'Succeeded' });
    assert.strictEqual(b.text(), '[master-0] a\n[worker-0] b\n── end of logs: Succeeded ──\n');
  });
  it('no prefix for a single replica', () => {
    const b = new LogBuffer(['master-0']);
    b.append([{ replica: 'master-0', text: 'only' }]);
    assert.strictEqual(b.text(), 'only\n');
  });
  it('finds traceback frames and maps container paths to workspace files', () => {
    const f = tracebackFrames('x\n[master-0]   File "/workspace/src/train.py", line 12, in <module>\n');
    assert.deepStrictEqual(f.map((x) => [x.line, x.file, x.lineNo]), [[1, '/workspace/src/train.py', 12]]);
    assert.strictEqual(mapToWorkspace('/workspace/src/train.py', (r) => r === 'src/train.py'), 'src/train.py');
    assert.strictEqual(mapToWorkspace('/usr/lib/python3/x.py', () => false), undefined);
  });
  it('status change messages', () => {
    assert.strictEqual(phaseChangeMessage('j', 'Failed', 'OOMKilled'), 'Kubeflow job j failed: OOMKilled.');
    assert.strictEqual(phaseChangeMessage('j', 'Running'), undefined);
  });
});
