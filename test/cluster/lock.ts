// A cross-process lock on a file holding the owner's pid. A lock whose owner
// is gone is taken over, so a crashed `cluster:up` never wedges later runs.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryAcquire(path: string): boolean {
  try {
    const fd = openSync(path, 'wx');
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
    if (Number.isFinite(owner) && owner !== process.pid && !isAlive(owner)) {
      rmSync(path, { force: true });
    }
    return false;
  }
}

export async function withLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (!tryAcquire(path)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${path}`);
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}
