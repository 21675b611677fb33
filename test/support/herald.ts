// Starts Herald in-process on ephemeral loopback ports for integration tests.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { startHerald, type Herald } from '../../src/server.js';

export interface TestHerald {
  herald: Herald;
  port(transport: 'udp' | 'tcp' | 'tls' | 'ws'): number;
  /** The embedded XCAP server's root URL. */
  xcapUrl(): string;
  /** The admin listener's base URL and its token. */
  adminUrl(): string;
  adminToken(): string;
  stop(): Promise<void>;
}

export type DeepPartial = Record<string, Record<string, unknown>>;

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'herald-test-'));
}

/** `log`: a logger to read Herald's log lines from (default: silent). */
export async function startTestHerald(overrides: DeepPartial = {}, opts: { log?: Logger } = {}): Promise<TestHerald> {
  const cfg = validateConfig({
    ...overrides,
    sip: { listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'], ...(overrides['sip'] ?? {}) },
    presence: { subscribe_min_expires: 1, publish_min_expires: 1, ...(overrides['presence'] ?? {}) },
    store: { url: 'memory://', ...(overrides['store'] ?? {}) },
    // Most tests are about the PA, not authentication or authorization: auth.test.ts and
    // policy.test.ts turn them on.
    auth: { enabled: false, ...(overrides['auth'] ?? {}) },
    policy: { default: 'allow', ...(overrides['policy'] ?? {}) },
    // Shedding on event-loop delay is overload.test.ts's subject: elsewhere a machine busy with other
    // work would make a test's requests 503 (it did, in rls.test.ts's set-up on a shared 2-core host).
    limits: { max_event_loop_delay: 0, ...(overrides['limits'] ?? {}) },
    xcap: { listen: '127.0.0.1:0', ...(overrides['xcap'] ?? {}) },
    admin: { listen: '127.0.0.1:0', token_file: join(tempDir(), 'admin.token'), ...(overrides['admin'] ?? {}) },
    log: { level: 'silent', format: 'json' },
  });
  const herald = await startHerald(cfg, { log: opts.log ?? silentLogger });
  return {
    herald,
    port: (t) => {
      const a = herald.addresses.find((x) => x.startsWith(`${t}:`));
      if (!a) throw new Error(`no ${t} listener`);
      return Number(a.split(':').pop());
    },
    xcapUrl: () => herald.xcap!.url,
    adminUrl: () => herald.admin!.url,
    adminToken: () => readFileSync(cfg.admin.token_file, 'utf8').trim(),
    stop: () => herald.stop(),
  };
}
