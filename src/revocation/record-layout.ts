// How the issuance record is laid out in a shard's ConfigMap data, and what a write sends: pure
// functions, no Kubernetes client (src/revocation/issuance-record.ts executes them).
//
// Layout (since session 7): one data key per certificate,
//   "<namespace>_<serviceaccount>_<serial hex>" → "<notAfter s> <issuedAt s>"
// Neither a namespace nor a ServiceAccount name may contain "_" and a serial's hex never does, so
// the two "_" split a key without ambiguity; a ServiceAccount name may contain ".", which is why
// the separator is not ".". A certificate is added by a JSON merge patch that carries only its own
// key, and removed (once expired) by a patch that sets its key to null: no write rewrites entries
// it did not add, so writers need no read first and no resourceVersion.
//
// A ConfigMap key is at most 253 characters. When namespace + name + serial would not fit (a
// ServiceAccount name longer than ~148 characters), the name part of the key is "h" + 40 hex of a
// SHA-256 of the name and the value carries the name as a third field.
//
// The layout before it (still read in shards written by earlier versions, never written): one key per identity,
//   "<namespace>_<serviceaccount>" → one line per certificate "<serial hex> <notAfter s> <issuedAt s>".
import { createHash } from 'node:crypto';
import { normalizeSerialHex } from '../pki/crl.js';

export interface IssuanceEntry {
  namespace: string;
  serviceAccount: string;
  serial: string;
  notAfter: Date;
  issuedAt: Date;
}

export interface RecordedCertificate {
  serial: string;
  namespace: string;
  serviceAccount: string;
  notAfter: number;
  issuedAt: number;
}

/** What a write sends: new keys with their values, expired or converted keys as null. */
export type ShardPatch = Record<string, string | null>;

const MAX_KEY_LENGTH = 253;
const seconds = (ms: number) => Math.floor(ms / 1000);

/** The key's name part: the ServiceAccount's name, or a hash of it when the key would be too long. */
function namePart(namespace: string, serviceAccount: string, serial: string): string {
  if (namespace.length + serviceAccount.length + serial.length + 2 <= MAX_KEY_LENGTH) return serviceAccount;
  return `h${createHash('sha256').update(serviceAccount).digest('hex').slice(0, 40)}`;
}

/** The data key and value of one certificate; serial in canonical hex. */
export function entryKeyValue(
  namespace: string,
  serviceAccount: string,
  serial: string,
  notAfter: number,
  issuedAt: number,
): [string, string] {
  const name = namePart(namespace, serviceAccount, serial);
  const value = `${seconds(notAfter)} ${seconds(issuedAt)}`;
  return [`${namespace}_${name}_${serial}`, name === serviceAccount ? value : `${value} ${serviceAccount}`];
}

/** The data key of one certificate (serial in canonical hex). */
export function entryKey(namespace: string, serviceAccount: string, serial: string): string {
  return `${namespace}_${namePart(namespace, serviceAccount, serial)}_${serial}`;
}

/** The prefix of every key of one identity in the per-certificate layout (long names: see namePart). */
function identityPrefixes(namespace: string, serviceAccount: string): string[] {
  const hashed = `${namespace}_h${createHash('sha256').update(serviceAccount).digest('hex').slice(0, 40)}_`;
  return [`${namespace}_${serviceAccount}_`, hashed];
}

const HEX = /^[0-9a-f]+$/;

/** One key of either layout, read; undefined for a key that is not the record's. */
type ParsedKey =
  | { layout: 'entry'; namespace: string; serviceAccount: string; serial: string }
  | { layout: 'legacy'; namespace: string; serviceAccount: string };

export function parseKey(key: string): ParsedKey | undefined {
  const first = key.indexOf('_');
  if (first <= 0) return undefined;
  const second = key.indexOf('_', first + 1);
  const namespace = key.slice(0, first);
  if (second < 0) return { layout: 'legacy', namespace, serviceAccount: key.slice(first + 1) };
  const serial = key.slice(second + 1);
  if (second === first + 1 || !HEX.test(serial)) return undefined;
  return { layout: 'entry', namespace, serviceAccount: key.slice(first + 1, second), serial };
}

/** A per-certificate value: notAfter and issuedAt in ms, and the full name when the key holds its hash. */
export function parseValue(
  value: string,
): { notAfter: number; issuedAt: number; serviceAccount?: string } | undefined {
  const [notAfterText, issuedAtText, serviceAccount] = value.split(' ');
  const notAfter = Number(notAfterText) * 1000;
  const issuedAt = Number(issuedAtText) * 1000;
  if (!notAfterText || !issuedAtText || !Number.isFinite(notAfter) || !Number.isFinite(issuedAt))
    return undefined;
  return { notAfter, issuedAt, ...(serviceAccount && { serviceAccount }) };
}

/** Reads one identity's lines of the legacy layout; drops what has expired and what cannot be read. */
export function parseLines(
  text: string | undefined,
  now: number,
): { serial: string; notAfter: number; issuedAt: number }[] {
  const entries: { serial: string; notAfter: number; issuedAt: number }[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [serialText, notAfterText, issuedAtText] = line.trim().split(' ');
    const serial = normalizeSerialHex(serialText ?? '');
    const notAfter = Number(notAfterText) * 1000;
    const issuedAt = Number(issuedAtText) * 1000;
    if (!serial || !Number.isFinite(notAfter) || !Number.isFinite(issuedAt) || notAfter <= now) continue;
    entries.push({ serial, notAfter, issuedAt });
  }
  return entries;
}

/** Every still-valid certificate in a shard's data, in either layout. */
export function readShard(data: Record<string, string>, now: number): RecordedCertificate[] {
  const found: RecordedCertificate[] = [];
  for (const [key, value] of Object.entries(data)) {
    const parsed = parseKey(key);
    if (!parsed) continue;
    if (parsed.layout === 'legacy') {
      for (const line of parseLines(value, now))
        found.push({ ...line, namespace: parsed.namespace, serviceAccount: parsed.serviceAccount });
      continue;
    }
    const times = parseValue(value);
    if (!times || times.notAfter <= now) continue;
    found.push({
      serial: parsed.serial,
      namespace: parsed.namespace,
      serviceAccount: times.serviceAccount ?? parsed.serviceAccount,
      notAfter: times.notAfter,
      issuedAt: times.issuedAt,
    });
  }
  return found;
}

/** One identity's still-valid certificates in a shard's data, in either layout. */
export function readIdentity(
  data: Record<string, string>,
  namespace: string,
  serviceAccount: string,
  now: number,
): RecordedCertificate[] {
  const prefixes = identityPrefixes(namespace, serviceAccount);
  const legacyKey = `${namespace}_${serviceAccount}`;
  const mine: Record<string, string> = {};
  for (const [key, value] of Object.entries(data))
    if (key === legacyKey || prefixes.some((p) => key.startsWith(p))) mine[key] = value;
  return readShard(mine, now).filter((c) => c.serviceAccount === serviceAccount);
}

/** The patch that adds `added` (expired or unreadable entries skipped) and removes `removedKeys`. */
export function planAppend(
  added: readonly IssuanceEntry[],
  removedKeys: readonly string[],
  now: number,
): ShardPatch {
  const patch: ShardPatch = {};
  for (const key of removedKeys) patch[key] = null;
  for (const entry of added) {
    const serial = normalizeSerialHex(entry.serial);
    if (!serial || entry.notAfter.getTime() <= now) continue;
    const [key, value] = entryKeyValue(
      entry.namespace,
      entry.serviceAccount,
      serial,
      entry.notAfter.getTime(),
      entry.issuedAt.getTime(),
    );
    patch[key] = value;
  }
  return patch;
}
