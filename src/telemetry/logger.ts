import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout. Key material never reaches a log line: objects are
 * logged by name, and any field that could carry a Secret's data is redacted
 * as a second line of defence.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { component: 'alcazar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['data', '*.data', 'stringData', '*.stringData', 'privateKey', '*.privateKey', 'key', '*.key'],
        censor: '[redacted]',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger bound to one object, so every line about it carries its namespace and name. */
export function objectLogger(log: Logger, kind: string, namespace: string | undefined, name: string): Logger {
  return log.child(namespace ? { kind, namespace, name } : { kind, name });
}
