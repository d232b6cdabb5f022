// Pure models of the KUBEFLOW PANEL sections: paging ("Load more…"), live changes, status icons.
export type What = 'jobs' | 'notebooks' | 'pvcs' | 'configmaps' | 'pipelines' | 'models';

export interface SectionDef { what: What; label: string; watch: boolean; component?: string }

export const SECTIONS: SectionDef[] = [
  { what: 'jobs', label: 'Jobs', watch: true },
  { what: 'notebooks', label: 'Notebooks', watch: true },
  { what: 'pvcs', label: 'PVC', watch: true },
  { what: 'configmaps', label: 'ConfigMaps', watch: true },
  { what: 'pipelines', label: 'Pipelines', watch: false, component: 'Pipelines' },
  { what: 'models', label: 'Model Registry', watch: false, component: 'Model Registry' },
];

export const PAGE_SIZE = 200;

export interface Row { name: string; kind?: string; phase?: string; status?: string; reason?: string; message?: string; [k: string]: unknown }
export interface Page { items: Row[]; next?: string | null; total?: number | null }
export type Fetch = (params: { what: What; limit: number; cursor?: string }) => Promise<Page>;

export function rowKey(r: { name: string; kind?: string | null }): string { return `${r.kind ?? ''}/${r.name}`; }

export class SectionModel {
  rows: Row[] = [];
  next: string | undefined;
  total: number | undefined;
  loaded = false;
  notInstalled: string | undefined;
  error: string | undefined;
  private inflight: Promise<void> | undefined;

  constructor(readonly def: SectionDef, private fetch: Fetch, readonly pageSize = PAGE_SIZE) {}

  get hasMore(): boolean { return this.next !== undefined; }

  reset() { this.rows = []; this.next = undefined; this.total = undefined; this.loaded = false; this.notInstalled = undefined; this.error = undefined; }

  async loadFirst(): Promise<void> { this.reset(); return this.loadPage(undefined); }

  async loadMore(): Promise<void> { if (!this.hasMore) { return; } return this.loadPage(this.next); }

  private loadPage(cursor: string | undefined): Promise<void> {
    if (this.inflight) { return this.inflight; }
    this.inflight = (async () => {
      try {
        const page = await this.fetch({ what: this.def.what, limit: this.pageSize, cursor });
        const seen = new Set(this.rows.map(rowKey));
        for (const r of page.items) { if (!seen.has(rowKey(r))) { this.rows.push(r); seen.add(rowKey(r)); } }
        this.next = page.next ?? undefined;
        // Kubernetes listings tell the total on their first page only; later pages keep it.
        if (cursor === undefined || page.total != null) { this.total = page.total ?? undefined; }
        this.error = undefined;
      } catch (e: any) {
        if (e?.kind === 'not-installed' || e?.data?.kind === 'not-installed') {
          this.notInstalled = `${this.def.component ?? this.def.label} ${this.def.component ? 'are' : 'is'} not installed here`;
          this.rows = []; this.next = undefined;
        } else { this.error = e?.message ?? String(e); }
      } finally { this.loaded = true; this.inflight = undefined; }
    })();
    return this.inflight;
  }

  /**
   * Apply `watch/changes`: upserts replace in place or are added at the front; deletes remove.
   * The listing a watch starts with (`initial`) only updates rows already shown while pages
   * remain: its other objects belong to those pages, and "Load more…" brings them in order.
   */
  applyChanges(changes: Array<{ change: 'upsert'; row: Row; initial?: boolean } | { change: 'delete'; name: string; kind?: string }>): boolean {
    let changed = false;
    for (const c of changes) {
      if (c.change === 'upsert') {
        const k = rowKey(c.row);
        const i = this.rows.findIndex((r) => rowKey(r) === k || (r.name === c.row.name && (!c.row.kind || !r.kind)));
        if (i >= 0) { this.rows[i] = { ...this.rows[i], ...c.row }; } else if (c.initial && this.hasMore) { continue; } else {
          this.rows.unshift(c.row); if (this.total !== undefined) { this.total++; }
        }
        changed = true;
      } else if (c.change === 'delete') {
        const before = this.rows.length;
        this.rows = this.rows.filter((r) => !(r.name === c.name && (!c.kind || !r.kind || r.kind === c.kind)));
        if (this.rows.length !== before) { changed = true; if (this.total !== undefined) { this.total -= before - this.rows.length; } }
      }
    }
    return changed;
  }

  /** TreeView.message: "200 of 5,000" when the total is known and not everything is shown. */
  message(): string | undefined {
    if (this.notInstalled) { return this.notInstalled; }
    if (this.total !== undefined && this.total > this.rows.length) { return `${this.def.label}: ${fmt(this.rows.length)} of ${fmt(this.total)}`; }
    return undefined;
  }
}

export function fmt(n: number): string { return n.toLocaleString('en-US'); }

export function phaseOf(r: Row): string { return String(r.phase ?? r.status ?? r.state ?? ''); }

/** Codicon id and theme color per phase. */
export function phaseIcon(phase: string): { id: string; color?: string } {
  switch (phase) {
    case 'Running': return { id: 'sync~spin', color: 'charts.blue' };
    case 'Succeeded': case 'Bound': case 'Ready': return { id: 'pass', color: 'testing.iconPassed' };
    case 'Failed': return { id: 'error', color: 'testing.iconFailed' };
    case 'Pending': case 'Created': return { id: 'clock', color: 'charts.yellow' };
    default: return { id: 'circle-outline' };
  }
}

export function tooltipOf(r: Row): string {
  const parts = [`${r.kind ? r.kind + ' ' : ''}${r.name}`];
  const p = phaseOf(r); if (p) { parts.push(`Phase: ${p}`); }
  if (r.reason) { parts.push(`Reason: ${r.reason}`); }
  if (r.message) { parts.push(String(r.message)); }
  return parts.join('\n');
}

/** The context value that selects an item's menus. */
export function contextValueOf(what: What): string {
  return ({ jobs: 'kflowJob', notebooks: 'kflowNotebook', pvcs: 'kflowPvc', configmaps: 'kflowConfigMap', pipelines: 'kflowPipeline', models: 'kflowModel' } as const)[what];
}

/** What a section shows under it, in order (the VS Code tree turns each into a TreeItem). */
export type Child =
  | { type: 'row'; row: Row }
  | { type: 'more'; label: string }
  | { type: 'info'; label: string; icon?: string };

export function childrenOf(m: SectionModel): Child[] {
  if (m.notInstalled) { return [{ type: 'info', label: m.notInstalled, icon: 'info' }]; }
  if (m.error) { return [{ type: 'info', label: m.error, icon: 'warning' }]; }
  const out: Child[] = m.rows.map((row) => ({ type: 'row', row }));
  if (!out.length) { out.push({ type: 'info', label: `No ${m.def.label.toLowerCase()}` }); }
  if (m.hasMore) { out.push({ type: 'more', label: 'Load more…' }); }
  return out;
}

/** TreeView.message over every section: the ones not fully shown, e.g. "Jobs: 200 of 5,000". */
export function viewMessage(models: SectionModel[]): string | undefined {
  const msgs = models.filter((m) => !m.notInstalled).map((m) => m.message()).filter((x): x is string => !!x);
  return msgs.length ? msgs.join(' · ') : undefined;
}

/** A section's description in the tree: "200 of 5,000" (or the count when everything is shown). */
export function sectionDescription(m: SectionModel): string | undefined {
  if (!m.loaded || m.notInstalled) { return undefined; }
  if (m.total !== undefined && m.total > m.rows.length) { return `${fmt(m.rows.length)} of ${fmt(m.total)}`; }
  return m.rows.length ? fmt(m.rows.length) : undefined;
}
