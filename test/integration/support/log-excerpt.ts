// When a wait fails, the controller's recent warnings and errors usually say
// why; the log files may be gone by then (each run's global setup clears the
// shared directory), so the excerpt travels in the error message.
import type { ControllerProcess, LogLine } from './controller.js';

const describeLine = (l: LogLine) =>
  [l.time, l.level, l.controller, l.informer, l.namespace, l.serviceAccount, l.msg, l.reason, l.err]
    .filter((part) => part !== undefined && part !== '')
    .join(' ');

/** Awaits `work`; if it fails, adds the controller's last warnings and errors to the error. */
export async function withLogExcerpt<T>(proc: ControllerProcess, work: Promise<T>, lines = 30): Promise<T> {
  try {
    return await work;
  } catch (err) {
    const excerpt = proc.lines
      .filter((l) => l.level !== 'debug' && l.level !== 'info')
      .slice(-lines)
      .map(describeLine);
    throw new Error(
      `${(err as Error).message}\ncontroller warnings and errors:\n  ${excerpt.join('\n  ') || '(none)'}`,
    );
  }
}
