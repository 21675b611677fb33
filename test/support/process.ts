// Runs Herald as a child process (node dist/src/cli.js) on a config written to a temp dir, so tests
// can SIGKILL it and start it again on the same store. Stops only the process it started, by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import net from 'node:net';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** A port free for both UDP and TCP on 127.0.0.1 (bounded number of tries). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const udpOk = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpOk) return port;
  }
  throw new Error('no free port');
}

export class HeraldProcess {
  child: ChildProcess | undefined;
  output = '';

  constructor(readonly configPath: string) {}

  static writeConfig(dir: string, port: number, extra = ''): string {
    const path = join(dir, 'herald.toml');
    writeFileSync(
      path,
      `[sip]
listen = ["udp:127.0.0.1:${port}", "tcp:127.0.0.1:${port}"]
[presence]
subscribe_min_expires = 1
publish_min_expires = 1
[store]
url = "sqlite://${join(dir, 'herald.sqlite')}"
[log]
level = "info"
format = "json"
[xcap]
listen = "127.0.0.1:0"
${extra.includes('[admin]') ? '' : '[admin]\nlisten = "127.0.0.1:0"\n'}${extra.includes('[policy]') ? '' : '[policy]\ndefault = "allow"\n'}${extra.includes('[auth]') ? '' : '[auth]\nenabled = false\n'}${extra}`,
    );
    return path;
  }

  /** Starts Herald and resolves with its start log line (parsed JSON) once it listens. */
  start(timeoutMs = 15000): Promise<Record<string, unknown>> {
    const child = spawn(process.execPath, [CLI, '--config', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let mine = '';
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`Herald did not start: ${this.output}`)), timeoutMs);
      const onData = (d: Buffer) => {
        this.output += d.toString();
        mine += d.toString();
        for (const line of mine.split('\n')) {
          if (line.includes('Herald listening')) {
            clearTimeout(t);
            child.stdout?.off('data', onData);
            child.stdout?.on('data', (x: Buffer) => (this.output += x.toString()));
            resolve(JSON.parse(line) as Record<string, unknown>);
            return;
          }
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`Herald exited with ${code}: ${this.output}`));
      });
    });
  }

  /** Sends a signal to the started process and resolves with its exit code (or the signal). */
  stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<number | string> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child?.exitCode ?? 'gone');
    return new Promise((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('exit', (code, sig) => {
        clearTimeout(t);
        resolve(code ?? sig ?? 'unknown');
      });
      child.kill(signal);
    });
  }
}
