// One bench at a time per control plane: two invocations on the same cluster
// directory rewrite each other's CertificateAuthority, delete each other's
// Secrets and the second one's teardown stops the first one's cluster.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { isAlive } from '../test/cluster/lock.js';

export function acquireBenchLock(clusterDir: string): () => void {
  const path = `${clusterDir}.bench.lock`;
  mkdirSync(dirname(path), { recursive: true }); // a fresh checkout has no .local/ yet
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isFinite(owner) && isAlive(owner)) {
        throw new Error(
          `another bench (pid ${owner}) is using ${clusterDir}; wait for it, or give this one its own --cluster-dir`,
        );
      }
      rmSync(path, { force: true }); // its owner is gone
    }
  }
  throw new Error(`could not take ${path}`);
}
