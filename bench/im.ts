// MESSAGE relay bench: `npm run build && node dist/bench/im.js [--messages N] [--runs N] [--window N]`.
//
// Herald (auth off, no IM rules: [im] default allow, [im] route = the bench's responder) and Kamailio
// (bench/kamailio/message.cfg: tm t_relay to the same responder) relay MESSAGEs from one generator
// socket to one responder socket that answers 200; both on 127.0.0.1 UDP, alternately, `runs` times.
// Per run: messages per second (wall) and per CPU-second of the server's processes. Bounded: at most
// `messages` per run, `window` outstanding, 30 s per run. Prints medians and the Herald/Kamailio ratio;
// no assertions. Stops only what it started, by pid.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freeUdpPort, sleep } from './proc.js';
import { okFor, parseMessage } from './sip.js';
import { KAMAILIO_BIN, REPO_ROOT, Server } from './targets.js';

const HERALD_CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MESSAGES = arg('messages', 10_000);
const RUNS = arg('runs', 2);
const WINDOW = arg('window', 50);
const RUN_CAP_MS = 30_000;

interface Result { server: string; sent: number; ok: number; lost: number; seconds: number; cpu: number }

function startHerald(dir: string, port: number, next: number): Server {
  const cfg = join(dir, 'herald.toml');
  writeFileSync(cfg, [
    '[sip]', `listen = ["udp:127.0.0.1:${port}"]`, 'domains = ["example.test"]',
    '[auth]', 'enabled = false',
    '[im]', `route = "sip:127.0.0.1:${next}"`, 'rate = 10000', 'burst = 100000',
    '[xcap]', 'listen = "127.0.0.1:0"',
    '[store]', 'url = "memory://"',
    '[log]', 'level = "warn"', 'format = "json"', '',
  ].join('\n'));
  return new Server('herald', spawn(process.execPath, [HERALD_CLI, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] }), port);
}

function startKamailio(dir: string, port: number, next: number): Server {
  const run = join(dir, 'run');
  mkdirSync(run, { recursive: true });
  const args = ['-DD', '-E', '-f', join(REPO_ROOT, 'bench', 'kamailio', 'message.cfg'), '-A', `BENCH_PORT=${port}`, '-A', `BENCH_NEXT="sip:127.0.0.1:${next}"`, '-A', 'BENCH_CHILDREN=2', '-m', '64', '-M', '16', '-Y', run, '-w', dir];
  return new Server('kamailio', spawn(KAMAILIO_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir }), port);
}

const bind = async (): Promise<dgram.Socket> => {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
};

async function runOnce(name: 'herald' | 'kamailio'): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `herald-im-bench-${name}-`));
  const responder = await bind();
  responder.on('message', (d, from) => {
    const p = parseMessage(d.toString('latin1'));
    if (p && !p.response) responder.send(okFor(p), from.port, from.address);
  });
  const port = await freeUdpPort();
  const next = responder.address().port;
  const server = name === 'herald' ? startHerald(dir, port, next) : startKamailio(dir, port, next);
  const gen = await bind();
  try {
    await server.ready(20_000);
    const sentBy = `127.0.0.1:${gen.address().port}`;
    let sent = 0;
    let ok = 0;
    let outstanding = 0;
    /** Outstanding requests by branch, with when they were sent: one unanswered for 2 s counts as lost. */
    const pending = new Map<string, number>();
    let lost = 0;
    const cpu0 = cpuSeconds(server.pids);
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let done = resolve;
      const cap = setTimeout(() => done(), RUN_CAP_MS);
      const pump = (): void => {
        while (outstanding < WINDOW && sent < MESSAGES) {
          const i = sent++;
          const branch = `z9hG4bKim${i}x${t0.toFixed(0)}`;
          pending.set(branch, performance.now());
          outstanding++;
          const body = `message ${i}`;
          gen.send(
            `MESSAGE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP ${sentBy};branch=${branch};rport\r\nMax-Forwards: 70\r\n` +
              `From: <sip:u${i % 1000}@example.test>;tag=t${i}\r\nTo: <sip:bob@example.test>\r\nCall-ID: im-${i}-${t0.toFixed(0)}\r\nCSeq: 1 MESSAGE\r\n` +
              `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
            port, '127.0.0.1',
          );
        }
        if (outstanding === 0 && sent >= MESSAGES) {
          clearTimeout(cap);
          done();
        }
      };
      const reaper = setInterval(() => {
        const old = performance.now() - 2000;
        for (const [b, at] of pending) {
          if (at > old) break;
          pending.delete(b);
          outstanding--;
          lost++;
        }
        pump();
      }, 250);
      const finish = done;
      done = () => {
        clearInterval(reaper);
        finish();
      };
      gen.on('message', (d) => {
        const p = parseMessage(d.toString('latin1'));
        if (!p || !p.response || p.status < 200 || !pending.delete(p.branch)) return;
        outstanding--;
        if (p.status === 200) ok++;
        pump();
      });
      pump();
    });
    const seconds = (performance.now() - t0) / 1000;
    return { server: name, sent, ok, lost, seconds, cpu: cpuSeconds(server.pids) - cpu0 };
  } finally {
    gen.close();
    responder.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const results: Result[] = [];
for (let r = 0; r < RUNS; r++) {
  for (const name of ['herald', 'kamailio'] as const) {
    const res = await runOnce(name);
    results.push(res);
    console.log(`${name.padEnd(8)} run ${r + 1}: ${res.ok}/${res.sent} answered 200 (${res.lost} unanswered) in ${res.seconds.toFixed(2)} s = ${(res.ok / res.seconds).toFixed(0)} MESSAGE/s, ${(res.ok / Math.max(res.cpu, 0.01)).toFixed(0)} per CPU-second`);
    await sleep(300);
  }
}
const fig = (name: string) => {
  const rs = results.filter((x) => x.server === name);
  return { rate: median(rs.map((x) => x.ok / x.seconds)), perCpu: median(rs.map((x) => x.ok / Math.max(x.cpu, 0.01))) };
};
const h = fig('herald');
const k = fig('kamailio');
console.log(`median: Herald ${h.rate.toFixed(0)}/s (${h.perCpu.toFixed(0)} per CPU-s), Kamailio ${k.rate.toFixed(0)}/s (${k.perCpu.toFixed(0)} per CPU-s); Herald/Kamailio per CPU-second ${(h.perCpu / k.perCpu).toFixed(2)}`);
