// A real Kamailio for the interop suite (Debian `kamailio`, `kamailio-presence-modules`): a config of
// test/interop/kamailio/ (remote-presence.cfg unless told) copied into a temp dir with its port, its
// db_text tables and the config's own @NAME@ values,
// loopback only, started and stopped by its own pid, every wait bounded. Defines (-A) switch on its
// optional roles (REG: registrar with the reg event; MESSAGE relaying to registered contacts).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { TestUA } from '../../support/ua.js';
import { ROOT, stopChild } from '../peers.js';

export const KAMAILIO = '/usr/sbin/kamailio';
const DBTEXT = '/usr/share/kamailio/dbtext/kamailio';

export function requireKamailio(t: TestContext): boolean {
  if (existsSync(KAMAILIO) && existsSync(DBTEXT)) return true;
  if (process.env.CI === 'true') assert.fail(`${KAMAILIO} is missing`);
  t.skip(`${KAMAILIO} or ${DBTEXT} is missing (apt-get install kamailio kamailio-presence-modules)`);
  return false;
}

export class Kamailio {
  private child: ChildProcess | undefined;
  log = '';
  /** `cfg`: a file of test/interop/kamailio/; `vars`: its @NAME@ placeholders besides @PORT@ and @DBDIR@. */
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly defines: string[] = [],
    readonly cfg = 'remote-presence.cfg',
    readonly vars: Readonly<Record<string, string>> = {},
  ) {}

  /** Starts Kamailio; `fresh` gives it an empty copy of the db_text tables (a restart that lost everything). */
  async start(fresh = true): Promise<void> {
    const db = join(this.dir, 'db');
    if (fresh) {
      rmSync(db, { recursive: true, force: true });
      cpSync(DBTEXT, db, { recursive: true });
    }
    const values: Record<string, string> = { ...this.vars, PORT: String(this.port), DBDIR: db };
    const cfg = readFileSync(join(ROOT, 'test', 'interop', 'kamailio', this.cfg), 'utf8').replace(/@([A-Z]+)@/g, (all, name: string) => values[name] ?? all);
    writeFileSync(join(this.dir, 'kamailio.cfg'), cfg);
    mkdirSync(join(this.dir, 'run'), { recursive: true });
    const child = spawn(KAMAILIO, [...this.defines.flatMap((d) => ['-A', d]), '-f', join(this.dir, 'kamailio.cfg'), '-P', join(this.dir, 'kamailio.pid'), '-DD', '-E', '-Y', join(this.dir, 'run'), '-w', this.dir, '-m', '64', '-M', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20000)));
    child.stdout?.on('data', () => undefined);
    // Ready when it answers OPTIONS (bounded: 10 s).
    const ua = await TestUA.open('udp', '127.0.0.1', this.port);
    try {
      for (let i = 0; i < 50; i++) {
        try {
          const r = await ua.request('OPTIONS', `sip:127.0.0.1:${this.port}`, { from: 'sip:probe@example.test' }, 200);
          if (r.status === 200) return;
        } catch {
          // not up yet
        }
        if (child.exitCode !== null) throw new Error(`kamailio exited: ${this.log.slice(-2000)}`);
      }
      throw new Error(`kamailio did not answer: ${this.log.slice(-2000)}`);
    } finally {
      ua.close();
    }
  }

  /** Stops the Kamailio this test started, by its pid (SIGTERM, then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    await stopChild(c);
  }
}
