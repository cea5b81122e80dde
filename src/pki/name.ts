/** X.501 distinguished names: encoding the few alcazar writes, and a one-line description of any. */
import {
  type DerElement,
  decodeObjectIdentifier,
  isPrintableString,
  objectIdentifier,
  printableString,
  readChildren,
  readElement,
  sequence,
  setOf,
  Tag,
  utf8String,
} from './der.js';
import { Oid } from './oids.js';

export interface NameFields {
  organization?: string;
  commonName?: string;
}

/**
 * Encodes a Name with one attribute per RDN, O before CN. Values use PrintableString when they fit it and
 * UTF8String otherwise, as Go's crypto/x509 (and so Citadel) does: a root we create for trust domain T has
 * the same subject bytes as Citadel's root for T, and the same bytes every time it is re-created.
 */
export function encodeName(fields: NameFields): Buffer {
  const rdns: Buffer[] = [];
  if (fields.organization !== undefined) rdns.push(attribute(Oid.organizationName, fields.organization));
  if (fields.commonName !== undefined) rdns.push(attribute(Oid.commonName, fields.commonName));
  return sequence(...rdns);
}

/** The empty Name: a SPIFFE leaf identifies its workload by URI SAN only. */
export function emptyName(): Buffer {
  return sequence();
}

function attribute(type: string, value: string): Buffer {
  const encodedValue = isPrintableString(value) ? printableString(value) : utf8String(value);
  return setOf(sequence(objectIdentifier(type), encodedValue));
}

const SHORT_NAMES: Record<string, string> = {
  [Oid.commonName]: 'CN',
  [Oid.serialNumber]: 'serialNumber',
  [Oid.countryName]: 'C',
  [Oid.localityName]: 'L',
  [Oid.stateOrProvinceName]: 'ST',
  [Oid.organizationName]: 'O',
  [Oid.organizationalUnitName]: 'OU',
};

/** "O=cluster.local, CN=alcazar intermediate": attributes in certificate order; "" for the empty Name. */
export function describeName(nameDer: Buffer): string {
  const parts: string[] = [];
  for (const rdn of readChildren(readElement(nameDer, Tag.SEQUENCE))) {
    for (const attributeTypeAndValue of readChildren(rdn)) {
      const [type, value] = readChildren(attributeTypeAndValue);
      if (type === undefined || value === undefined) continue;
      const oid = decodeObjectIdentifier(type);
      parts.push(`${SHORT_NAMES[oid] ?? oid}=${decodeDirectoryString(value)}`);
    }
  }
  return parts.join(', ');
}

function decodeDirectoryString(element: DerElement): string {
  switch (element.tag) {
    case Tag.UTF8_STRING:
      return element.value.toString('utf8');
    case Tag.PRINTABLE_STRING:
    case Tag.IA5_STRING:
    case Tag.TELETEX_STRING:
      return element.value.toString('latin1');
    case Tag.BMP_STRING:
      return Buffer.from(element.value).swap16().toString('utf16le');
    default:
      return `#${element.raw.toString('hex')}`;
  }
}
