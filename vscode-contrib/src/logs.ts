// Log documents: replica prefixes, traceback links. No vscode.
export interface LogLine { replica?: string; text: string; severity?: string }

export class LogBuffer {
  private parts: string[] = [];
  ended = false;
  status: any;
  constructor(public replicas: string[] = []) {}
  get multi(): boolean { return this.replicas.length > 1 || this.seen.size > 1; }
  private seen = new Set<string>();
  append(lines: LogLine[]) {
    for (const l of lines) { if (l.replica) { this.seen.add(l.replica); } }
    for (const l of lines) {
      const prefix = this.multi && l.replica ? `[${l.replica}] ` : '';
      this.parts.push(prefix + l.text.replace(/\r?\n$/, ''));
    }
  }
  end(status?: any) { this.ended = true; this.status = status; }
  text(): string {
    const body = this.parts.join('\n');
    const tail = this.ended ? `── end of logs${this.status?.phase ? ': ' + this.status.phase : ''} ──\n` : '';
    return (body ? body + '\n' : '') + tail;
  }
  get lineCount(): number { return this.parts.length; }
}

export interface FrameLink { line: number; start: number; end: number; file: string; lineNo: number }

const FRAME = /File "([^"]+)", line (\d+)/g;

/** Python traceback frames (`File "x.py", line N`) in a document's text. */
export function tracebackFrames(text: string): FrameLink[] {
  const out: FrameLink[] = [];
  text.split('\n').forEach((l, i) => {
    FRAME.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = FRAME.exec(l))) {
      const s = m.index + m[0].indexOf('"') + 1;
      out.push({ line: i, start: s, end: s + m[1].length, file: m[1], lineNo: parseInt(m[2], 10) });
    }
  });
  return out;
}

/** Map a path inside the job's container to a workspace file: try the path as is, then successively shorter tails. */
export function mapToWorkspace(file: string, exists: (rel: string) => boolean): string | undefined {
  const parts = file.split('/').filter((p) => p);
  for (let i = 0; i < parts.length; i++) {
    const rel = parts.slice(i).join('/');
    if (exists(rel)) { return rel; }
  }
  return undefined;
}

export function phaseChangeMessage(name: string, phase: string, reason?: string): string | undefined {
  if (phase === 'Succeeded') { return `Kubeflow job ${name} succeeded.`; }
  if (phase === 'Failed') { return `Kubeflow job ${name} failed${reason ? ': ' + reason : ''}.`; }
  return undefined;
}
