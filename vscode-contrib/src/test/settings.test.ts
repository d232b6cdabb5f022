import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { settingsFromConfig, classifyChange, SERVER_SETTING_KEYS } from '../settings';
import { locateKflow, installCommand, tooOld } from '../locate';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));

describe('settings mapping', () => {
  it('contributes exactly the FR-15 keys plus kflow.path (and the protocol\'s apiServer/backend)', () => {
    const keys = Object.keys(pkg.contributes.configuration.properties).sort();
    assert.deepStrictEqual(keys, ['kflow.apiServer', 'kflow.autoPVCforPip', 'kflow.backend', 'kflow.defaultImage', 'kflow.defaultNamespace',
      'kflow.defaultPVCsize', 'kflow.keycloak.realm', 'kflow.path', 'kflow.url', 'kflow.verifySSL'].sort());
    for (const k of ['kflow.url', 'kflow.verifySSL', 'kflow.keycloak.realm', 'kflow.defaultNamespace', 'kflow.defaultImage', 'kflow.defaultPVCsize', 'kflow.autoPVCforPip', 'kflow.path']) {
      assert.ok(pkg.contributes.configuration.properties[k], k);
    }
  });

  it('maps VS Code settings to the protocol\'s Settings (no prefix; empty means not set; kflow.path not sent)', () => {
    const conf: Record<string, unknown> = { url: ' https://kf.example ', verifySSL: false, 'keycloak.realm': 'kubeflow', defaultNamespace: '', defaultImage: 'img:1',
      defaultPVCsize: '20Gi', autoPVCforPip: true, path: '/opt/kflow', apiServer: undefined, backend: '' };
    const s = settingsFromConfig((k) => conf[k]);
    assert.deepStrictEqual(s, { url: 'https://kf.example', verifySSL: false, 'keycloak.realm': 'kubeflow', defaultNamespace: null, defaultImage: 'img:1',
      defaultPVCsize: '20Gi', autoPVCforPip: true, apiServer: null, backend: null });
    assert.ok(!('path' in s));
    assert.deepStrictEqual([...SERVER_SETTING_KEYS].sort(), Object.keys(s).sort());
  });

  it('a server setting is applied with settings/update; kflow.path restarts the server', () => {
    assert.deepStrictEqual(classifyChange((s) => s === 'kflow.defaultNamespace'), { update: true, restart: false });
    assert.deepStrictEqual(classifyChange((s) => s === 'kflow.path'), { update: false, restart: true });
    assert.deepStrictEqual(classifyChange((s) => s === 'editor.fontSize'), { update: false, restart: false });
  });
});

describe('finding kflow', () => {
  it('kflow.path first, then the Python interpreter, then PATH', () => {
    assert.deepStrictEqual(locateKflow({ settingPath: '/x/kflow', pythonInterpreter: ['/py'] }), { command: '/x/kflow', args: [], source: 'setting' });
    assert.deepStrictEqual(locateKflow({ pythonInterpreter: ['/usr/bin/python3'] }), { command: '/usr/bin/python3', args: ['-m', 'kflow'], source: 'python' });
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'kflow-path-'));
    fs.writeFileSync(path.join(dir, 'kflow'), '#!/bin/sh\n', { mode: 0o755 });
    assert.deepStrictEqual(locateKflow({ envPath: dir }), { command: path.join(dir, 'kflow'), args: [], source: 'path' });
    assert.strictEqual(locateKflow({ envPath: '/nonexistent' }), undefined);
  });
  it('install command and version check', () => {
    assert.strictEqual(installCommand(), 'pip install kflow');
    assert.strictEqual(installCommand(['/opt/py env/bin/python']), "'/opt/py env/bin/python' -m pip install kflow");
    assert.strictEqual(tooOld({ protocol: 1 }), false);
    assert.strictEqual(tooOld({}), true);
  });
});
