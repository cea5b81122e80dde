// npm run soak -- --duration 1h
// A long run against a real control plane of its own: many ServiceAccounts
// with 1-minute certificates, a 15-minute root (so several root rotations),
// steady ServiceAccount churn, continuous mTLS handshakes between random
// pairs of workloads that reload their Secrets on change, and periodic
// controller kills. Prints and writes a summary.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createSecureContext, createServer, type SecureContext, type Server } from 'node:tls';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Secret, Watch } from '@kubernetes/client-node';
import { parseDuration } from '../src/config/duration.js';
import { renewAt } from '../src/controllers/workload-secrets/renewal.js';
import { inspectCertificate } from '../src/pki/index.js';
import { decodeCertificatesPem } from '../src/pki/pem.js';
import { down, up } from '../test/cluster/controlplane.js';
import { repoRoot } from '../test/cluster/paths.js';

const { values: args } = parseArgs({
  strict: true,
  options: {
    duration: { type: 'string', default: '10m' },
    'service-accounts': { type: 'string', default: '200' },
    'leaf-ttl': { type: 'string', default: '1m' },
    'root-ttl': { type: 'string', default: '15m' },
    'kill-every': { type: 'string', default: '5m' },
    'churn-every': { type: 'string', default: '5s' },
    'handshakes-per-second': { type: 'string', default: '20' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: npm run soak -- [flags]

A long run on a control plane of its own (.local/cluster-soak): ServiceAccounts with short-lived
certificates, a short-lived root (so several root rotations), ServiceAccount churn, mTLS handshakes
between workloads that reload their Secrets, and periodic controller kills. Writes .local/soak/.

  --duration D               how long to run (default 10m)
  --service-accounts N       workloads (default 200)
  --leaf-ttl D               workload certificate ttl (default 1m)
  --root-ttl D               root ttl (default 15m)
  --kill-every D             SIGKILL the controller this often (default 5m)
  --churn-every D            delete and re-create a ServiceAccount this often (default 5s)
  --handshakes-per-second N  mTLS handshakes per second (default 20)
  --keep                     leave the control plane running at the end
  -h, --help                 this text`);
  process.exit(0);
}
const durationMs = parseDuration(args.duration!);
const saCount = Number(args['service-accounts']);
const leafTtl = args['leaf-ttl']!;
const killEveryMs = parseDuration(args['kill-every']!);
const churnEveryMs = parseDuration(args['churn-every']!);
const handshakeGapMs = 1000 / Number(args['handshakes-per-second']);
const NAMESPACES = 10;
const CA_NS = 'soak-ca';
const policy = { gracePeriodRatio: 0.5, minGracePeriodMs: 10_000 };

process.env.ALCAZAR_CLUSTER_DIR ??= join(repoRoot, '.local', 'cluster-soak');
const outDir = join(repoRoot, '.local', 'soak');
mkdirSync(outDir, { recursive: true });

const summary = {
  startedAt: new Date().toISOString(),
  settings: { ...args },
  handshakes: { ok: 0, failed: 0, failures: [] as string[] },
  renewals: 0,
  issued: 0,
  rootRotationsFinished: 0,
  controllerKills: 0,
  churn: { created: 0, deleted: 0 },
  maxSecondsPastRenewal: 0,
  expiredObserved: 0,
  rssMb: [] as Array<{ atS: number; rssMb: number }>,
  apiRequestsPerMinute: [] as number[],
  final: { lostSecrets: 0, orphanSecrets: 0, invalidSecrets: 0, missingTrustBundles: 0 },
};

function log(line: string): void {
  console.log(`[soak +${Math.round((Date.now() - Date.parse(summary.startedAt)) / 1000)}s] ${line}`);
}

interface Workload {
  namespace: string;
  name: string;
  context?: SecureContext;
  certNotBefore?: number;
  certNotAfter?: number;
  certSerial?: string;
  server?: Server;
  port?: number;
}

async function main(): Promise<void> {
  const { state } = await up({ log: (l) => log(`cluster: ${l}`) });
  const kc = new KubeConfig();
  kc.loadFromFile(state.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const kubectl = (a: string[], input?: string) =>
    execFileSync('kubectl', ['--kubeconfig', state.kubeconfig, ...a], {
      input,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
  kubectl(['apply', '-f', join(repoRoot, 'crds')]);
  kubectl(['wait', '--for=condition=Established', 'crd/certificateauthorities.alcazar.dev']);
  await core.createNamespace({ body: { metadata: { name: CA_NS } } }).catch(() => {});
  const spec = {
    workloadCertificates: {
      ttl: leafTtl,
      minGracePeriod: '10s',
      gracePeriodRatio: 0.5,
      clockSkewAllowance: '0s',
    },
    rootCA: { mode: 'SelfSigned', selfSigned: { ttl: args['root-ttl'], rotationThreshold: 0.4 } },
    namespaces: { managedByDefault: false },
  };
  const body = {
    apiVersion: 'alcazar.dev/v1alpha1',
    kind: 'CertificateAuthority',
    metadata: { name: 'default' },
    spec,
  };
  kubectl(['apply', '-f', '-'], JSON.stringify(body));

  // Workloads and their namespaces.
  const workloads = new Map<string, Workload>();
  for (let n = 0; n < NAMESPACES; n++) {
    const ns = `soak-${n}`;
    await core
      .createNamespace({ body: { metadata: { name: ns, labels: { 'ca.istio.io/override': 'true' } } } })
      .catch(() => {});
  }
  for (let i = 0; i < saCount; i++) {
    const w: Workload = { namespace: `soak-${i % NAMESPACES}`, name: `w-${i}` };
    workloads.set(`${w.namespace}/istio.${w.name}`, w);
    await core
      .createNamespacedServiceAccount({ namespace: w.namespace, body: { metadata: { name: w.name } } })
      .catch(() => {});
  }

  // One watch over every workload Secret; each workload reloads on change, like a sidecar.
  const onSecret = (phase: string, secret: V1Secret) => {
    const w = workloads.get(`${secret.metadata?.namespace}/${secret.metadata?.name}`);
    if (!w || phase === 'DELETED' || !secret.data?.['cert-chain.pem']) return;
    const pem = (k: string) => Buffer.from(secret.data![k]!, 'base64').toString();
    const options = { cert: pem('cert-chain.pem'), key: pem('key.pem'), ca: pem('root-cert.pem') };
    w.context = createSecureContext(options);
    const leaf = inspectCertificate(decodeCertificatesPem(options.cert)[0]!);
    w.certNotBefore = leaf.notBefore.getTime();
    w.certNotAfter = leaf.notAfter.getTime();
    w.certSerial = leaf.serialNumberHex;
    if (w.server) w.server.setSecureContext(options);
    else {
      const expectedPeers = `spiffe://cluster.local/ns/`;
      w.server = createServer({ ...options, requestCert: true, rejectUnauthorized: true }, (socket) => {
        const peer = socket.getPeerCertificate().subjectaltname ?? '';
        socket.end(peer.startsWith(`URI:${expectedPeers}`) ? peer : `bad peer ${peer}`);
      });
      w.server.listen(0, '127.0.0.1', () => {
        w.port = (w.server!.address() as { port: number }).port;
      });
    }
  };
  let secretWatch: AbortController | undefined;
  const watchSecrets = async () => {
    secretWatch = await new Watch(kc).watch(
      '/api/v1/secrets',
      { labelSelector: 'app.kubernetes.io/managed-by=alcazar' },
      onSecret,
      () => {
        if (!stopping) setTimeout(() => void watchSecrets(), 500);
      },
    );
  };
  let stopping = false;
  await watchSecrets();

  // The controller, killed and restarted periodically.
  let controller: ChildProcess | undefined;
  const controllerLog = join(outDir, 'controller.log');
  writeFileSync(controllerLog, '');
  const startController = () => {
    controller = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(repoRoot, 'src', 'cli', 'main.ts'),
        'controller',
        `--kubeconfig=${state.kubeconfig}`,
        `--ca-namespace=${CA_NS}`,
        '--http-port=0',
        '--csr-port=0',
        '--identity=soak',
        '--root-rotation-check-interval=2s',
        '--root-rotation-propagation-delay=3s',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    controller.stdout!.on('data', (chunk: Buffer) => {
      writeFileSync(controllerLog, chunk, { flag: 'a' });
      for (const line of chunk.toString().split('\n')) {
        if (line.includes('"issued workload certificate"')) {
          summary.issued++;
          if (line.includes('"RenewalDue"')) summary.renewals++;
        }
        if (line.includes('root rotation finished')) summary.rootRotationsFinished++;
      }
    });
    controller.stderr!.on('data', (chunk: Buffer) => writeFileSync(controllerLog, chunk, { flag: 'a' }));
  };
  startController();

  const started = Date.now();
  const until = started + durationMs;
  const timers: NodeJS.Timeout[] = [];

  // Kills.
  timers.push(
    setInterval(() => {
      summary.controllerKills++;
      log('SIGKILL controller');
      controller?.kill('SIGKILL');
      setTimeout(startController, 2_000);
    }, killEveryMs),
  );

  // Churn: short-lived ServiceAccounts come and go in the soak namespaces.
  let churnSeq = 0;
  const churned: Array<{ namespace: string; name: string }> = [];
  timers.push(
    setInterval(() => {
      const ns = `soak-${churnSeq % NAMESPACES}`;
      const name = `churn-${churnSeq++}`;
      core
        .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } })
        .then(() => {
          summary.churn.created++;
          churned.push({ namespace: ns, name });
        })
        .catch(() => {});
      if (churned.length > 20) {
        const victim = churned.splice(Math.floor(Math.random() * churned.length), 1)[0]!;
        core
          .deleteNamespacedServiceAccount({ namespace: victim.namespace, name: victim.name })
          .then(() => summary.churn.deleted++)
          .catch(() => {});
      }
    }, churnEveryMs),
  );

  // Schedule and resource samples.
  let lastApiTotal = await apiRequestTotal(state.kubeconfig);
  timers.push(
    setInterval(async () => {
      const now = Date.now();
      for (const w of workloads.values()) {
        if (w.certNotAfter === undefined || w.certNotBefore === undefined) continue;
        if (w.certNotAfter <= now) summary.expiredObserved++;
        const due = renewAt(
          { notBefore: w.certNotBefore, notAfter: w.certNotAfter, serial: w.certSerial ?? '' },
          policy,
        );
        summary.maxSecondsPastRenewal = Math.max(summary.maxSecondsPastRenewal, (now - due) / 1000);
      }
      if (controller?.pid) {
        try {
          const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${controller.pid}/status`, 'utf8'))?.[1];
          if (rss)
            summary.rssMb.push({
              atS: Math.round((now - started) / 1000),
              rssMb: Math.round(Number(rss) / 1024),
            });
        } catch {
          // restarting
        }
      }
    }, 10_000),
    setInterval(async () => {
      const total = await apiRequestTotal(state.kubeconfig);
      summary.apiRequestsPerMinute.push(total - lastApiTotal);
      lastApiTotal = total;
      log(
        `handshakes ok=${summary.handshakes.ok} failed=${summary.handshakes.failed} issued=${summary.issued} ` +
          `renewals=${summary.renewals} rotations=${summary.rootRotationsFinished} kills=${summary.controllerKills}`,
      );
    }, 60_000),
  );

  // Handshakes between random pairs.
  const list = [...workloads.values()];
  const handshake = (client: Workload, server: Workload) =>
    new Promise<void>((resolve) => {
      const fail = (why: string) => {
        summary.handshakes.failed++;
        if (summary.handshakes.failures.length < 50)
          summary.handshakes.failures.push(`${new Date().toISOString()} ${why}`);
        resolve();
      };
      const expectServer = `URI:spiffe://cluster.local/ns/${server.namespace}/sa/${server.name}`;
      const socket = connect({
        host: '127.0.0.1',
        port: server.port!,
        secureContext: client.context!,
        checkServerIdentity: (_, cert) =>
          cert.subjectaltname === expectServer ? undefined : new Error(`server is ${cert.subjectaltname}`),
      });
      let reply = '';
      socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
      socket.on('data', (d) => {
        reply += d;
      });
      socket.on('end', () => {
        if (reply === `URI:spiffe://cluster.local/ns/${client.namespace}/sa/${client.name}`) {
          summary.handshakes.ok++;
          resolve();
        } else fail(`server saw ${reply}`);
      });
      socket.on('error', (err) => fail(`${client.name}->${server.name}: ${err.message}`));
    });
  while (Date.now() < until) {
    const a = list[Math.floor(Math.random() * list.length)]!;
    const b = list[Math.floor(Math.random() * list.length)]!;
    if (a.context && b.port) await handshake(a, b);
    await new Promise((r) => setTimeout(r, handshakeGapMs));
  }

  // Wind down and check the end state.
  stopping = true;
  for (const t of timers) clearInterval(t);
  await new Promise((r) => setTimeout(r, 3_000));
  if (!controller || controller.exitCode !== null) startController();
  await new Promise((r) => setTimeout(r, 20_000)); // let the last restart converge
  summary.final = await finalState(core);
  controller?.kill('SIGTERM');
  secretWatch?.abort();
  for (const w of workloads.values()) w.server?.close();
  await custom
    .deleteClusterCustomObject({
      group: 'alcazar.dev',
      version: 'v1alpha1',
      plural: 'certificateauthorities',
      name: 'default',
    })
    .catch(() => {});

  const file = join(outDir, `soak-${summary.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ ...summary, endedAt: new Date().toISOString() }, null, 2)}\n`);
  const rss = summary.rssMb.map((s) => s.rssMb);
  console.log(`
soak summary (${args.duration}, ${saCount} ServiceAccounts, leaf ttl ${leafTtl}, root ttl ${args['root-ttl']})
  handshakes           ${summary.handshakes.ok} ok, ${summary.handshakes.failed} failed
  certificates issued  ${summary.issued} (renewals ${summary.renewals})
  root rotations       ${summary.rootRotationsFinished} finished
  controller kills     ${summary.controllerKills}
  churn                ${summary.churn.created} created, ${summary.churn.deleted} deleted
  max past renewal     ${summary.maxSecondsPastRenewal.toFixed(1)} s (certificates seen expired: ${summary.expiredObserved})
  controller RSS       min ${Math.min(...rss)} MB, max ${Math.max(...rss)} MB
  API requests/min     ${summary.apiRequestsPerMinute.join(', ')}
  final state          lost ${summary.final.lostSecrets}, orphans ${summary.final.orphanSecrets}, invalid ${summary.final.invalidSecrets}, missing trust bundles ${summary.final.missingTrustBundles}
written to ${file}`);
  if (!args.keep) await down();
  const clean =
    summary.handshakes.failed === 0 &&
    summary.final.lostSecrets === 0 &&
    summary.final.orphanSecrets === 0 &&
    summary.final.invalidSecrets === 0;
  process.exit(clean ? 0 : 1);
}

async function apiRequestTotal(kubeconfig: string): Promise<number> {
  const text = execFileSync('kubectl', ['--kubeconfig', kubeconfig, 'get', '--raw', '/metrics'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('apiserver_request_total{')) total += Number(line.split(' ').pop());
  }
  return total;
}

async function finalState(core: CoreV1Api) {
  const result = { lostSecrets: 0, orphanSecrets: 0, invalidSecrets: 0, missingTrustBundles: 0 };
  for (let n = 0; n < NAMESPACES; n++) {
    const ns = `soak-${n}`;
    const sas = new Set(
      (await core.listNamespacedServiceAccount({ namespace: ns })).items.map((s) => s.metadata!.name!),
    );
    const secrets = (
      await core.listNamespacedSecret({
        namespace: ns,
        labelSelector: 'app.kubernetes.io/managed-by=alcazar',
      })
    ).items;
    const bySa = new Map(secrets.map((s) => [s.metadata!.name!.slice('istio.'.length), s]));
    for (const sa of sas) {
      const secret = bySa.get(sa);
      if (!secret) result.lostSecrets++;
      else {
        const leaf = inspectCertificate(
          decodeCertificatesPem(Buffer.from(secret.data!['cert-chain.pem']!, 'base64'))[0]!,
        );
        if (
          leaf.notAfter.getTime() <= Date.now() ||
          leaf.uris[0] !== `spiffe://cluster.local/ns/${ns}/sa/${sa}`
        ) {
          result.invalidSecrets++;
        }
      }
    }
    for (const sa of bySa.keys()) if (!sas.has(sa)) result.orphanSecrets++;
    const bundles = await core.listNamespacedConfigMap({
      namespace: ns,
      fieldSelector: 'metadata.name=istio-ca-root-cert',
    });
    if (bundles.items.length !== 1) result.missingTrustBundles++;
  }
  return result;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
