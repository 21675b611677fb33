// Real softphones from Debian, headless, for the interop suite: baresip 1.0 (`baresip-core`) and
// linphonec 5.1 (`linphone-cli`). Each runs on 127.0.0.1 with its own config directory in a temp dir
// (also its HOME), is bounded in time and stopped by pid (startPeer in peers.ts), and talks to Herald
// only: its requests go to Herald as outbound proxy, with no registration (Herald is no registrar).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { DOMAIN, freePort, startPeer, type Herald, type PeerProcess } from './peers.js';

export const BARESIP = '/usr/bin/baresip';
export const LINPHONEC = '/usr/bin/linphonec';
const MODULES = '/usr/lib/baresip/modules';
const HOST = '127.0.0.1';

export type PhoneTransport = 'udp' | 'tcp';

export interface PhoneAccount {
  user: string;
  password: string;
  transport: PhoneTransport;
}

const aor = (user: string): string => `sip:${user}@${DOMAIN}`;

function phoneDir(t: TestContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `herald-${name}-`));
  t.after(() => {
    if (process.env.HERALD_INTEROP_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface BaresipOptions extends PhoneAccount {
  /** Publish presence (the presence module's PUBLISH, refreshed every 600 s). */
  publish?: boolean;
  /** Users whose presence it watches (contacts with presence=p2p: a SUBSCRIBE each). */
  watch?: string[];
  maxMs?: number;
}

/**
 * baresip with the modules presence needs and nothing else (no audio), a TCP console (`cons`) for
 * commands such as /presence_online, an account whose outbound proxy is Herald.
 */
export class Baresip {
  private constructor(readonly peer: PeerProcess, private readonly consPort: number) {}

  static async start(t: TestContext, herald: Herald, o: BaresipOptions): Promise<Baresip> {
    const dir = phoneDir(t, `baresip-${o.user}`);
    const [sipPort, consPort] = [await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'config'),
      [
        'poll_method epoll',
        `sip_listen ${HOST}:${sipPort}`,
        `module_path ${MODULES}`,
        'module cons.so',
        'module_tmp account.so',
        'module_app contact.so',
        'module_app menu.so',
        'module_app presence.so',
        `cons_listen ${HOST}:${consPort}`,
        '',
      ].join('\n'),
    );
    const proxy = `sip:${HOST}:${herald.port};transport=${o.transport}`;
    writeFileSync(
      join(dir, 'accounts'),
      `<${aor(o.user)};transport=${o.transport}>;auth_pass=${o.password};regint=0;pubint=${o.publish ? 600 : 0};outbound="${proxy}"\n`,
    );
    writeFileSync(join(dir, 'contacts'), (o.watch ?? []).map((u) => `"${u}" <${aor(u)}>;presence=p2p\n`).join(''));
    const peer = startPeer(t, { name: `baresip-${o.user}`, command: BARESIP, args: ['-f', dir, '-s'], dir, maxMs: o.maxMs ?? 90_000 });
    await peer.waitForOutput(/baresip is ready/, 15_000);
    return new Baresip(peer, consPort);
  }

  /** Runs a console command (e.g. "/presence_online") over the cons module's TCP socket. */
  async command(cmd: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: HOST, port: this.consPort }, () => s.end(`${cmd}\n`));
      s.on('data', () => undefined);
      s.once('error', reject);
      s.once('close', () => resolve());
      setTimeout(() => s.destroy(), 3000).unref();
    });
  }

  /** Waits for the watcher's line "<sip:user@…> changed status from X to State" (Online, Offline…). */
  waitForStatus(user: string, state: string, waitMs = 15_000, from = 0): Promise<string> {
    return this.peer.waitForOutput(new RegExp(`<${aor(user).replace(/[.]/g, '\\.')}> changed status from \\w+ to ${state}\\b`), waitMs, from);
  }

  stop(): Promise<void> {
    return this.peer.stop();
  }
}

export interface LinphonecOptions extends PhoneAccount {
  /** Buddies, by user name: one SUBSCRIBE each, or one list SUBSCRIBE with rlsUri. */
  friends: string[];
  /** A resource list URI (Herald's XCAP rls-services): the buddies are watched through it (RFC 4662). */
  rlsUri?: string;
  maxMs?: number;
}

/**
 * linphonec reading commands from a pipe that stays open (it quits at end of input), configured by
 * its own linphonerc: Herald as proxy and route, no REGISTER, friends subscribed anyway, and with
 * rlsUri one list subscription instead of one per friend. Its debug log goes to linphonec.debug.log.
 */
export class Linphonec {
  private constructor(readonly peer: PeerProcess, readonly dir: string) {}

  static async start(t: TestContext, herald: Herald, o: LinphonecOptions): Promise<Linphonec> {
    const dir = phoneDir(t, `linphonec-${o.user}`);
    mkdirSync(join(dir, '.local', 'share', 'linphone'), { recursive: true });
    const [sipPort, rtpPort] = [await freePort(), await freePort()];
    const proxy = `sip:${HOST}:${herald.port};transport=${o.transport}`;
    const rc = [
      '[sip]',
      `sip_port=${o.transport === 'udp' ? sipPort : 0}`,
      `sip_tcp_port=${o.transport === 'tcp' ? sipPort : 0}`,
      'sip_tls_port=0',
      `bind_address=${HOST}`,
      'default_proxy=0',
      // Herald is no registrar: friends are subscribed without a registration.
      'subscribe_presence_only_when_registered=0',
      // With rls_uri the default friend list subscribes once, to the list (0 here would stop every
      // friend subscription, not only the list's).
      ...(o.rlsUri ? [`rls_uri=${o.rlsUri}`, '[net]', 'friendlist_subscription_enabled=1'] : []),
      '[rtp]',
      `audio_rtp_port=${rtpPort}`,
      `video_rtp_port=${rtpPort + 2}`,
      '[proxy_0]',
      `reg_proxy=<${proxy}>`,
      `reg_route=<${proxy};lr>`,
      `reg_identity=${aor(o.user)}`,
      'reg_sendregister=0',
      'publish=0',
      '[auth_info_0]',
      `username=${o.user}`,
      `passwd=${o.password}`,
      `realm=${DOMAIN}`,
      `domain=${DOMAIN}`,
      ...o.friends.flatMap((f, i) => [`[friend_${i}]`, `url="${f}" <${aor(f)}>`, 'pol=accept', 'subscribe=1']),
      '',
    ].join('\n');
    writeFileSync(join(dir, 'linphonerc'), rc);
    const peer = startPeer(t, {
      name: `linphonec-${o.user}`,
      command: LINPHONEC,
      args: ['-c', join(dir, 'linphonerc'), '-d', '6', '-l', join(dir, 'linphonec.debug.log')],
      dir,
      maxMs: o.maxMs ?? 90_000,
      stdin: true,
    });
    await peer.waitForOutput(/linphonec>/, 15_000);
    return new Linphonec(peer, dir);
  }

  /** Waits for linphonec's line `Friend "user" <sip:user@…> is State` (Online, Offline…). */
  waitForFriend(user: string, state: string, waitMs = 15_000, from = 0): Promise<string> {
    return this.peer.waitForOutput(new RegExp(`Friend "${user}" <${aor(user).replace(/[.]/g, '\\.')}> is ${state}\\b`), waitMs, from);
  }

  async stop(): Promise<void> {
    this.peer.write('quit\n');
    await this.peer.stop();
  }
}
