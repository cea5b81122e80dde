// Digests (sha256 of the stored base64 value) of the private keys tests saw in
// workload and CA Secrets, kept next to the controller logs so the key-leak
// scan can look for those exact values. Digests only: no key material on disk.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testLogDir } from './controller.js';

export const keyDigestFile = join(testLogDir, 'minted-key-digests.txt');

export function recordKeyDigests(digests: Iterable<string>): void {
  const lines = [...digests];
  if (lines.length === 0) return;
  mkdirSync(testLogDir, { recursive: true });
  appendFileSync(keyDigestFile, `${lines.join('\n')}\n`);
}

export function recordedKeyDigests(): Set<string> {
  if (!existsSync(keyDigestFile)) return new Set();
  return new Set(readFileSync(keyDigestFile, 'utf8').split('\n').filter(Boolean));
}
