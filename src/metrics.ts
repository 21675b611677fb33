// Herald's figures in the Prometheus text exposition format (hand-written: a dozen gauges and counters
// do not need a metrics library, and this keeps the hot path free of one).
export type Figures = Record<string, { help: string; type: 'gauge' | 'counter'; value: number }>;

export function renderMetrics(figures: Figures): string {
  let out = '';
  for (const [name, f] of Object.entries(figures)) {
    out += `# HELP herald_${name} ${f.help}\n# TYPE herald_${name} ${f.type}\nherald_${name} ${Number.isFinite(f.value) ? f.value : 0}\n`;
  }
  return out;
}
