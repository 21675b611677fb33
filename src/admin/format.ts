// The CLI's rendering of admin API answers for a terminal: aligned columns, one row per item, and a
// "N of M" footer when a page holds less than everything. `--json` prints the answer as is instead.
type Row = Record<string, unknown>;

export function table(rows: Row[], columns: [header: string, value: (r: Row) => unknown][]): string {
  const cells = rows.map((r) => columns.map(([, f]) => { const v = f(r); return v === undefined || v === null ? '-' : String(v); }));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (vals: string[]): string => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map(([h]) => h.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

export interface Page { total: number; offset: number; items: Row[] }

export function paged(p: Page, columns: [string, (r: Row) => unknown][], empty: string): string {
  if (p.items.length === 0) return `${empty}\n`;
  const more = p.total > p.items.length ? `(${p.items.length} of ${p.total}; --offset/--limit for more)\n` : '';
  return table(p.items, columns) + more;
}

export function keyValues(o: Row): string {
  const w = Math.max(...Object.keys(o).map((k) => k.length));
  return Object.entries(o).map(([k, v]) => `${k.padEnd(w)}  ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`).join('\n') + '\n';
}
