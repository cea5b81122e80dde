/** Leaves we issue work for mutual TLS in Node, with peers identified by their SPIFFE IDs. */
import type { AddressInfo } from 'node:net';
import { connect, createServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, type KeyAlgorithm, type KeyPair, privateKeyToPem } from './keys.js';
import { createTestCa, createTestIntermediate, issueTestLeaf, type TestLeaf } from './testing.js';

const NOW = new Date(Date.now() - 60_000); // TLS checks validity against the real clock

let rsaKeys: KeyPair[];

beforeAll(async () => {
  rsaKeys = await Promise.all([generateKeyPair('RSA_2048'), generateKeyPair('RSA_2048')]);
});

interface Peer {
  leaf: TestLeaf;
  /** cert-chain.pem: the leaf, then any intermediates. */
  chainPem: string;
}

async function peers(algorithm: KeyAlgorithm, viaIntermediate: boolean) {
  const [serverKeys, clientKeys] = algorithm === 'RSA_2048' ? rsaKeys : [undefined, undefined];
  const ca = await createTestCa({ notBefore: NOW, ...(algorithm === 'RSA_2048' && { keys: rsaKeys[0] }) });
  const intermediate = viaIntermediate
    ? await createTestIntermediate(ca.issuer, { notBefore: NOW })
    : undefined;
  const issuer = intermediate?.issuer ?? ca.issuer;
  const peer = async (serviceAccount: string, keys: KeyPair | undefined): Promise<Peer> => {
    const leaf = await issueTestLeaf(issuer, {
      notBefore: NOW,
      namespace: 'shop',
      serviceAccount,
      algorithm,
      keys,
    });
    return { leaf, chainPem: leaf.certificate.pem + (intermediate?.certificate.pem ?? '') };
  };
  return {
    rootPem: ca.root.pem,
    server: await peer('server', serverKeys),
    client: await peer('client', clientKeys),
  };
}

function uriSanOf(certificate: PeerCertificate): string | undefined {
  return certificate.subjectaltname;
}

async function handshake(rootPem: string, server: Peer, client: Peer) {
  let serverSawClient: PeerCertificate | undefined;
  const tlsServer = createServer(
    {
      key: privateKeyToPem(server.leaf.keys.privateKey),
      cert: server.chainPem,
      ca: rootPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      serverSawClient = socket.getPeerCertificate();
      socket.end('hello');
    },
  );
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const { port } = tlsServer.address() as AddressInfo;
  try {
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const tlsSocket = connect({
        host: '127.0.0.1',
        port,
        key: privateKeyToPem(client.leaf.keys.privateKey),
        cert: client.chainPem,
        ca: rootPem,
        // Peers are identified by SPIFFE ID, not host name.
        checkServerIdentity: (_host, certificate) =>
          uriSanOf(certificate) === `URI:${server.leaf.spiffeId}`
            ? undefined
            : new Error(`unexpected server identity ${uriSanOf(certificate)}`),
      });
      tlsSocket.once('secureConnect', () => resolve(tlsSocket));
      tlsSocket.once('error', reject);
    });
    const received = await new Promise<string>((resolve, reject) => {
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk;
      });
      socket.once('end', () => resolve(data));
      socket.once('error', reject);
    });
    return {
      authorized: socket.authorized,
      clientSawServer: socket.getPeerCertificate(),
      serverSawClient,
      received,
    };
  } finally {
    await new Promise((resolve) => tlsServer.close(resolve));
  }
}

describe.each<[KeyAlgorithm, boolean]>([
  ['ECDSA_P256', false],
  ['RSA_2048', false],
  ['ECDSA_P256', true],
])('mutual TLS with %s leaves (via an intermediate: %s)', (algorithm, viaIntermediate) => {
  it('authenticates both peers by their SPIFFE IDs', async () => {
    const { rootPem, server, client } = await peers(algorithm, viaIntermediate);
    const result = await handshake(rootPem, server, client);
    expect(result.authorized).toBe(true);
    expect(result.received).toBe('hello');
    expect(uriSanOf(result.clientSawServer)).toBe('URI:spiffe://cluster.local/ns/shop/sa/server');
    expect(uriSanOf(result.serverSawClient!)).toBe('URI:spiffe://cluster.local/ns/shop/sa/client');
  });
});

describe('mutual TLS across roots', () => {
  it('fails when the client trusts a different root', async () => {
    const { server, client } = await peers('ECDSA_P256', false);
    const stranger = await createTestCa({ notBefore: NOW });
    await expect(handshake(stranger.root.pem, server, client)).rejects.toThrow(
      /unable to verify|self.signed|issuer/i,
    );
  });
});
