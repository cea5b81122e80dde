import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type { LogFormat } from '../config/process.js';

export type { Logger };

/**
 * JSON logs on stdout. Key material never reaches a log line: objects are
 * logged by name, and any field that could carry a Secret's data is redacted
 * as a second line of defence.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(loggerOptions(level), destination);
}

/**
 * The controller's logger: JSON, or one readable line per event for a person at a terminal
 * (pino-pretty, a development dependency: an image without it logs JSON and says why).
 */
export function createProcessLogger(level: string, format: LogFormat, stdoutIsTerminal: boolean): Logger {
  const wantPretty = format === 'pretty' || (format === 'auto' && stdoutIsTerminal);
  if (!wantPretty) return createLogger(level);
  const pretty = loadPrettyPrinter();
  if (!pretty) {
    const log = createLogger(level);
    if (format === 'pretty') log.warn('--log-format=pretty needs the pino-pretty package; logging JSON');
    return log;
  }
  return createLogger(
    level,
    pretty({
      colorize: stdoutIsTerminal,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,component',
      singleLine: true,
      sync: true,
    }),
  );
}

type PrettyFactory = (options: Record<string, unknown>) => pino.DestinationStream;

function loadPrettyPrinter(): PrettyFactory | undefined {
  try {
    const loaded = createRequire(import.meta.url)('pino-pretty') as
      | PrettyFactory
      | { default: PrettyFactory };
    return typeof loaded === 'function' ? loaded : loaded.default;
  } catch {
    return undefined;
  }
}

function loggerOptions(level: string): pino.LoggerOptions {
  return {
    level,
    base: { component: 'alcazar' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['data', '*.data', 'stringData', '*.stringData', 'privateKey', '*.privateKey', 'key', '*.key'],
      censor: '[redacted]',
    },
    formatters: { level: (label) => ({ level: label }) },
  };
}

/** A logger bound to one object, so every line about it carries its namespace and name. */
export function objectLogger(log: Logger, kind: string, namespace: string | undefined, name: string): Logger {
  return log.child(namespace ? { kind, namespace, name } : { kind, name });
}
