/**
 * PEM (RFC 7468) bundles: split into typed DER blocks and back.
 *
 * Reading is tolerant of CRLF line endings, indentation and explanatory text between blocks (as Go's
 * pem.Decode and OpenSSL are, and as trust bundles with comments need), but a malformed block is an error,
 * never silently skipped.
 */

export class PemError extends Error {
  override name = 'PemError';
}

export interface PemBlock {
  /** The label between BEGIN and END, e.g. "CERTIFICATE" or "EC PRIVATE KEY". */
  type: string;
  der: Buffer;
}

const BEGIN_LINE = /^-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----$/;
const END_LINE = /^-----END ([A-Z0-9]+(?: [A-Z0-9]+)*)-----$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Splits PEM text into its blocks, in order. Throws a PemError when there is no block or a block is malformed. */
export function decodePem(text: string | Uint8Array): PemBlock[] {
  const source = typeof text === 'string' ? text : Buffer.from(text).toString('utf8');
  const blocks: PemBlock[] = [];
  let open: { type: string; line: number; body: string[] } | undefined;

  source.split(/\r\n|\r|\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    const lineNumber = index + 1;
    if (open === undefined) {
      if (line.includes('-----BEGIN')) {
        const begin = BEGIN_LINE.exec(line);
        if (!begin) throw new PemError(`line ${lineNumber}: malformed BEGIN line`);
        open = { type: begin[1]!, line: lineNumber, body: [] };
      } else if (line.includes('-----END')) {
        throw new PemError(`line ${lineNumber}: END line without a matching BEGIN`);
      }
      return; // text outside blocks is allowed and ignored
    }
    if (line.includes('-----END')) {
      const end = END_LINE.exec(line);
      if (!end) throw new PemError(`line ${lineNumber}: malformed END line`);
      if (end[1] !== open.type) {
        throw new PemError(`line ${lineNumber}: "END ${end[1]}" closes a "BEGIN ${open.type}" block`);
      }
      blocks.push({ type: open.type, der: decodeBody(open.type, open.line, open.body) });
      open = undefined;
      return;
    }
    if (line.includes('-----BEGIN')) {
      throw new PemError(
        `line ${lineNumber}: BEGIN inside the "${open.type}" block opened on line ${open.line}`,
      );
    }
    if (line.includes(':')) {
      throw new PemError(
        `line ${lineNumber}: PEM headers (such as legacy encrypted keys use) are not supported in the "${open.type}" block`,
      );
    }
    open.body.push(line);
  });

  if (open !== undefined)
    throw new PemError(`the "${open.type}" block opened on line ${open.line} has no END line`);
  if (blocks.length === 0) throw new PemError('no PEM block found');
  return blocks;
}

function decodeBody(type: string, beginLine: number, lines: readonly string[]): Buffer {
  const base64 = lines.join('').replace(/\s+/g, '');
  if (base64.length === 0) throw new PemError(`the "${type}" block on line ${beginLine} is empty`);
  if (!BASE64.test(base64) || base64.length % 4 !== 0) {
    throw new PemError(`the "${type}" block on line ${beginLine} is not valid base64`);
  }
  return Buffer.from(base64, 'base64');
}

/** Encodes one DER block as PEM: 64-character lines, ending with a newline. */
export function encodePem(type: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

/** The DER of every certificate in a PEM bundle; any block that is not a CERTIFICATE is an error. */
export function decodeCertificatesPem(text: string | Uint8Array): Buffer[] {
  return decodePem(text).map((block, index) => {
    if (block.type !== 'CERTIFICATE') {
      throw new PemError(`block ${index + 1} is "${block.type}", expected only CERTIFICATE blocks`);
    }
    return block.der;
  });
}

/** A PEM bundle of certificates, in the order given. */
export function encodeCertificatesPem(ders: readonly Uint8Array[]): string {
  return ders.map((der) => encodePem('CERTIFICATE', der)).join('');
}
