// The hand-written codec against protobufjs (through @grpc/proto-loader) reading protos/…/ca.proto.
import { join } from 'node:path';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeCertificateRequest,
  decodeCertificateResponse,
  encodeCertificateRequest,
  encodeCertificateResponse,
  ProtocolError,
  SERVICE_NAME,
} from './protocol.js';

const definition = loadSync(join(import.meta.dirname, '../../protos/istio/v1/auth/ca.proto'), {
  longs: String,
  defaults: true,
});
const method = (definition[SERVICE_NAME] as Record<string, MethodDefinition<unknown, unknown>>)
  .CreateCertificate!;

describe('CreateCertificate messages', () => {
  it('the method path is the one agents call', () => {
    expect(method.path).toBe('/istio.v1.auth.IstioCertificateService/CreateCertificate');
  });

  it('decodes what protobufjs encodes, metadata and all', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
        (csr, validity, meta) => {
          const bytes = method.requestSerialize({
            csr,
            validityDuration: validity.toString(),
            metadata: {
              fields: Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, { stringValue: v }])),
            },
          });
          const decoded = decodeCertificateRequest(bytes);
          expect(decoded.csr).toBe(csr);
          const expected =
            validity > BigInt(Number.MAX_SAFE_INTEGER)
              ? Number.POSITIVE_INFINITY
              : validity < BigInt(Number.MIN_SAFE_INTEGER)
                ? Number.NEGATIVE_INFINITY
                : Number(validity);
          expect(decoded.validityDurationSeconds).toBe(expected);
        },
      ),
    );
  });

  it('protobufjs decodes what we encode', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 2000 }), { maxLength: 5 }), (chain) => {
        const decoded = method.responseDeserialize(encodeCertificateResponse(chain)) as {
          certChain: string[];
        };
        expect(decoded.certChain).toEqual(chain);
        expect(decodeCertificateResponse(encodeCertificateResponse(chain))).toEqual(chain);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.integer({ min: -1e9, max: 1e9 }), (csr, seconds) => {
        const decoded = method.requestDeserialize(
          encodeCertificateRequest({ csr, validityDurationSeconds: seconds }),
        ) as { csr: string; validityDuration: string };
        expect(decoded).toMatchObject({ csr, validityDuration: String(seconds) });
      }),
    );
  });

  it('random bytes decode or fail with a ProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeCertificateRequest(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses a csr field of the wrong wire type and a field running past the end', () => {
    expect(() => decodeCertificateRequest(Buffer.from([0x08, 0x01]))).toThrow(ProtocolError);
    expect(() => decodeCertificateRequest(Buffer.from([0x0a, 0x05, 0x41]))).toThrow(/past the end/);
  });
});
