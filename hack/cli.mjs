#!/usr/bin/env node
// Runs `alcazar <command>` for npm scripts: from dist/ when `npm run build` output is newer than
// every source file (starts in a fraction of the time), from the TypeScript sources through tsx
// otherwise, so an edit is never run stale.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');

function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

const fresh = existsSync(built) && statSync(built).mtimeMs >= newestSourceMs(join(root, 'src'));
const args = fresh
  ? [built, ...process.argv.slice(2)]
  : ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...process.argv.slice(2)];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exitCode = result.status ?? 1;
