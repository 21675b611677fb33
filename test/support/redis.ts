// A real redis-server for tests: its own temp dir and a free loopback port, append-only persistence
// on (so a stop and start keeps the data, as a production Redis would), started and stopped by its
// own pid only. A machine without redis-server skips the test with a line that says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { freePort } from './process.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** For `describe(…, { skip })`: false when redis-server is installed, otherwise the reason to skip. */
export const SKIP_WITHOUT_REDIS: string | false = existsSync(REDIS_SERVER) ? false : 'redis-server not installed (Debian package redis-server; scripts/install-peers.sh installs it)';

export class TestRedis {
  private child: ChildProcess | undefined;
  output = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const r = new TestRedis(await freePort(), mkdtempSync(join(tmpdir(), 'herald-redis-')));
    await r.restart();
    return r;
  }

  /** Starts (again) on the same port and dir; resolves when it accepts connections. */
  restart(timeoutMs = 10000): Promise<void> {
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis-server did not start: ${this.output}`)), timeoutMs);
      const onData = (d: Buffer) => {
        this.output += d.toString();
        if (this.output.includes('Ready to accept connections')) {
          clearTimeout(t);
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`redis-server exited with ${code}: ${this.output}`));
      });
    });
  }

  /** Stops the server this helper started (by its pid), waiting for it to exit. */
  stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill(signal);
    });
  }

  /** Stops the server and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A redis-server for the enclosing describe(): started before its tests, removed after them. */
export function redisForSuite(): () => TestRedis {
  let redis: TestRedis | undefined;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis?.dispose();
  });
  return () => {
    if (!redis) throw new Error('redis-server not started');
    return redis;
  };
}
