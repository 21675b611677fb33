// Top functions by self time in a V8 .cpuprofile (node --cpu-prof, `npm run bench -- --prof`):
//   node dist/bench/profile-top.js bench/results/prof/CPU.*.cpuprofile [--top N]
// Self time is summed per function (name + file + line) over the profile's samples; "(garbage
// collector)", "(program)" and "(idle)" are V8's own buckets. Shares are of the busy (non-idle) time.
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const ti = args.indexOf('--top');
const top = ti >= 0 ? Number(args[ti + 1]) || 25 : 25;
const files = args.filter((a, i) => !a.startsWith('--') && (ti < 0 || i !== ti + 1));
for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    if (!n) return;
    const dt = p.timeDeltas[i] ?? 0;
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^node:/, '')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    if (key !== '(idle)') busy += dt;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  self.delete('(idle)');
  console.log(`${file}: ${(busy / 1000).toFixed(0)} ms busy`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
}
