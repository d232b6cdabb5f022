// The kflow-log TextMate grammar over sample logs, tokenized by vscode-textmate + vscode-oniguruma
// (the engine VS Code uses), checking each interesting span gets its scope.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as vsctm from 'vscode-textmate';
import * as oniguruma from 'vscode-oniguruma';

const GRAMMAR = path.join(__dirname, '..', '..', 'syntaxes', 'kflow-log.tmLanguage.json');

let grammar: vsctm.IGrammar;

async function load(): Promise<vsctm.IGrammar> {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm')).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({ createOnigScanner: (p: string[]) => new oniguruma.OnigScanner(p), createOnigString: (s: string) => new oniguruma.OnigString(s) }),
    loadGrammar: async (scope) => (scope === 'source.kflow-log' ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR) : null),
  });
  const g = await registry.loadGrammar('source.kflow-log');
  if (!g) { throw new Error('grammar did not load'); }
  return g;
}

/** [text, scopes] per token of every line. */
function tokenize(text: string): Array<Array<[string, string[]]>> {
  let state = vsctm.INITIAL;
  return text.split('\n').map((line) => {
    const r = grammar.tokenizeLine(line, state); state = r.ruleStack;
    return r.tokens.map((t) => [line.slice(t.startIndex, t.endIndex), t.scopes] as [string, string[]]);
  });
}

/** The scopes of the token covering `needle` on a line. */
function scopeAt(line: Array<[string, string[]]>, needle: string): string[] {
  let text = '', at = -1;
  for (const [t] of line) { text += t; }
  at = text.indexOf(needle);
  assert.ok(at >= 0, `"${needle}" not on the line "${text}"`);
  let pos = 0;
  for (const [t, s] of line) { if (at >= pos && at < pos + t.length) { return s; } pos += t.length; }
  throw new Error('unreachable');
}

const has = (scopes: string[], prefix: string) => scopes.some((s) => s.startsWith(prefix));

describe('kflow-log grammar', () => {
  before(async () => { grammar = await load(); });

  it('highlights a Python traceback: heading, frames (path, line, function), the exception', () => {
    const lines = tokenize([
      '[master-0] epoch 1 loss 0.52',
      '[master-0] Traceback (most recent call last):',
      '[master-0]   File "/workspace/train.py", line 12, in <module>',
      '[master-0]     main()',
      '[master-0] ValueError: expected 3 channels, got 1',
    ].join('\n'));
    assert.deepStrictEqual(lines[0].map(([, s]) => s.filter((x) => x !== 'source.kflow-log')), [['entity.name.tag.replica.kflow-log'], []]);
    assert.ok(has(scopeAt(lines[1], 'Traceback'), 'invalid.illegal.traceback'));
    assert.ok(has(scopeAt(lines[1], '[master-0]'), 'entity.name.tag.replica'));
    assert.ok(has(scopeAt(lines[2], '/workspace/train.py'), 'string.quoted.double.path'));
    assert.ok(has(scopeAt(lines[2], '12'), 'constant.numeric.line'));
    assert.ok(has(scopeAt(lines[2], '<module>'), 'entity.name.function'));
    assert.ok(!scopeAt(lines[3], 'main()').some((s) => s.startsWith('invalid')));
    assert.ok(has(scopeAt(lines[4], 'ValueError'), 'invalid.illegal.exception'));
    assert.ok(has(scopeAt(lines[4], 'got 1'), 'invalid.illegal.exception'));
  });

  it('marks CUDA out-of-memory lines (also when raised as an exception)', () => {
    const lines = tokenize([
      'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity)',
      '[worker-1] RuntimeError: CUDA error: out of memory',
      'pod master-0 terminated: OOMKilled (exit code 137)',
    ].join('\n'));
    assert.ok(has(scopeAt(lines[0], 'Tried to allocate'), 'invalid.illegal.oom.cuda'));
    assert.ok(has(scopeAt(lines[1], 'RuntimeError'), 'invalid.illegal.oom.cuda'));
    assert.ok(has(scopeAt(lines[1], '[worker-1]'), 'entity.name.tag.replica'));
    assert.ok(has(scopeAt(lines[2], 'OOMKilled'), 'invalid.illegal.oom'));
  });

  it('marks NCCL errors', () => {
    const lines = tokenize([
      '[worker-0] torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1691, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.18.1',
      'node-1:42:42 [0] NCCL WARN Connect to 10.0.0.2<39613> failed : Connection refused',
      'ncclSystemError: System call (e.g. socket, malloc) or external library call failed or device error.',
      '[E ProcessGroupNCCL.cpp:475] [Rank 1] Watchdog caught collective operation timeout',
    ].join('\n'));
    assert.ok(has(scopeAt(lines[0], 'unhandled system error'), 'invalid.illegal.nccl'));
    assert.ok(has(scopeAt(lines[1], 'Connection refused'), 'invalid.illegal.nccl'));
    assert.ok(has(scopeAt(lines[2], 'System call'), 'invalid.illegal.nccl'));
    assert.ok(has(scopeAt(lines[3], 'Watchdog'), 'invalid.illegal.nccl'));
  });

  it('marks error and warning lines, leaves ordinary lines plain', () => {
    const lines = tokenize([
      'ERROR: could not open /data/train.csv',
      '2024-05-01 12:00:00 fatal: job failed',
      'WARNING: pip is configured with locations that require TLS/SSL',
      '/usr/lib/python3/site-packages/torch/nn/modules.py:12: UserWarning: this is deprecated',
      'step 100/1000 loss=0.123: 3 errors in the data loader',
      'accuracy 0.98',
      '── end of logs: Succeeded ──',
    ].join('\n'));
    assert.ok(has(scopeAt(lines[0], 'could not open'), 'invalid.illegal.error'));
    assert.ok(has(scopeAt(lines[1], 'job failed'), 'invalid.illegal.error'));
    assert.ok(has(scopeAt(lines[2], 'pip is configured'), 'markup.changed.warning'));
    assert.ok(has(scopeAt(lines[3], 'UserWarning'), 'markup.changed.warning'));
    assert.ok(has(scopeAt(lines[4], 'loss'), 'invalid.illegal.error'), 'a line reporting errors');
    assert.deepStrictEqual(scopeAt(lines[5], 'accuracy'), ['source.kflow-log']);
    assert.ok(has(scopeAt(lines[6], 'end of logs'), 'comment.line.end'));
  });
});
