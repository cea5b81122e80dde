/**
 * The X.509 v3 extensions alcazar writes and checks, each with its encoder and decoder side by side.
 * Decoders take the contents of the extension's extnValue OCTET STRING.
 */
import { createHash } from 'node:crypto';
import {
  booleanValue,
  decodeBitString,
  decodeBoolean,
  decodeObjectIdentifier,
  decodeUnsignedInteger,
  expectTag,
  ia5String,
  implicitPrimitive,
  namedBitString,
  objectIdentifier,
  octetString,
  readChildren,
  readElement,
  sequence,
  Tag,
  unsignedInteger,
} from './der.js';
import { Oid } from './oids.js';

/** One Extension: SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }. */
export function encodeExtension(oid: string, critical: boolean, valueDer: Buffer): Buffer {
  return critical
    ? sequence(objectIdentifier(oid), booleanValue(true), octetString(valueDer))
    : sequence(objectIdentifier(oid), octetString(valueDer));
}

// ---- KeyUsage (RFC 5280 §4.2.1.3) ----

/** Indexed by bit number. */
const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;

export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

export function encodeKeyUsage(usages: readonly KeyUsageName[]): Buffer {
  return namedBitString(usages.map((usage) => KEY_USAGE_BITS.indexOf(usage)));
}

export function decodeKeyUsage(valueDer: Buffer): KeyUsageName[] {
  const { bytes, unusedBits } = decodeBitString(readElement(valueDer));
  const bitCount = bytes.length * 8 - unusedBits;
  return KEY_USAGE_BITS.filter(
    (_, bit) => bit < bitCount && (bytes[Math.floor(bit / 8)]! & (0x80 >> (bit % 8))) !== 0,
  );
}

// ---- ExtendedKeyUsage (RFC 5280 §4.2.1.12) ----

const EXT_KEY_USAGE_NAMES: Record<string, string> = {
  [Oid.serverAuth]: 'serverAuth',
  [Oid.clientAuth]: 'clientAuth',
};

export function encodeExtKeyUsage(oids: readonly string[]): Buffer {
  return sequence(...oids.map(objectIdentifier));
}

/** Known purposes by name ("serverAuth", "clientAuth"), others as dotted OIDs. */
export function decodeExtKeyUsage(valueDer: Buffer): string[] {
  return readChildren(readElement(valueDer, Tag.SEQUENCE)).map((element) => {
    const oid = decodeObjectIdentifier(element);
    return EXT_KEY_USAGE_NAMES[oid] ?? oid;
  });
}

// ---- BasicConstraints (RFC 5280 §4.2.1.9) ----

export interface BasicConstraints {
  ca: boolean;
  pathLenConstraint?: number;
}

export function encodeBasicConstraints({ ca, pathLenConstraint }: BasicConstraints): Buffer {
  // DER omits a field equal to its DEFAULT, so CA:FALSE is the empty SEQUENCE.
  if (!ca) return sequence();
  return pathLenConstraint === undefined
    ? sequence(booleanValue(true))
    : sequence(booleanValue(true), unsignedInteger(pathLenConstraint));
}

export function decodeBasicConstraints(valueDer: Buffer): BasicConstraints {
  const fields = readChildren(readElement(valueDer, Tag.SEQUENCE));
  let index = 0;
  let ca = false;
  if (fields[index]?.tag === Tag.BOOLEAN) ca = decodeBoolean(fields[index++]!);
  const pathLength = fields[index];
  if (pathLength === undefined) return { ca };
  return { ca, pathLenConstraint: Number.parseInt(decodeUnsignedInteger(pathLength).toString('hex'), 16) };
}

// ---- SubjectAltName (RFC 5280 §4.2.1.6) ----

const GENERAL_NAME_DNS = 2;
const GENERAL_NAME_URI = 6;

export interface SubjectAltNames {
  uris: string[];
  dnsNames: string[];
  /** How many names of other kinds (IP addresses, e-mail, …) are present. */
  otherNameCount: number;
}

export function encodeSubjectAltName({
  uris,
  dnsNames,
}: {
  uris: readonly string[];
  dnsNames: readonly string[];
}): Buffer {
  const names = [
    ...uris.map((uri) => implicitPrimitive(GENERAL_NAME_URI, ia5Contents(uri))),
    ...dnsNames.map((dnsName) => implicitPrimitive(GENERAL_NAME_DNS, ia5Contents(dnsName))),
  ];
  return sequence(...names);
}

function ia5Contents(text: string): Buffer {
  return readElement(ia5String(text)).value;
}

export function decodeSubjectAltName(valueDer: Buffer): SubjectAltNames {
  const result: SubjectAltNames = { uris: [], dnsNames: [], otherNameCount: 0 };
  for (const name of readChildren(readElement(valueDer, Tag.SEQUENCE))) {
    if (name.tag === (0x80 | GENERAL_NAME_URI)) result.uris.push(name.value.toString('latin1'));
    else if (name.tag === (0x80 | GENERAL_NAME_DNS)) result.dnsNames.push(name.value.toString('latin1'));
    else result.otherNameCount++;
  }
  return result;
}

// ---- Subject and Authority Key Identifiers (RFC 5280 §4.2.1.1, §4.2.1.2) ----

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits. */
export function keyIdentifierOf(subjectPublicKeyInfoDer: Buffer): Buffer {
  const [, subjectPublicKey] = readChildren(readElement(subjectPublicKeyInfoDer, Tag.SEQUENCE));
  const { bytes } = decodeBitString(expectTag(subjectPublicKey, Tag.BIT_STRING, 'subjectPublicKey'));
  return createHash('sha1').update(bytes).digest();
}

export function encodeSubjectKeyIdentifier(keyIdentifier: Buffer): Buffer {
  return octetString(keyIdentifier);
}

export function decodeSubjectKeyIdentifier(valueDer: Buffer): Buffer {
  return readElement(valueDer, Tag.OCTET_STRING).value;
}

export function encodeAuthorityKeyIdentifier(keyIdentifier: Buffer): Buffer {
  return sequence(implicitPrimitive(0, keyIdentifier));
}

/** The keyIdentifier field, or undefined when the extension names the issuer another way. */
export function decodeAuthorityKeyIdentifier(valueDer: Buffer): Buffer | undefined {
  const keyIdentifier = readChildren(readElement(valueDer, Tag.SEQUENCE)).find((field) => field.tag === 0x80);
  return keyIdentifier?.value;
}
