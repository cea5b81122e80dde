import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireBenchLock } from './lock.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('acquireBenchLock', () => {
  it('works in a fresh clone (no .local/ yet), refuses a second holder, and frees on release', () => {
    const root = mkdtempSync(join(tmpdir(), 'alcazar-bench-lock-'));
    dirs.push(root);
    const clusterDir = join(root, '.local', 'cluster-bench');
    const release = acquireBenchLock(clusterDir);
    expect(existsSync(`${clusterDir}.bench.lock`)).toBe(true);
    expect(() => acquireBenchLock(clusterDir)).toThrow(/another bench \(pid \d+\) is using/);
    release();
    expect(existsSync(`${clusterDir}.bench.lock`)).toBe(false);
    acquireBenchLock(clusterDir)();
  });
});
