// Looks through log text for private keys in every form a leak could take:
// a PEM block, the base64 of a PEM (a Secret's data value), the base64 of the
// DER inside (a PEM body with its line breaks escaped by JSON), or the exact
// stored value of a key.pem the suite saw. Findings name the place and the
// kind, never the content.
import { createHash, createPrivateKey } from 'node:crypto';

export interface LeakFinding {
  file: string;
  line: number;
  kind: 'pem-marker' | 'known-key-value' | 'base64-pem-key' | 'base64-der-key';
}

const BASE64_RUN = /[A-Za-z0-9+/]{40,}={0,2}/g;
const DER_TYPES = ['pkcs8', 'sec1', 'pkcs1'] as const;

function isDerPrivateKey(der: Buffer): boolean {
  if (der.length < 32 || der[0] !== 0x30) return false; // a key is an ASN.1 SEQUENCE
  for (const type of DER_TYPES) {
    try {
      createPrivateKey({ key: der, format: 'der', type });
      return true;
    } catch {
      // not this encoding
    }
  }
  return false;
}

/** What in one line of log text is (or encodes) a private key. */
export function leaksInLine(text: string, knownDigests: ReadonlySet<string>): LeakFinding['kind'][] {
  const kinds = new Set<LeakFinding['kind']>();
  if (text.includes('PRIVATE KEY-----')) kinds.add('pem-marker');
  // A PEM inside a JSON string has its line breaks escaped: join the body back up.
  const joined = text.replace(/\\n/g, '').replace(/\\r/g, '');
  for (const [run] of joined.matchAll(BASE64_RUN)) {
    if (knownDigests.has(createHash('sha256').update(run).digest('hex'))) kinds.add('known-key-value');
    const decoded = Buffer.from(run, 'base64');
    if (decoded.toString('latin1').includes('PRIVATE KEY')) kinds.add('base64-pem-key');
    else if (isDerPrivateKey(decoded)) kinds.add('base64-der-key');
  }
  return [...kinds];
}

export function scanText(file: string, text: string, knownDigests: ReadonlySet<string>): LeakFinding[] {
  const findings: LeakFinding[] = [];
  text.split('\n').forEach((line, index) => {
    for (const kind of leaksInLine(line, knownDigests)) findings.push({ file, line: index + 1, kind });
  });
  return findings;
}
