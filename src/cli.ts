#!/usr/bin/env node
// The `herald` command: start the server on a config file.
import { Command } from 'commander';
import { ConfigError, loadConfig } from './config/load.js';
import { createLogger } from './log.js';
import { startHerald } from './server.js';

const program = new Command();
program
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

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`herald: ${(e as Error).message}\n`);
  process.exit(1);
});
