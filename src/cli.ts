#!/usr/bin/env node
// The `herald` command: start the server on a config file.
import { Command } from 'commander';
import { ConfigError, loadConfig } from './config/load.js';
import { createLogger } from './log.js';
import { startHerald } from './server.js';
import { Store } from './store/store.js';
import { UserDirectory, UserError, type UserRecord } from './auth/users.js';
import { silentLogger } from './log.js';

/** Runs `fn` on the user directory of the store named by the config file, then closes the store. */
async function withUsers(configPath: string, fn: (users: UserDirectory) => Promise<void>): Promise<void> {
  const config = loadConfig(configPath);
  const store = Store.open(config.store.url, silentLogger);
  try {
    await fn(new UserDirectory(store.collection<UserRecord>('user')));
  } finally {
    await store.close();
  }
}

function fail(e: unknown): never {
  process.stderr.write(`herald: ${e instanceof ConfigError || e instanceof UserError ? e.message : (e as Error).stack}\n`);
  process.exit(2);
}

const program = new Command();
// Options after a subcommand are the subcommand's own: `herald user add … --config FILE` must read FILE,
// not hand --config to the top-level command.
program
  .enablePositionalOptions()
  .name('herald')
  .description('Herald: a SIP presence server (presence agent, resource lists, SIP and XMPP gateways).')
  .option('-c, --config <file>', 'the configuration file (TOML); every key is described in the repository\'s config.toml', 'config.toml')
  .option('-l, --log-level <level>', 'override log.level: trace, debug, info, warn, error, fatal')
  .option('--log-format <format>', 'override log.format: json or pretty')
  .action(async (o: { config: string; logLevel?: string; logFormat?: string }) => {
    let config;
    try {
      config = loadConfig(o.config);
      if (o.logLevel) config.log.level = o.logLevel as typeof config.log.level;
      if (o.logFormat) config.log.format = o.logFormat as typeof config.log.format;
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(`herald: ${e.message}\n`);
        process.exit(2);
      }
      throw e;
    }
    const log = createLogger(config.log);
    let herald;
    try {
      herald = await startHerald(config, { log });
    } catch (e) {
      log.fatal({ err: e }, 'Herald could not start');
      process.exit(1);
    }
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      herald
        .stop()
        .then(() => process.exit(0))
        .catch((e: unknown) => {
          log.error({ err: e }, 'unclean shutdown');
          process.exit(1);
        });
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });

const user = program.command('user').description('manage the users who may publish and watch (digest credentials; takes effect at once, also while Herald runs)');
user
  .command('add <aor>')
  .description('add a user or change its password, e.g. herald user add sip:alice@example.test --password SECRET')
  .requiredOption('-p, --password <password>', 'the password (only its digest hashes are stored)')
  .option('-c, --config <file>', 'the configuration file naming the store', 'config.toml')
  .action((aor: string, o: { password: string; config: string }) =>
    withUsers(o.config, async (users) => {
      const r = await users.add(aor, o.password);
      process.stdout.write(`added ${r.aor} (digest username ${r.username}, realm ${r.realm})\n`);
    }).catch(fail),
  );
user
  .command('list')
  .description('list the users')
  .option('-c, --config <file>', 'the configuration file naming the store', 'config.toml')
  .action((o: { config: string }) =>
    withUsers(o.config, async (users) => {
      for (const r of await users.list()) process.stdout.write(`${r.aor}\n`);
    }).catch(fail),
  );
user
  .command('remove <aor>')
  .description('remove a user')
  .option('-c, --config <file>', 'the configuration file naming the store', 'config.toml')
  .action((aor: string, o: { config: string }) =>
    withUsers(o.config, async (users) => {
      if (!(await users.remove(aor))) throw new UserError(`no such user: ${aor}`);
      process.stdout.write(`removed ${UserDirectory.normalize(aor).aor}\n`);
    }).catch(fail),
  );

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`herald: ${(e as Error).message}\n`);
  process.exit(1);
});
