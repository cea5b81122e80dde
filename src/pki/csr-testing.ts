/**
 * Builds PKCS#10 requests for tests, including ones a well-behaved client would never send (extra
 * names, a broken signature). Not used by the controller.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  Attribute,
  AttributeTypeAndValue,
  Extension,
  Extensions,
  GeneralName,
  id_ce_subjectAltName,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';
import { encodePem } from './pem.js';

export interface TestCsrOptions {
  /** Defaults to a fresh ECDSA P-256 key. */
  privateKey?: KeyObject;
  uris?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  emails?: string[];
  commonName?: string;
  /** Flip a bit of the signature. */
  corruptSignature?: boolean;
}

export type TestKeyKind = 'P-256' | 'P-384' | 'P-521' | 'RSA-1024' | 'RSA-2048' | 'RSA-4096' | 'Ed25519';

export function testKey(kind: TestKeyKind = 'P-256'): KeyObject {
  switch (kind) {
    case 'P-256':
      return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    case 'P-384':
      return generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    case 'P-521':
      return generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey;
    case 'Ed25519':
      return generateKeyPairSync('ed25519').privateKey;
    default:
      return generateKeyPairSync('rsa', { modulusLength: Number(kind.slice(4)) }).privateKey;
  }
}

/** A DER PKCS#10 request; see TestCsrOptions. */
export function buildTestCsrDer(options: TestCsrOptions = {}): Buffer {
  const privateKey = options.privateKey ?? testKey();
  const publicKey = createPublicKey(privateKey);
  const generalNames = [
    ...(options.uris ?? []).map((uri) => new GeneralName({ uniformResourceIdentifier: uri })),
    ...(options.dnsNames ?? []).map((dNSName) => new GeneralName({ dNSName })),
    ...(options.ipAddresses ?? []).map((iPAddress) => new GeneralName({ iPAddress })),
    ...(options.emails ?? []).map((rfc822Name) => new GeneralName({ rfc822Name })),
  ];
  const attributes = new Attributes();
  if (generalNames.length > 0) {
    const san = new Extension({
      extnID: id_ce_subjectAltName,
      critical: false,
      extnValue: new OctetString(AsnConvert.serialize(new SubjectAlternativeName(generalNames))),
    });
    attributes.push(
      new Attribute({
        type: '1.2.840.113549.1.9.14',
        values: [AsnConvert.serialize(new Extensions([san]))],
      }),
    );
  }
  const subject = new Name(
    options.commonName === undefined
      ? []
      : [
          new RelativeDistinguishedName([
            new AttributeTypeAndValue({
              type: '2.5.4.3',
              value: { utf8String: options.commonName } as never,
            }),
          ]),
        ],
  );
  const info = new CertificationRequestInfo({
    version: 0,
    subject,
    subjectPKInfo: AsnConvert.parse(
      publicKey.export({ format: 'der', type: 'spki' }) as Buffer,
      SubjectPublicKeyInfo,
    ),
    attributes,
  });
  const infoDer = Buffer.from(AsnConvert.serialize(info));
  const isRsa = privateKey.asymmetricKeyType === 'rsa';
  const isEd = privateKey.asymmetricKeyType === 'ed25519';
  const signature = sign(isEd ? null : 'sha256', infoDer, privateKey);
  if (options.corruptSignature) signature[signature.length - 1]! ^= 0x01;
  const algorithm = isEd ? '1.3.101.112' : isRsa ? '1.2.840.113549.1.1.11' : '1.2.840.10045.4.3.2';
  const request = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm, parameters: isRsa ? null : undefined }),
    signature: new Uint8Array(signature).buffer,
  });
  return Buffer.from(AsnConvert.serialize(request));
}

export function buildTestCsrPem(options: TestCsrOptions = {}): string {
  return encodePem('CERTIFICATE REQUEST', buildTestCsrDer(options));
}
