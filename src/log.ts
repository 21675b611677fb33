// Logging through pino: levels, JSON for shippers or pretty for a terminal.
import { pino, type Logger } from 'pino';
import type { Config } from './config/schema.js';

export type { Logger };

export function createLogger(cfg: Config['log']): Logger {
  if (cfg.format === 'pretty') {
    return pino({
      level: cfg.level,
      transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY, translateTime: 'SYS:standard' } },
    });
  }
  return pino({ level: cfg.level });
}

export const silentLogger: Logger = pino({ level: 'silent' });
