// Runs a real Prosody for the XMPP interop suite: generated config in a temp dir (data, log, pid),
// loopback ports only, accounts made with `prosodyctl --config <file> register`, stopped by its own
// pid only, every wait bounded.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../peers.js';

export const PROSODY = '/usr/bin/prosody';
export const PROSODYCTL = '/usr/bin/prosodyctl';

/** The template lives in the source tree (test/interop/prosody), also when running from dist/. */
function templatePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'test', 'interop', 'prosody', 'prosody.cfg.lua.template');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('prosody.cfg.lua.template not found');
}

export interface ProsodyOptions {
  dir: string;
  c2sPort: number;
  componentPort: number;
  secret: string;
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Prosody {
  private child: ChildProcess | undefined;
  readonly config: string;

  constructor(readonly o: ProsodyOptions) {
    mkdirSync(join(o.dir, 'data'), { recursive: true });
    this.config = join(o.dir, 'prosody.cfg.lua');
    const text = readFileSync(templatePath(), 'utf8')
      .replaceAll('{{DIR}}', o.dir)
      .replaceAll('{{LOGLEVEL}}', 'debug')
      .replaceAll('{{C2S_PORT}}', String(o.c2sPort))
      .replaceAll('{{COMPONENT_PORT}}', String(o.componentPort))
      .replaceAll('{{SECRET}}', o.secret);
    writeFileSync(this.config, text);
  }

  /**
   * Herald's [gateway.xmpp] for this Prosody: the component sip.xmpp.test with this secret, xmpp.test
   * bridged, Jabber users under xmpp.example.test, fast reconnects (as src/server.ts reads it).
   */
  heraldGateway(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      enabled: true,
      service: `xmpp://127.0.0.1:${this.o.componentPort}`,
      component_domain: 'sip.xmpp.test',
      secret: this.o.secret,
      xmpp_domains: ['xmpp.test'],
      gateway_domain: 'xmpp.example.test',
      c2s_service: `xmpp://127.0.0.1:${this.o.c2sPort}`,
      reconnect_initial: 0.2,
      reconnect_max: 1,
      ...extra,
    };
  }

  static available(): boolean {
    return existsSync(PROSODY) && existsSync(PROSODYCTL);
  }

  /** `prosodyctl --config` points prosodyctl at this instance's config and so at its data_path. */
  register(user: string, host: string, password: string): void {
    execFileSync(PROSODYCTL, ['--config', this.config, 'register', user, host, password], { timeout: 15_000, stdio: 'ignore' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(timeoutMs = 15_000): Promise<void> {
    const child = spawn(PROSODY, ['--config', this.config], { stdio: 'ignore' });
    this.child = child;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`prosody exited with ${child.exitCode}; see ${join(this.o.dir, 'prosody.log')}`);
      if ((await portOpen(this.o.componentPort)) && (await portOpen(this.o.c2sPort))) return;
      await sleep(100);
    }
    await this.stop();
    throw new Error('prosody did not open its ports in time');
  }

  /** SIGTERM to our own pid, SIGKILL after a bounded wait. */
  async stop(timeoutMs = 5000): Promise<void> {
    const child = this.child;
    this.child = undefined;
    await stopChild(child, timeoutMs);
  }

  log(): string {
    try {
      return readFileSync(join(this.o.dir, 'prosody.log'), 'utf8');
    } catch {
      return '';
    }
  }
}
