// Logging through pino: levels, JSON for shippers or pretty for a terminal ("auto" picks by whether
// stdout is one, so a service manager or a pipe gets JSON without being told).
import { pino, type Logger } from 'pino';
import type { Config } from './config/schema.js';

export type { Logger };

export function resolveFormat(format: Config['log']['format']): 'json' | 'pretty' {
  return format === 'auto' ? (process.stdout.isTTY ? 'pretty' : 'json') : format;
}

export function createLogger(cfg: Pick<Config['log'], 'level' | 'format'>): Logger {
  if (resolveFormat(cfg.format) === 'pretty') {
    return pino({
      level: cfg.level,
      transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY, translateTime: 'SYS:standard' } },
    });
  }
  return pino({ level: cfg.level });
}

export const silentLogger: Logger = pino({ level: 'silent' });
