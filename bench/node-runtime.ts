// How a cluster starts the controller's node: the V8/node flags in the
// Dockerfile's ENTRYPOINT and NODE_OPTIONS from the Deployment. The bench runs
// the controller with the same two, read from the files that ship, so what it
// measures is what an operator deploys — a flag changed there changes the bench.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { repoRoot } from '../test/cluster/paths.js';

export interface NodeRuntime {
  /** Flags between `node` and the script, e.g. `--optimize-for-size` (not allowed in NODE_OPTIONS). */
  args: string[];
  /** The container's NODE_OPTIONS; empty when the Deployment sets none. */
  nodeOptions: string;
}

/** The flags the exec-form ENTRYPOINT passes to node before the script. */
export function entrypointNodeArgs(dockerfile: string): string[] {
  const lines = dockerfile.split('\n').filter((l) => /^ENTRYPOINT\s/.test(l));
  const last = lines.at(-1);
  if (!last) throw new Error('Dockerfile: no ENTRYPOINT');
  let argv: unknown;
  try {
    argv = JSON.parse(last.replace(/^ENTRYPOINT\s+/, ''));
  } catch {
    throw new Error(`Dockerfile: ENTRYPOINT is not in exec form (a JSON array): ${last}`);
  }
  if (!Array.isArray(argv) || argv[0] !== 'node' || !argv.every((a) => typeof a === 'string'))
    throw new Error(`Dockerfile: ENTRYPOINT does not start node: ${last}`);
  const script = argv.findIndex((a, i) => i > 0 && !a.startsWith('-'));
  if (script < 0) throw new Error(`Dockerfile: ENTRYPOINT names no script: ${last}`);
  return argv.slice(1, script);
}

interface Container {
  name?: string;
  env?: Array<{ name?: string; value?: string }>;
}

/** NODE_OPTIONS of the Deployment's `alcazar` container ('' when unset). */
export function deploymentNodeOptions(manifest: string): string {
  const docs = yaml.loadAll(manifest) as Array<{
    kind?: string;
    spec?: { template?: { spec?: { containers?: Container[] } } };
  }>;
  const deployment = docs.find((d) => d?.kind === 'Deployment');
  const container = deployment?.spec?.template?.spec?.containers?.find((c) => c.name === 'alcazar');
  if (!container) throw new Error('manifests: no Deployment with an alcazar container');
  return container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
}

export function shippedNodeRuntime(root = repoRoot): NodeRuntime {
  return {
    args: entrypointNodeArgs(readFileSync(join(root, 'Dockerfile'), 'utf8')),
    nodeOptions: deploymentNodeOptions(readFileSync(join(root, 'manifests', '30-deployment.yaml'), 'utf8')),
  };
}

export const describeNodeRuntime = (r: NodeRuntime) =>
  `node ${r.args.join(' ') || '(no flags)'}, NODE_OPTIONS=${r.nodeOptions || '(unset)'}`;
