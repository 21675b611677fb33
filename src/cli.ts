#!/usr/bin/env node
// The `herald` command: start the server on a config file, manage users, and look at and steer a
// running Herald through its admin API (status, presentities, watchers, subscriptions, lists, peers,
// watcher decisions). `--config` may come before or after the subcommand (commander reads program
// options anywhere when positional options are off).
import { Command, Option } from 'commander';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import { ConfigError, loadConfig, parseConfig, resolvePaths } from './config/load.js';
import { LOG_FORMATS, LOG_LEVELS, type Config } from './config/schema.js';
import { createLogger, silentLogger } from './log.js';
import { startHerald } from './server.js';
import { Store } from './store/store.js';
import { sharedStore } from './store/redis.js';
import { RedisLink } from './cluster/redis.js';
import { UserDirectory, UserError, type UserRecord } from './auth/users.js';
import { AdminClient, AdminClientError } from './admin/client.js';
import { DECISIONS } from './admin/watcher-decision.js';
import { keyValues, paged, type Page } from './admin/format.js';
import { VERSION } from './version.js';

const program = new Command();

interface Globals { config: string; logLevel?: (typeof LOG_LEVELS)[number]; logFormat?: (typeof LOG_FORMATS)[number]; json?: boolean }
const globals = (): Globals => program.opts<Globals>();

/**
 * The configuration: --config FILE, else ./config.toml, else (an installed package run anywhere, no
 * file) the built-in defaults with relative paths taken from the current directory.
 */
function readConfig(): Config {
  const path = globals().config;
  if (program.getOptionValueSource('config') === 'default' && !existsSync(path)) return resolvePaths(parseConfig('', 'defaults'), process.cwd());
  return loadConfig(path);
}

function fail(e: unknown): never {
  const known = e instanceof ConfigError || e instanceof UserError || e instanceof AdminClientError;
  process.stderr.write(`herald: ${known ? e.message : (e as Error).stack}\n`);
  process.exit(2);
}

/** Runs `fn` on the user directory of the store named by the config file, then closes the store. */
async function withUsers(fn: (users: UserDirectory, config: Config) => Promise<void>): Promise<void> {
  const config = readConfig();
  // A cluster's users live in its Redis (cluster.redis), where every node reads them.
  const link = config.cluster.redis ? await RedisLink.open(config.cluster.redis, silentLogger).catch((e: Error) => fail(new ConfigError(`cluster.redis: ${e.message}`))) : undefined;
  const store = link ? sharedStore(link, silentLogger) : Store.open(config.store.url, silentLogger);
  try {
    await fn(new UserDirectory(store.collection<UserRecord>('user')), config);
  } finally {
    await store.close();
    await link?.close();
  }
}

/** Reads a password without echo from the terminal, or the first line of stdin when it is no terminal. */
async function readPassword(prompt: string): Promise<string> {
  const tty = process.stdin.isTTY === true;
  let muted = false;
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output: tty ? out : undefined, terminal: tty });
  try {
    if (tty) process.stderr.write(prompt);
    muted = true;
    const line = await new Promise<string>((resolve, reject) => {
      rl.once('line', resolve);
      rl.once('close', () => reject(new UserError('no password given on stdin')));
    });
    if (tty) process.stderr.write('\n');
    return line.replace(/\r$/, '');
  } finally {
    rl.close();
  }
}

/** Runs one admin API call and prints it: JSON with --json, else `render`. */
function apiCommand<A extends unknown[]>(fn: (client: AdminClient, ...args: A) => Promise<{ json: unknown; text: string }>) {
  return async (...args: A): Promise<void> => {
    try {
      const client = new AdminClient(readConfig());
      const r = await fn(client, ...args);
      process.stdout.write(globals().json ? `${JSON.stringify(r.json, null, 2)}\n` : r.text);
    } catch (e) {
      fail(e);
    }
  };
}

interface ListOpts { q?: string; offset?: string; limit?: string }
const query = (o: ListOpts, extra: Record<string, string | undefined> = {}): string => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ q: o.q, offset: o.offset, limit: o.limit, ...extra })) if (v !== undefined) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
};
const listOptions = (c: Command): Command =>
  c.option('-q, --query <text>', 'only items with this text in any field').option('--offset <n>', 'skip the first n items').option('--limit <n>', 'at most n items (default admin.page_size)');
const listOpts = (o: { query?: string; offset?: string; limit?: string }): ListOpts => ({ ...(o.query ? { q: o.query } : {}), ...(o.offset ? { offset: o.offset } : {}), ...(o.limit ? { limit: o.limit } : {}) });
const when = (iso: unknown): string => (typeof iso === 'string' ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

program
  .name('herald')
  .description('Herald: a SIP presence server (presence agent, resource lists, SIP and XMPP gateways).')
  .version(VERSION, '-V, --version', 'print the version')
  .option('-c, --config <file>', "the configuration file (TOML; every key is described in the package's config.toml); without it ./config.toml, else the built-in defaults", 'config.toml')
  .addOption(new Option('-l, --log-level <level>', 'override log.level').choices(LOG_LEVELS))
  .addOption(new Option('--log-format <format>', 'override log.format (auto: pretty on a terminal, json otherwise)').choices(LOG_FORMATS))
  .option('--json', 'admin commands: print the API answer as JSON')
  .action(async () => {
    const o = globals();
    let config: Config;
    try {
      config = readConfig();
      if (o.logLevel) config.log.level = o.logLevel;
      if (o.logFormat) config.log.format = o.logFormat;
    } catch (e) {
      fail(e);
    }
    const log = createLogger(config.log);
    let herald: Awaited<ReturnType<typeof startHerald>>;
    try {
      herald = await startHerald(config, { log });
    } catch (e) {
      if (e instanceof ConfigError) {
        // One line naming the key, on stderr like every other configuration mistake.
        log.flush();
        process.stderr.write(`herald: ${e.message}\n`);
        process.exit(2);
      }
      log.fatal({ err: e }, 'Herald could not start');
      log.flush();
      process.exit(1);
    }
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      const started = Date.now();
      herald
        .stop()
        .then(() => {
          log.info({ signal, ms: Date.now() - started }, 'Herald stopped');
          log.flush(() => process.exit(0));
        })
        .catch((e: unknown) => {
          log.error({ err: e }, 'unclean shutdown');
          log.flush(() => process.exit(1));
        });
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    // SIGHUP: re-read the file; apply what can change while running, say what waits for a restart.
    process.on('SIGHUP', () => {
      try {
        const next = readConfig();
        if (o.logLevel) next.log.level = o.logLevel;
        const ignored = herald.reload(next);
        log.info({ logLevel: next.log.level, restartNeeded: ignored }, ignored.length ? `configuration reloaded; changes to ${ignored.join(', ')} need a restart` : 'configuration reloaded');
      } catch (e) {
        log.error({ err: e instanceof ConfigError ? e.message : e }, 'configuration not reloaded: the running one stays');
      }
    });
  });

const user = program.command('user').description('manage the users who may publish and watch (digest credentials; takes effect at once, also while Herald runs)');
user
  .command('add <aor>')
  .description('add a user or change its password; the password is asked for (no echo), or read from stdin when it is not a terminal')
  .option('-p, --password <password>', 'the password on the command line (visible to other users of this machine: prefer the prompt or stdin)')
  .action((aor: string, o: { password?: string }) =>
    withUsers(async (users, config) => {
      const n = UserDirectory.normalize(aor);
      if (!config.sip.domains.includes(n.realm)) {
        process.stderr.write(`herald: warning: ${n.aor} is not in sip.domains (${config.sip.domains.join(', ')}): Herald will never challenge it, so it cannot authenticate\n`);
      }
      if (o.password !== undefined) process.stderr.write('herald: warning: a password given with --password is visible in the process list\n');
      const password = o.password ?? (await readPassword(`password for ${n.aor}: `));
      const r = await users.add(aor, password);
      process.stdout.write(`added ${r.aor} (digest username ${r.username}, realm ${r.realm})\n`);
    }).catch(fail),
  );
user
  .command('list')
  .description('list the users')
  .action(() =>
    withUsers(async (users) => {
      for (const r of await users.list()) process.stdout.write(`${r.aor}\n`);
    }).catch(fail),
  );
user
  .command('remove <aor>')
  .description('remove a user')
  .action((aor: string) =>
    withUsers(async (users) => {
      if (!(await users.remove(aor))) throw new UserError(`no such user: ${aor}`);
      process.stdout.write(`removed ${UserDirectory.normalize(aor).aor}\n`);
    }).catch(fail),
  );

// ---- a running Herald, through the admin API -------------------------------------------------------

program
  .command('status')
  .description("a running Herald's listeners, domains and counts")
  .action(
    apiCommand(async (c) => {
      const s = await c.call('GET', '/api/status');
      return { json: s, text: keyValues(s) };
    }),
  );

listOptions(program.command('presentities').description('presentities with their colour, note, publications and watchers'))
  .option('--colour <colour>', 'only green, amber, red or grey')
  .action(
    apiCommand(async (c, o: { query?: string; offset?: string; limit?: string; colour?: string }) => {
      const p = await c.call<Page>('GET', `/api/presentities${query(listOpts(o), { colour: o.colour })}`);
      return { json: p, text: paged(p, [['presentity', (r) => r['aor']], ['colour', (r) => r['colour']], ['basic', (r) => r['basic']], ['devices', (r) => r['publications']], ['watchers', (r) => r['watchers']], ['note', (r) => r['note']]], 'no presentities') };
    }),
  );

listOptions(program.command('watchers <presentity>').description("a presentity's watchers: state, since, event, from where"))
  .option('--status <status>', 'only active, pending, waiting or terminated')
  .action(
    apiCommand(async (c, aor: string, o: { query?: string; offset?: string; limit?: string; status?: string }) => {
      const p = await c.call<Page>('GET', `/api/presentities/${encodeURIComponent(aor)}/watchers${query(listOpts(o), { status: o.status })}`);
      return { json: p, text: paged(p, [['watcher', (r) => r['watcher']], ['status', (r) => r['status']], ['event', (r) => r['event']], ['since', (r) => when(r['since'])], ['from', (r) => r['from']]], 'no watchers') };
    }),
  );

listOptions(program.command('subscriptions').description('subscription dialogs: event, resource, watcher, expiry, last NOTIFY and its answer'))
  .option('--event <event>', 'only this event package (presence, presence.winfo)')
  .option('--resource <aor>', 'only subscriptions to this resource')
  .action(
    apiCommand(async (c, o: { query?: string; offset?: string; limit?: string; event?: string; resource?: string }) => {
      const p = await c.call<Page>('GET', `/api/subscriptions${query(listOpts(o), { event: o.event, resource: o.resource })}`);
      const last = (r: Record<string, unknown>): string => {
        const l = r['lastNotify'] as { status: unknown } | undefined;
        return l ? String(l.status) : '-';
      };
      return { json: p, text: paged(p, [['event', (r) => r['event']], ['resource', (r) => r['resource']], ['watcher', (r) => r['watcher']], ['expires', (r) => `${String(r['expiresIn'])}s`], ['notify', last], ['from', (r) => r['from']]], 'no subscriptions') };
    }),
  );

listOptions(program.command('lists').description('resource list subscriptions and their members\' instance states'))
  .action(
    apiCommand(async (c, o: { query?: string; offset?: string; limit?: string }) => {
      const p = await c.call<Page>('GET', `/api/lists${query(listOpts(o))}`);
      const members = (r: Record<string, unknown>): string => (r['members'] as { uri: string; state: string }[]).map((m) => `${m.uri}=${m.state}`).join(' ');
      return { json: p, text: paged(p, [['list', (r) => r['list']], ['watcher', (r) => r['watcher']], ['members', members]], 'no list subscriptions') };
    }),
  );

program
  .command('peers')
  .description('gateway links: upstream dialogs per remote SIP domain, the XMPP component, linked rosters')
  .action(
    apiCommand(async (c) => {
      const p = await c.call<{ sip: { enabled: boolean; domains: Record<string, { resource: string; phase: string; watchers: number; expiresIn: number }[]> }; xmpp: { enabled: boolean; component?: string; componentDomain?: string; rosters?: { sip: string; jid: string; online: boolean; contacts: number }[] } }>('GET', '/api/peers');
      let text = `sip gateway: ${p.sip.enabled ? 'on' : 'off'}\n`;
      for (const [d, links] of Object.entries(p.sip.domains)) for (const l of links) text += `  ${d}  ${l.resource}  ${l.phase}  watchers=${l.watchers}  expires=${l.expiresIn}s\n`;
      text += `xmpp component: ${p.xmpp.enabled ? `${p.xmpp.component ?? '?'} (${p.xmpp.componentDomain ?? ''})` : 'off'}\n`;
      for (const r of p.xmpp.rosters ?? []) text += `  ${r.sip} <-> ${r.jid}  ${r.online ? 'online' : 'offline'}  contacts=${r.contacts}\n`;
      return { json: p, text };
    }),
  );

program
  .command('watcher <decision> <presentity> <watcher>')
  .description(`decide about a watcher (${DECISIONS.join('|')}): writes a rule into the presentity's pres-rules as an XCAP client would`)
  .action(
    apiCommand(async (c, decision: string, owner: string, watcher: string) => {
      if (!(DECISIONS as readonly string[]).includes(decision)) throw new AdminClientError(`decision must be one of ${DECISIONS.join(', ')}`);
      const r = await c.call('POST', `/api/presentities/${encodeURIComponent(owner)}/watchers/${encodeURIComponent(watcher)}`, { action: decision });
      return { json: r, text: `${String(r['decision'])}: ${String(r['watcher'])} for ${String(r['owner'])} (rule ${String(r['rule'])} in ${String(r['document'])}, etag ${String(r['etag'])})\n` };
    }),
  );

program.parseAsync(process.argv).catch((e: unknown) => fail(e));
