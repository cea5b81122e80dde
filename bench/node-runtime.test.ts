import { describe, expect, it } from 'vitest';
import { deploymentNodeOptions, entrypointNodeArgs, shippedNodeRuntime } from './node-runtime.js';

describe('entrypointNodeArgs', () => {
  it('takes the flags between node and the script, from the last ENTRYPOINT', () => {
    const dockerfile = [
      'FROM node:20 AS build',
      'ENTRYPOINT ["node", "old.js"]',
      'FROM node:20',
      'ENTRYPOINT ["node", "--optimize-for-size", "--stack-trace-limit=20", "/app/dist/cli/main.js"]',
      'CMD ["controller"]',
    ].join('\n');
    expect(entrypointNodeArgs(dockerfile)).toEqual(['--optimize-for-size', '--stack-trace-limit=20']);
    expect(entrypointNodeArgs('ENTRYPOINT ["node", "/app/main.js", "--flag-for-the-app"]')).toEqual([]);
  });

  it('refuses what it cannot read rather than guessing', () => {
    expect(() => entrypointNodeArgs('FROM node:20\nCMD ["node", "x.js"]')).toThrow(/no ENTRYPOINT/);
    expect(() => entrypointNodeArgs('ENTRYPOINT node --optimize-for-size x.js')).toThrow(/exec form/);
    expect(() => entrypointNodeArgs('ENTRYPOINT ["tini", "--", "node", "x.js"]')).toThrow(
      /does not start node/,
    );
    expect(() => entrypointNodeArgs('ENTRYPOINT ["node", "--inspect"]')).toThrow(/no script/);
  });
});

describe('deploymentNodeOptions', () => {
  const deployment = (env: string) => `
apiVersion: v1
kind: ServiceAccount
metadata: {name: alcazar}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: alcazar}
spec:
  template:
    spec:
      containers:
        - name: sidecar
          env: [{name: NODE_OPTIONS, value: --not-ours}]
        - name: alcazar
${env}`;

  it("reads the alcazar container's NODE_OPTIONS, and '' when it sets none", () => {
    expect(
      deploymentNodeOptions(
        deployment('          env: [{name: NODE_OPTIONS, value: --max-old-space-size=384}]'),
      ),
    ).toBe('--max-old-space-size=384');
    expect(deploymentNodeOptions(deployment('          env: [{name: OTHER, value: x}]'))).toBe('');
    expect(() => deploymentNodeOptions('kind: Service\n')).toThrow(/no Deployment/);
  });
});

describe('shippedNodeRuntime', () => {
  it("reads the repository's Dockerfile and Deployment: no extra node flags, old space bounded", () => {
    const runtime = shippedNodeRuntime();
    // --optimize-for-size halved the start-up RSS peak but cost 53% more CPU per Secret (docs/BENCHMARKS.md).
    expect(runtime.args).toEqual([]);
    expect(runtime.nodeOptions).toBe('--max-old-space-size=320');
  });
});
