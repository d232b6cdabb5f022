// Finding kflow: `kflow.path`, else the Python extension's interpreter (`python -m kflow`), else `kflow` on PATH.
import * as fs from 'fs';
import * as path from 'path';

export const INSTALL_COMMAND = 'pip install kflow';
export const MIN_PROTOCOL = 1;

export interface KflowCommand { command: string; args: string[]; source: 'setting' | 'python' | 'path' }

export function which(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) { continue; }
    const p = path.join(dir, name);
    try { fs.accessSync(p, fs.constants.X_OK); if (fs.statSync(p).isFile()) { return p; } } catch { /* next */ }
  }
  return undefined;
}

export function locateKflow(opts: { settingPath?: string; pythonInterpreter?: string[]; envPath?: string }): KflowCommand | undefined {
  const s = opts.settingPath?.trim();
  if (s) { return { command: s, args: [], source: 'setting' }; }
  const py = opts.pythonInterpreter?.filter((x) => x);
  if (py && py.length) { return { command: py[0], args: [...py.slice(1), '-m', 'kflow'], source: 'python' }; }
  const k = which('kflow', opts.envPath);
  return k ? { command: k, args: [], source: 'path' } : undefined;
}

/** The install command for the interpreter kflow should go to. */
export function installCommand(pythonInterpreter?: string[]): string {
  const py = pythonInterpreter?.filter((x) => x);
  return py && py.length ? `${py.map(quote).join(' ')} -m ${INSTALL_COMMAND}` : INSTALL_COMMAND;
}

function quote(s: string) { return /^[\w./:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`; }

/** Too old: the initialize result lacks the protocol we speak. */
export function tooOld(init: { protocol?: number } | undefined): boolean {
  return !init || typeof init.protocol !== 'number' || init.protocol < MIN_PROTOCOL;
}
