// Top functions by self time in a V8 .cpuprofile (node --cpu-prof), and by bytes allocated in a
// .heapprofile (node --heap-prof), as `npm run bench -- --prof` writes them:
//   node dist/bench/profile-top.js bench/results/prof/*.cpuprofile bench/results/prof/*.heapprofile [--top N]
// Self time is summed per function (name + file + line) over the profile's samples; "(garbage
// collector)", "(program)" and "(idle)" are V8's own buckets. Shares are of the busy (non-idle) time.
// A heap profile's samples are allocations (sampled every 512 KB by default), summed the same way.
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
interface HeapNode {
  callFrame: Node['callFrame'];
  selfSize: number;
  children: HeapNode[];
}

function where(f: Node['callFrame']): string {
  const at = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^node:/, '')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${at}`.trim();
}

function heapTop(file: string, p: { head: HeapNode }): void {
  const self = new Map<string, number>();
  let total = 0;
  const todo = [p.head];
  for (let guard = 0; todo.length > 0 && guard < 1_000_000; guard++) {
    const n = todo.pop()!;
    total += n.selfSize;
    const k = where(n.callFrame);
    self.set(k, (self.get(k) ?? 0) + n.selfSize);
    todo.push(...n.children);
  }
  console.log(`${file}: ${(total / 2 ** 20).toFixed(1)} MB sampled allocations`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
}

for (const file of files) {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Profile | { head: HeapNode };
  if ('head' in raw) {
    heapTop(file, raw);
    continue;
  }
  const p = raw;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    if (!n) return;
    const dt = p.timeDeltas[i] ?? 0;
    const key = where(n.callFrame);
    if (key !== '(idle)') busy += dt;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  self.delete('(idle)');
  console.log(`${file}: ${(busy / 1000).toFixed(0)} ms busy`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
}
