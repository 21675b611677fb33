// Interop helpers: run a real Herald (child process, own temp dir and store) and real sipp against it.
// Everything stays on 127.0.0.1; every wait is bounded; processes are stopped by their own pid only.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/** A bounded wait that does not keep the process alive by itself. */
const idle = (ms: number): Promise<void> => sleep(ms, undefined, { ref: false });

export const SIPP = '/usr/bin/sipp';
export const DOMAIN = 'example.test';
const HOST = '127.0.0.1';

/** The repository root: the nearest folder above this file with a package.json (works from test/ and dist/test/). */
export const ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('interop: no package.json above ' + fileURLToPath(import.meta.url));
})();

export const SCENARIOS = join(ROOT, 'test', 'interop', 'scenarios');

/** True when every binary is there. A missing one fails the test under CI=true and skips it elsewhere. */
export function requireBinaries(t: TestContext, ...binaries: string[]): boolean {
  const missing = binaries.filter((b) => !existsSync(b));
  if (missing.length === 0) return true;
  const why = `${missing.join(', ')} missing: run scripts/install-peers.sh as root`;
  if (process.env.CI === 'true') assert.fail(why);
  t.skip(why);
  return false;
}

/** True when sipp is there (see requireBinaries). */
export function requireSipp(t: TestContext): boolean {
  return requireBinaries(t, SIPP);
}

/** A port free on 127.0.0.1 for TCP and UDP at the time of the call. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((ok, fail) => {
      const srv = createServer();
      srv.once('error', fail);
      srv.listen(0, HOST, () => {
        const addr = srv.address();
        srv.close(() => (addr && typeof addr === 'object' ? ok(addr.port) : fail(new Error('no port'))));
      });
    });
    const udpFree = await new Promise<boolean>((ok) => {
      const s = createSocket('udp4');
      s.once('error', () => ok(false));
      s.bind(port, HOST, () => s.close(() => ok(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('interop: no free port after 20 tries');
}

function tail(file: string, chars = 4000): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length > chars ? '…' + text.slice(-chars) : text;
  } catch {
    return '(none)';
  }
}

/** Sends SIP OPTIONS over UDP and resolves with the status code of the answer, or null after waitMs. */
async function probeOptions(port: number, waitMs: number): Promise<number | null> {
  const sock = createSocket('udp4');
  try {
    await new Promise<void>((ok, fail) => {
      sock.once('error', fail);
      sock.bind(0, HOST, () => ok());
    });
    const local = sock.address().port;
    const id = randomBytes(8).toString('hex');
    const msg = [
      `OPTIONS sip:${DOMAIN} SIP/2.0`,
      `Via: SIP/2.0/UDP ${HOST}:${local};branch=z9hG4bK${id};rport`,
      'Max-Forwards: 70',
      `From: <sip:probe@${DOMAIN}>;tag=${id}`,
      `To: <sip:${DOMAIN}>`,
      `Call-ID: ${id}@${HOST}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    return await new Promise<number | null>((ok) => {
      const timer = setTimeout(() => ok(null), waitMs);
      sock.on('message', (buf) => {
        const m = /^SIP\/2\.0 (\d{3})/.exec(buf.toString('latin1'));
        if (m && Number(m[1]) >= 200) {
          clearTimeout(timer);
          ok(Number(m[1]));
        }
      });
      sock.send(msg, port, HOST, (err) => {
        if (err) {
          clearTimeout(timer);
          ok(null);
        }
      });
    });
  } finally {
    sock.close();
  }
}

export interface Herald {
  readonly port: number;
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** The embedded XCAP server's root URL (http://127.0.0.1:<port>/xcap-root). */
  readonly xcapUrl: string;
  pid(): number | undefined;
  /** Starts the process (again, on the same config and store) and waits until it answers OPTIONS. */
  start(): Promise<void>;
  /** SIGTERM (orderly) or SIGKILL (crash) to our child's pid, then waits for its exit. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Pauses (SIGSTOP) or resumes (SIGCONT) our child, by its pid: a node frozen past its lease. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void;
  /** The end of Herald's own output, for failure messages. */
  logTail(): string;
}

export interface HeraldOptions {
  /**
   * "trusted" (default): digest auth on, 127.0.0.1 a trusted peer whose From is believed, as behind a
   * proxy (sipp 3.6 answers only MD5 challenges, Herald offers SHA-256 first). "challenge": auth on,
   * no trusted peer. "off": auth.enabled = false.
   */
  auth?: 'trusted' | 'challenge' | 'off';
  /** The default sub-handling for users without pres-rules (Herald's own default is "confirm"). */
  policy?: 'allow' | 'confirm' | 'polite-block' | 'block';
  /** auth.algorithms, offered in this order (e.g. ["MD5"] for sipp). Default: Herald's own. */
  algorithms?: readonly ('SHA-256' | 'MD5')[];
  /**
   * Runs after the config is written and before Herald first starts, e.g. to add users to the store with
   * `heraldCli(setup.configFile, ['user', 'add', …])`. A failure stops the test (the temp dir is still removed).
   */
  beforeStart?: (setup: HeraldSetup) => Promise<void>;
  /** The admin listener's port (the admin page test); default an ephemeral one nobody needs to know. */
  adminPort?: number;
  /** `sip.public_host`: the address put in Contact and Via (a SIP load balancer's, in front of several nodes). */
  publicHost?: string;
  /** One node of a cluster (issue 10): `[cluster] redis` and its lease (seconds). Its own SQLite store is then not used. */
  cluster?: { redis: string; lease?: number; nodeId?: string };
}

/** What a beforeStart hook gets: the temp dir, the config file and the port Herald will listen on. */
export interface HeraldSetup {
  readonly dir: string;
  readonly configFile: string;
  readonly port: number;
}

/** The Herald command: HERALD_INTEROP_CMD split on blanks, else `node dist/src/cli.js`. */
function heraldCommand(): { cmd: string; baseArgs: string[] } {
  const custom = process.env.HERALD_INTEROP_CMD?.trim();
  const [cmd, ...baseArgs] = custom ? custom.split(/\s+/) : [process.execPath, join(ROOT, 'dist', 'src', 'cli.js')];
  assert.ok(cmd);
  if (!custom) assert.ok(existsSync(baseArgs[0] ?? ''), `${baseArgs[0]} is missing: run npm run build`);
  return { cmd, baseArgs };
}

/**
 * Runs the Herald CLI (`herald <args> --config <configFile>`, e.g. `user add sip:alice@example.test
 * --password pw`) to its end and resolves with its output; rejects with the output on a non-zero exit,
 * and kills it (by its pid) after timeoutMs.
 */
export async function heraldCli(configFile: string, args: readonly string[], timeoutMs = 20_000): Promise<string> {
  const { cmd, baseArgs } = heraldCommand();
  // Run in the config's own folder, with a config.toml there linked to it: `herald user … --config FILE`
  // (commander 14) gives --config to the top-level command, and the subcommand falls back to the
  // config.toml of its working directory. Run from the repository, it would write users into the
  // repository's own store (data/herald.sqlite); here both names lead to the same file.
  const dir = dirname(configFile);
  const alias = join(dir, 'config.toml');
  if (!existsSync(alias)) symlinkSync(basename(configFile), alias);
  const fromRoot = (a: string): string => (!isAbsolute(a) && a.includes('/') && existsSync(join(ROOT, a)) ? join(ROOT, a) : a);
  const all = [...baseArgs.map(fromRoot), ...args, '--config', configFile];
  const proc = spawn(fromRoot(cmd), all, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout?.on('data', (b: Buffer) => (output += b.toString('utf8')));
  proc.stderr?.on('data', (b: Buffer) => (output += b.toString('utf8')));
  const code = await new Promise<number | string | null>((ok) => {
    const killer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('close', (c, signal) => {
      clearTimeout(killer);
      ok(c ?? signal);
    });
    proc.once('error', (e) => {
      clearTimeout(killer);
      ok(e.message);
    });
  });
  if (code !== 0) throw new Error(`herald ${all.slice(baseArgs.length).join(' ')} ended with ${code}${code === 'SIGKILL' ? ` (killed after ${timeoutMs} ms)` : ''}\n${output}`);
  return output;
}

/**
 * A Herald of its own for one test: temp dir, config, SQLite store, log file. Registers its stop (and the
 * removal of the temp dir, unless HERALD_INTEROP_KEEP=1) with t.after. HERALD_INTEROP_CMD replaces
 * `node dist/src/cli.js` (e.g. to run the suite against another build); `--config FILE` is appended.
 */
export async function startHerald(t: TestContext, opts: HeraldOptions = {}): Promise<Herald> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-interop-'));
  const port = await freePort();
  // A known XCAP port: the interop Herald logs at warn, and its start line (which names the URL) is info.
  const xcapPort = await freePort();
  const configFile = join(dir, 'herald.toml');
  const logFile = join(dir, 'herald.log');
  writeFileSync(
    configFile,
    [
      '[sip]',
      `listen = ["udp:${HOST}:${port}", "tcp:${HOST}:${port}"]`,
      `domains = ["${DOMAIN}"]`,
      ...(opts.publicHost ? [`public_host = "${opts.publicHost}"`] : []),
      '',
      ...(opts.cluster
        ? ['[cluster]', `redis = "${opts.cluster.redis}"`, `node_id = "${opts.cluster.nodeId ?? ''}"`, `lease = ${opts.cluster.lease ?? 10}`, '']
        : []),
      '[auth]',
      `enabled = ${opts.auth !== 'off'}`,
      `trusted_peers = [${(opts.auth ?? 'trusted') === 'trusted' ? `"${HOST}"` : ''}]`,
      ...(opts.algorithms ? [`algorithms = [${opts.algorithms.map((a) => `"${a}"`).join(', ')}]`] : []),
      '',
      // The presence-agent scenarios are about RFC 3903/6665, not authorization: watchers are allowed.
      '[policy]',
      `default = "${opts.policy ?? 'allow'}"`,
      '',
      '[xcap]',
      `listen = "${HOST}:${xcapPort}"`,
      '',
      '[admin]',
      `listen = "${HOST}:${opts.adminPort ?? 0}"`,
      '',
      '[store]',
      `url = "sqlite://${join(dir, 'herald.sqlite')}"`,
      '',
      '[log]',
      'level = "warn"',
      'format = "json"',
      '',
    ].join('\n'),
  );
  const { cmd, baseArgs } = heraldCommand();

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const herald: Herald = {
    port,
    dir,
    configFile,
    logFile,
    xcapUrl: `http://${HOST}:${xcapPort}/xcap-root`,
    pid: () => child?.pid,
    logTail: () => tail(logFile),
    async start() {
      assert.equal(child, undefined, 'Herald is already running');
      const fd = openSync(logFile, 'a');
      const logStart = fstatSync(fd).size; // a restart appends: look only at this run's lines
      const proc = spawn(cmd, [...baseArgs, '--config', configFile], { cwd: ROOT, stdio: ['ignore', fd, fd] });
      closeSync(fd);
      child = proc;
      let gone = false;
      exited = new Promise<void>((ok) => {
        proc.once('exit', () => {
          gone = true;
          if (child === proc) child = undefined;
          ok();
        });
        proc.once('error', () => {
          gone = true;
          if (child === proc) child = undefined;
          ok();
        });
      });
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        if (gone) break;
        if ((await probeOptions(port, 250)) !== null) return;
        if (/listening/i.test(readFileSync(logFile).subarray(logStart).toString('utf8'))) return;
      }
      await herald.stop('SIGKILL');
      assert.fail(`Herald did not answer OPTIONS on udp:${HOST}:${port} within 20 s${gone ? ' (it exited)' : ''}\n${tail(logFile)}`);
    },
    signal(signal) {
      child?.kill(signal);
    },
    async stop(signal = 'SIGTERM') {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
        child = undefined;
        return;
      }
      proc.kill(signal);
      const done = await Promise.race([exited.then(() => true), idle(10_000).then(() => false)]);
      if (!done) {
        proc.kill('SIGKILL');
        await Promise.race([exited, idle(5_000)]);
      }
      child = undefined;
    },
  };

  t.after(async () => {
    await herald.stop();
    if (process.env.HERALD_INTEROP_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  if (opts.beforeStart) await opts.beforeStart({ dir, configFile, port });
  await herald.start();
  return herald;
}

/** Stops a child this suite started, by its pid: SIGTERM, SIGKILL after graceMs, then waits (bounded) for its exit. */
export async function stopChild(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  if (!(await Promise.race([exited.then(() => true), idle(graceMs).then(() => false)]))) {
    child.kill('SIGKILL');
    await Promise.race([exited, idle(2000)]);
  }
}

export interface PeerOptions {
  /** For the log file (<dir>/<name>.log) and messages. */
  name: string;
  command: string;
  args: readonly string[];
  /** The peer's own temp dir: its working directory and its HOME (never the user's home directory). */
  dir: string;
  /** Killed (SIGKILL, by pid) after this long, whatever happens. */
  maxMs: number;
  /** Keep standard input open as a pipe (linphonec quits at end of input). */
  stdin?: boolean;
}

/** A real peer (a softphone) run headless by the interop suite. */
export interface PeerProcess {
  readonly pid: number | undefined;
  /** Still running? */
  running(): boolean;
  /** Everything it printed (stdout and stderr, terminal colour codes removed), bounded to the last 200 kB. */
  output(): string;
  /** Resolves with the first output line matching re, at or after character `from` of output(); rejects after waitMs or if it exits. */
  waitForOutput(re: RegExp, waitMs: number, from?: number): Promise<string>;
  /** Writes to its standard input (stdin: true). */
  write(text: string): void;
  stop(): Promise<void>;
}

/**
 * Starts a peer in its own directory with HOME (and the XDG dirs) pointing there, output captured and
 * written to <dir>/<name>.log, killed after maxMs; t.after stops it by pid.
 */
export function startPeer(t: TestContext, o: PeerOptions): PeerProcess {
  const env = { ...process.env, HOME: o.dir, XDG_CONFIG_HOME: join(o.dir, '.config'), XDG_DATA_HOME: join(o.dir, '.local', 'share'), XDG_CACHE_HOME: join(o.dir, '.cache') };
  const child = spawn(o.command, [...o.args], { cwd: o.dir, env, stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let text = '';
  let exited = false;
  const logFile = join(o.dir, `${o.name}.log`);
  const onData = (b: Buffer): void => {
    // eslint-disable-next-line no-control-regex
    const clean = b.toString('utf8').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    text = (text + clean).slice(-200_000);
    try {
      writeFileSync(logFile, clean, { flag: 'a' });
    } catch {
      // the temp dir may be gone at the very end
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.stdin?.on('error', () => undefined);
  const killer = setTimeout(() => child.kill('SIGKILL'), o.maxMs);
  killer.unref();
  child.once('exit', () => {
    exited = true;
    clearTimeout(killer);
  });
  child.once('error', (e) => {
    exited = true;
    text += `\n(${o.name} could not start: ${e.message})`;
  });
  const peer: PeerProcess = {
    pid: child.pid,
    running: () => !exited && child.exitCode === null && child.signalCode === null,
    output: () => text,
    async waitForOutput(re, waitMs, from = 0) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const hit = text.slice(from).split('\n').find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (!peer.running() || Date.now() >= deadline) break;
        await sleep(100);
      }
      throw new Error(`${o.name} printed no line matching ${re} within ${waitMs} ms${peer.running() ? '' : ` (it ended: ${child.exitCode ?? child.signalCode})`}\n--- ${o.name} output, last part\n${text.slice(-6000)}`);
    },
    write(s) {
      if (peer.running()) child.stdin?.write(s);
    },
    stop: () => stopChild(child),
  };
  t.after(() => peer.stop());
  return peer;
}

export interface SippOptions {
  herald: Herald;
  /** -key values for the scenario; domain, presentity and watcher have defaults. */
  keys?: Record<string, string>;
  /** -set values (global variables the scenario declares). */
  sets?: Record<string, string>;
  transport?: 'udp' | 'tcp';
  calls?: number;
  /** sipp's own -timeout, in seconds; the process is killed 15 s after it if it is still there. */
  timeoutS?: number;
  /** Base name of the trace files in Herald's temp dir; defaults to the scenario name. */
  name?: string;
  /**
   * What sipp's `[authentication]` keyword answers a 401/407 with (`-au`, `-ap`, `-auth_uri`). `uri` is the
   * digest uri, normally the Request-URI (`sip:alice@example.test`); without it sipp 3.6 sends
   * `sip:<Herald's ip>:<port>`.
   */
  credentials?: { username: string; password: string; uri?: string };
}

export interface SippResult {
  code: number | null;
  messageLog: string;
  errorLog: string;
  actionLog: string;
  /** The scenario's <log> lines. */
  logLines(): string[];
  /** Exit code, the scenario's log, sipp's errors and the end of the message trace. */
  describe(): string;
}

export interface SippRun {
  readonly pid: number | undefined;
  readonly result: Promise<SippResult>;
  /** Resolves once the scenario has logged a line matching re; rejects after waitMs or if sipp ends first. */
  waitForLog(re: RegExp, waitMs: number): Promise<string>;
}

let sippSeq = 0;

/** Starts sipp in the foreground (a child process), against Herald's port on 127.0.0.1. */
export async function startSipp(scenarioFile: string, opts: SippOptions): Promise<SippRun> {
  const scenario = resolve(SCENARIOS, scenarioFile);
  assert.ok(existsSync(scenario), `no scenario ${scenario}`);
  const base = join(opts.herald.dir, `${opts.name ?? scenarioFile.replace(/\.xml$/, '')}-${++sippSeq}`);
  const files = { messageLog: `${base}.messages.log`, errorLog: `${base}.errors.log`, actionLog: `${base}.actions.log` };
  const timeoutS = opts.timeoutS ?? 20;
  const keys = { domain: DOMAIN, presentity: 'alice', watcher: 'bob', ...opts.keys };
  const args = [
    `${HOST}:${opts.herald.port}`,
    '-sf', scenario,
    '-m', String(opts.calls ?? 1),
    '-l', '1',
    '-t', opts.transport === 'tcp' ? 't1' : 'u1',
    '-i', HOST,
    '-p', String(await freePort()),
    '-timeout', `${timeoutS}s`,
    '-timeout_error',
    '-nostdin',
    '-default_behaviors', 'all,-bye',
    '-trace_msg', '-message_file', files.messageLog,
    '-trace_err', '-error_file', files.errorLog,
    '-trace_logs', '-log_file', files.actionLog,
    ...Object.entries(keys).flatMap(([k, v]) => ['-key', k, v]),
    ...Object.entries(opts.sets ?? {}).flatMap(([k, v]) => ['-set', k, v]),
    ...(opts.credentials ? ['-au', opts.credentials.username, '-ap', opts.credentials.password] : []),
    // sipp writes "sip:" + the -auth_uri value into the digest uri.
    ...(opts.credentials?.uri ? ['-auth_uri', opts.credentials.uri.replace(/^sip:/i, '')] : []),
  ];
  const out = openSync(`${base}.out`, 'w');
  const proc = spawn(SIPP, args, { cwd: opts.herald.dir, stdio: ['ignore', out, out] });
  closeSync(out);

  const readLog = (): string[] => {
    try {
      return readFileSync(files.actionLog, 'utf8').split('\n').filter((l) => l.trim() !== '');
    } catch {
      return [];
    }
  };
  let finished = false;
  const result = new Promise<SippResult>((ok) => {
    const killer = setTimeout(() => proc.kill('SIGKILL'), (timeoutS + 15) * 1000);
    const finish = (code: number | null): void => {
      clearTimeout(killer);
      finished = true;
      ok({
        code,
        ...files,
        logLines: readLog,
        describe: () =>
          [
            `sipp ${scenarioFile} exited with ${code}`,
            `--- scenario log (${files.actionLog})`,
            readLog().join('\n') || '(none)',
            `--- sipp errors (${files.errorLog})`,
            tail(files.errorLog, 3000),
            `--- SIP messages, last part (${files.messageLog})`,
            tail(files.messageLog, 6000),
          ].join('\n'),
      });
    };
    proc.once('exit', (code) => finish(code));
    proc.once('error', () => finish(null));
  });

  return {
    pid: proc.pid,
    result,
    async waitForLog(re, waitMs) {
      const deadline = Date.now() + waitMs;
      while (Date.now() < deadline) {
        const hit = readLog().find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (finished) break;
        await sleep(100);
      }
      const r = await Promise.race([result, idle(1).then(() => null)]);
      throw new Error(`sipp ${scenarioFile} logged no line matching ${re} within ${waitMs} ms\n${r ? r.describe() : readLog().join('\n')}`);
    },
  };
}

/** Runs a scenario to its end: resolves with sipp's exit code (0 = every call succeeded) and its trace files. */
export async function runSipp(scenarioFile: string, opts: SippOptions): Promise<SippResult> {
  return (await startSipp(scenarioFile, opts)).result;
}

/** Asserts that sipp succeeded, with everything needed to tell a Herald bug from a scenario bug. */
export function assertSippOk(r: SippResult, herald: Herald): void {
  assert.equal(r.code, 0, `${r.describe()}\n--- Herald output (${herald.logFile})\n${herald.logTail()}`);
}
