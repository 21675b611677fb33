// What the bench reads about the servers it started, from /proc (Linux only): CPU time, resident
// memory, and the process tree (Kamailio forks its workers). Also a free loopback UDP port.
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';

let clockTicks: number | undefined;

/** USER_HZ for /proc/<pid>/stat times (100 on every Linux we run on; asked once). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

interface Stat {
  ppid: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(ppid) || !Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { ppid, cpuTicks: utime + stime };
}

/** The process and all its descendants (one scan of /proc). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [root];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const st = readStat(pid);
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(pid);
    else children.set(st.ppid, [pid]);
  }
  const out: number[] = [];
  const todo = [root];
  for (let guard = 0; todo.length > 0 && guard < 10_000; guard++) {
    const pid = todo.pop()!;
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

/** CPU seconds (user + system) used so far by the given processes. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / ticksPerSecond();
}

function statusField(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** VmRSS in bytes (0 if the process is gone). */
export function rssBytes(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/** Proportional set size in bytes (shared pages split between the processes that map them). */
export function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The smaller of two readings of the idle server, field by field: the baseline growth is measured
 * from. Read right after a forced GC, the idle server still holds start-up's uncompacted pages that it
 * gives back once idle (and Herald's own compaction after a storm gives back too), so growth measured
 * from the forced-GC reading alone can come out below zero.
 */
export function lowerOf(a: MemoryReading, b: MemoryReading): MemoryReading {
  return { rss: Math.min(a.rss, b.rss), rssTree: Math.min(a.rssTree, b.rssTree), pssTree: Math.min(a.pssTree, b.pssTree), processes: a.processes };
}

export interface MemoryReading {
  /** VmRSS of the main process. */
  rss: number;
  /** Sum of VmRSS over the process tree (counts shared memory once per process). */
  rssTree: number;
  /** Sum of PSS over the process tree: the fair total for multi-process servers. */
  pssTree: number;
  processes: number;
}

export function memory(root: number): MemoryReading {
  const pids = processTree(root);
  let rssTree = 0;
  let pssTree = 0;
  for (const p of pids) {
    rssTree += rssBytes(p);
    pssTree += pssBytes(p);
  }
  return { rss: rssBytes(root), rssTree, pssTree, processes: pids.length };
}

/** A UDP port free on 127.0.0.1 (bounded number of tries). */
export async function freeUdpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(0));
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (port > 0) return port;
  }
  throw new Error('no free UDP port on 127.0.0.1');
}

/** Whether a command can be run (looked up on PATH once). */
export function haveCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * UDP datagrams dropped because a socket's receive buffer was full, machine-wide (RcvbufErrors in
 * /proc/net/snmp). The bench is the only heavy UDP user while it runs, so a phase's delta is its drops.
 */
export function udpReceiveBufferDrops(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const i = names.indexOf('RcvbufErrors');
    return i > 0 ? Number(values[i]) || 0 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds the whole machine spent busy so far (all CPUs; /proc/stat user..steal, not idle/iowait). */
export function machineBusySeconds(): number {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = first.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const busy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
    return busy / ticksPerSecond();
  } catch {
    return 0;
  }
}
