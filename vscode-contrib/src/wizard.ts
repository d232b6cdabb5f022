// The "Run as Kubeflow Training Job" wizard: step definitions, Back, template skipping, RunOptions. No vscode.
export type StepId = 'kind' | 'name' | 'image' | 'gpu' | 'cpu' | 'memory' | 'workers' | 'pip' | 'apt' | 'namespace' | 'pip_cache' | 'confirm';

export interface Step {
  id: StepId;
  title: string;
  type: 'pick' | 'input';
  /** the RunOptions key(s) this step sets; a template that sets it skips the step */
  option?: string;
  placeholder?: string;
  items?: (ctx: WizardContext) => string[];
  validate?: (v: string) => string | undefined;
}

export interface WizardContext { images: string[]; defaultImage?: string; defaultNamespace?: string; autoPVC?: boolean }

export type Values = Partial<Record<StepId, string>>;

const intOrEmpty = (what: string) => (v: string) => (v.trim() === '' || /^\d+$/.test(v.trim()) ? undefined : `${what} must be a whole number`);
const positive = (v: string) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'Workers must be a whole number of at least 1');
export const K8S_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const STEPS: Step[] = [
  { id: 'kind', title: 'Job type', type: 'pick', option: 'kind', items: () => ['PyTorchJob', 'TFJob', 'MPIJob'] },
  { id: 'name', title: 'Job name', type: 'input', option: 'name', placeholder: 'empty: generated from the script name',
    validate: (v) => (v.trim() === '' || K8S_NAME.test(v.trim()) ? undefined : 'Lowercase letters, digits and "-", at most 63 characters') },
  { id: 'image', title: 'Image', type: 'pick', option: 'image', items: (c) => c.images },
  { id: 'gpu', title: 'GPUs per replica', type: 'input', option: 'gpu', placeholder: '0', validate: intOrEmpty('GPUs') },
  { id: 'cpu', title: 'CPU per replica', type: 'input', option: 'cpu', placeholder: 'e.g. 2 or 500m',
    validate: (v) => (v.trim() === '' || /^(\d+(\.\d+)?|\d+m)$/.test(v.trim()) ? undefined : 'CPU like 2, 0.5 or 500m') },
  { id: 'memory', title: 'Memory per replica', type: 'input', option: 'memory', placeholder: 'e.g. 8Gi',
    validate: (v) => (v.trim() === '' || /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/.test(v.trim()) ? undefined : 'Memory like 8Gi or 512Mi') },
  { id: 'workers', title: 'Workers', type: 'input', option: 'workers', placeholder: '1', validate: positive },
  { id: 'pip', title: 'pip packages (space separated)', type: 'input', option: 'pip', placeholder: 'e.g. transformers==4.41 datasets' },
  { id: 'apt', title: 'apt packages (space separated)', type: 'input', option: 'apt', placeholder: 'e.g. libgl1' },
  { id: 'namespace', title: 'Namespace', type: 'input', option: 'namespace', placeholder: 'empty: the default namespace',
    validate: (v) => (v.trim() === '' || K8S_NAME.test(v.trim()) ? undefined : 'Not a namespace name') },
  { id: 'pip_cache', title: 'Auto PVC for the pip cache', type: 'pick', option: 'pip_cache', items: () => ['Yes', 'No'] },
  { id: 'confirm', title: 'Run', type: 'pick', items: () => ['Run', 'Show YAML'] },
];

export function defaults(ctx: WizardContext): Values {
  return { kind: 'PyTorchJob', name: '', image: ctx.defaultImage ?? ctx.images[0] ?? '', gpu: '', cpu: '', memory: '', workers: '1',
    pip: '', apt: '', namespace: ctx.defaultNamespace ?? '', pip_cache: ctx.autoPVC ? 'Yes' : 'No' };
}

export class Wizard {
  readonly steps: Step[];
  index = 0;
  values: Values;

  /** templateOptions: the chosen template's RunOptions; its keys' steps are skipped. */
  constructor(readonly ctx: WizardContext, remembered: Values = {}, readonly templateOptions?: Record<string, unknown>) {
    const set = new Set(Object.entries(templateOptions ?? {}).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0)).map(([k]) => k));
    this.steps = STEPS.filter((s) => !s.option || !set.has(s.option));
    this.values = { ...defaults(ctx), ...remembered };
  }

  get current(): Step { return this.steps[this.index]; }
  get done(): boolean { return this.index >= this.steps.length; }
  get canGoBack(): boolean { return this.index > 0; }
  get stepNumber(): number { return this.index + 1; }
  get totalSteps(): number { return this.steps.length; }

  /** Accept a value for the current step; returns the validation message (and stays) when it is refused. */
  accept(value: string): string | undefined {
    const step = this.current;
    const msg = step.validate?.(value);
    if (msg) { return msg; }
    this.values[step.id] = value;
    this.index++;
    return undefined;
  }
  back() { if (this.index > 0) { this.index--; } }

  /** The values to remember per workspace (not the confirm choice). */
  remembered(): Values { const v = { ...this.values }; delete v.confirm; return v; }

  runOptions(script: string): Record<string, unknown> {
    return buildRunOptions(this.values, script, this.templateOptions, this.steps.map((s) => s.id));
  }
}

const words = (s?: string) => (s ?? '').split(/[\s,]+/).filter((x) => x);

export function buildRunOptions(v: Values, script: string, template?: Record<string, unknown> & { name?: string }, asked?: StepId[]): Record<string, unknown> {
  const ask = new Set(asked ?? STEPS.map((s) => s.id));
  const o: Record<string, unknown> = { script };
  const str = (id: StepId, key: string) => { if (ask.has(id) && v[id]?.trim()) { o[key] = v[id]!.trim(); } };
  str('kind', 'kind'); str('name', 'name'); str('image', 'image'); str('cpu', 'cpu'); str('memory', 'memory'); str('namespace', 'namespace');
  if (ask.has('gpu') && v.gpu?.trim()) { o.gpu = parseInt(v.gpu, 10); }
  if (ask.has('workers') && v.workers?.trim()) { o.workers = parseInt(v.workers, 10); }
  if (ask.has('pip') && words(v.pip).length) { o.pip = words(v.pip); }
  if (ask.has('apt') && words(v.apt).length) { o.apt = words(v.apt); }
  if (ask.has('pip_cache') && v.pip_cache) { o.pip_cache = v.pip_cache === 'Yes'; }
  return o;
}

/** A short-TTL cache (images offered per kind/namespace). */
export class TtlCache<V> {
  private m = new Map<string, { at: number; v: V }>();
  constructor(private ttlMs: number, private now: () => number = Date.now) {}
  async get(key: string, load: () => Promise<V>): Promise<V> {
    const e = this.m.get(key);
    if (e && this.now() - e.at < this.ttlMs) { return e.v; }
    const v = await load(); this.m.set(key, { at: this.now(), v }); return v;
  }
}

/** The image list: the default, then recent ones, then the server's offer, without duplicates. */
export function imageItems(result: { default?: string; options?: string[] } | undefined, recent: string[]): string[] {
  const out: string[] = [];
  for (const i of [result?.default, ...recent, ...(result?.options ?? [])]) { if (i && !out.includes(i)) { out.push(i); } }
  return out;
}
