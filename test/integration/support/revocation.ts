// Revoking in tests: CertificateRevocation objects, the published CRL, and the three verifiers
// the CRL is for (OpenSSL, Go's crypto/x509, Node's tls).
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { promisify } from 'node:util';
import type { CoreV1Api, CustomObjectsApi, V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import type { CertificateRevocationObject } from '../../../src/controllers/revocation/observe.js';
import { decodeCrlsPem, normalizeSerialHex, parseCrl } from '../../../src/pki/crl.js';
import { repoRoot } from '../../cluster/paths.js';
import { statusCodeOf } from './kube.js';
import { waitFor } from './wait.js';
import { leafOf, pemsOf, waitForWorkloadSecret } from './workload.js';

const execFileAsync = promisify(execFile);
const resource = { group: 'alcazar.dev', version: 'v1alpha1', plural: 'certificaterevocations' };

export async function createRevocation(
  api: CustomObjectsApi,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await api.createNamespacedCustomObject({
    ...resource,
    namespace,
    body: { apiVersion: 'alcazar.dev/v1alpha1', kind: 'CertificateRevocation', metadata: { name }, spec },
  });
}

/** Waits until alcazar applied or refused the revocation, and returns it. */
export function waitForDecision(
  api: CustomObjectsApi,
  namespace: string,
  name: string,
): Promise<CertificateRevocationObject> {
  return waitFor(`CertificateRevocation ${namespace}/${name} decided`, async () => {
    const obj = (await api.getNamespacedCustomObject({
      ...resource,
      namespace,
      name,
    })) as CertificateRevocationObject;
    return obj.status?.conditions?.some((c) => ['Applied', 'Refused'].includes(c.type) && c.status === 'True')
      ? obj
      : undefined;
  });
}

export const conditionOf = (obj: CertificateRevocationObject, type: string) =>
  obj.status?.conditions?.find((c) => c.type === type);

export async function readCrlConfigMap(core: CoreV1Api, namespace: string): Promise<V1ConfigMap | undefined> {
  try {
    return await core.readNamespacedConfigMap({ namespace, name: 'istio-ca-crl' });
  } catch (err) {
    if (statusCodeOf(err) === 404) return undefined;
    throw err;
  }
}

/** The leaf's serial as canonical hex, the form CRL entries and revocation status use. */
export const serialOf = (secret: V1Secret): string => normalizeSerialHex(leafOf(secret).serialNumberHex)!;

/** Waits until istio.<sa> carries a certificate other than `before`'s. */
export function waitForReissued(
  core: CoreV1Api,
  namespace: string,
  serviceAccount: string,
  before: V1Secret,
  timeoutMs = 20_000,
): Promise<V1Secret> {
  return waitForWorkloadSecret(
    core,
    namespace,
    serviceAccount,
    (s) => serialOf(s) !== serialOf(before),
    timeoutMs,
  );
}

export const crlText = (cm: V1ConfigMap | undefined) => cm?.data?.['ca-crl.pem'] ?? '';

/** Every serial listed by the CRLs in the text. */
export function listedSerials(text: string): Set<string> {
  return new Set(decodeCrlsPem(text).flatMap((der) => parseCrl(der).entries.map((e) => e.serial)));
}

export function crlNumbers(text: string): bigint[] {
  return decodeCrlsPem(text).map((der) => parseCrl(der).crlNumber ?? 0n);
}

/** Waits for istio-ca-crl in the namespace to satisfy `accept`. */
export function waitForCrl(
  core: CoreV1Api,
  namespace: string,
  description: string,
  accept: (text: string, cm: V1ConfigMap) => boolean,
  timeoutMs = 30_000,
): Promise<V1ConfigMap> {
  return waitFor(
    `istio-ca-crl in ${namespace}: ${description}`,
    async () => {
      const cm = await readCrlConfigMap(core, namespace);
      return cm && accept(crlText(cm), cm) ? cm : undefined;
    },
    { timeoutMs },
  );
}

function withFiles<T>(files: Record<string, string>, use: (paths: Record<string, string>) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-crl-'));
  try {
    const paths: Record<string, string> = {};
    for (const [name, text] of Object.entries(files)) {
      paths[name] = join(dir, name);
      writeFileSync(paths[name], text, { mode: 0o600 });
    }
    return use(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl verify -crl_check` of the Secret's chain against its root and the CRL; openssl's output. */
export function opensslVerifyWithCrl(secret: V1Secret, crl: string): string {
  const { certChain, root } = pemsOf(secret);
  return withFiles({ 'chain.pem': certChain, 'root.pem': root, 'crl.pem': crl }, (p) => {
    try {
      return execFileSync(
        'openssl',
        [
          'verify',
          '-crl_check',
          '-CAfile',
          p['root.pem']!,
          '-CRLfile',
          p['crl.pem']!,
          '-untrusted',
          p['chain.pem']!,
          p['chain.pem']!,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (err) {
      const { stdout, stderr } = err as { stdout: string; stderr: string };
      return `${stdout}${stderr}`;
    }
  });
}

/** Go's x509.ParseRevocationList + CheckSignatureFrom on every CRL, against these CA certificates. */
export async function goCheckCrl(crl: string, caPem: string): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-go-crl-'));
  try {
    writeFileSync(join(dir, 'crl.pem'), crl);
    writeFileSync(join(dir, 'ca.pem'), caPem);
    const { stdout } = await execFileAsync('go', ['run', '.', join(dir, 'crl.pem'), join(dir, 'ca.pem')], {
      cwd: join(repoRoot, 'test', 'integration', 'support', 'crl-check'),
      env: { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local', GOWORK: 'off' },
    });
    return { ok: true, output: stdout };
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${stdout ?? ''}${stderr ?? ''}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One mTLS handshake: a Node tls server holding `server`'s certificate, trusting the root and
 * honouring the CRL (`crl` option), and a client presenting `client`'s. Resolves with what the
 * server saw: the authorised peer, or the error it refused the client with.
 */
export async function handshakeWithCrl(
  server: V1Secret,
  client: V1Secret,
  crl: string,
): Promise<{ ok: true } | { ok: false; error: string }> {
  const s = pemsOf(server);
  const c = pemsOf(client);
  return new Promise((resolve) => {
    const tlsServer = createServer({
      cert: s.certChain,
      key: s.key,
      ca: s.root,
      crl,
      requestCert: true,
      // Accept the connection to read the verdict (and its reason) instead of a bare reset.
      rejectUnauthorized: false,
    });
    const finish = (outcome: { ok: true } | { ok: false; error: string }) => {
      clearTimeout(deadline);
      tlsServer.close();
      resolve(outcome);
    };
    const deadline = setTimeout(() => finish({ ok: false, error: 'no outcome within 10 s' }), 10_000);
    tlsServer.on('secureConnection', (socket) => {
      const verdict = socket.authorized
        ? ({ ok: true } as const)
        : ({ ok: false, error: String(socket.authorizationError) } as const);
      socket.end('hello');
      finish(verdict);
    });
    tlsServer.on('tlsClientError', (err) => finish({ ok: false, error: err.message }));
    tlsServer.listen(0, '127.0.0.1', () => {
      const address = tlsServer.address() as { port: number };
      const socket = connect({
        host: '127.0.0.1',
        port: address.port,
        cert: c.certChain,
        key: c.key,
        ca: c.root,
        checkServerIdentity: () => undefined,
      });
      socket.on('error', () => socket.destroy());
      socket.on('data', () => socket.end());
    });
  });
}
