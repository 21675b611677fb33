// The bench's handle on its load generator process (loadgen.ts): started pinned to a core when it can,
// talked to over the child's IPC channel, every call bounded in time, stopped (then killed) by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isFromLoadgen, type FromLoadgen, type Phase, type PhaseResult, type ToLoadgen } from './protocol.js';
import { sleep } from './proc.js';

const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

export class Loadgen {
  private waiters: ((m: FromLoadgen) => void)[] = [];
  private exited = false;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: unknown) => {
      if (!isFromLoadgen(m)) return;
      const w = this.waiters.shift();
      if (w) w(m);
    });
    const gone = (why: string) => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w({ type: 'error', message: why });
    };
    child.once('exit', () => gone('load generator exited'));
    child.once('error', (e) => gone(`load generator could not run: ${e.message}`));
  }

  static start(cpu: number | undefined, lifetimeMs: number): Loadgen {
    const args = [LOADGEN, String(lifetimeMs)];
    const child =
      cpu === undefined
        ? spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        : spawn('taskset', ['-c', String(cpu), process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Loadgen(child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  call(m: ToLoadgen, timeoutMs: number): Promise<FromLoadgen> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error('load generator is not running'));
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`load generator gave no answer to ${m.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (r: FromLoadgen) => {
        clearTimeout(t);
        if (r.type === 'error') reject(new Error(r.message));
        else resolve(r);
      };
      this.waiters.push(w);
      this.child.send(m);
    });
  }

  async phase(p: Phase): Promise<PhaseResult> {
    const r = await this.call({ type: 'phase', phase: p }, p.maxMs + p.drainMs + 20_000);
    if (r.type !== 'result') throw new Error(`unexpected ${r.type} from the load generator`);
    return r.result;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    try {
      this.child.send({ type: 'stop' } satisfies ToLoadgen);
    } catch {
      // channel closed
    }
    await Promise.race([gone, sleep(3000)]);
    if (!this.exited) this.killNow();
  }

  killNow(): void {
    if (this.exited || !this.child.pid) return;
    try {
      process.kill(this.child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
