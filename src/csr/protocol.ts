/**
 * The two protobuf messages of istio.v1.auth.IstioCertificateService (protos/istio/v1/auth/ca.proto),
 * encoded and decoded by hand: three fields do not need a code generator or a .proto read at run
 * time, and a decoder that knows exactly what it accepts is easier to bound against hostile input.
 * protocol.test.ts checks both directions against protobufjs loading the .proto.
 *
 *   IstioCertificateRequest  { string csr = 1; int64 validity_duration = 3; google.protobuf.Struct metadata = 4; }
 *   IstioCertificateResponse { repeated string cert_chain = 1; }
 */

export const SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const METHOD_PATH = `/${SERVICE_NAME}/CreateCertificate`;

export interface CertificateRequest {
  csr: string;
  /** Seconds; 0 when absent. A value beyond Number's safe range is reported as Infinity or -Infinity. */
  validityDurationSeconds: number;
}

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

class Reader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.offset >= this.bytes.length) throw new ProtocolError('truncated varint');
      const byte = this.bytes[this.offset++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return BigInt.asUintN(64, result);
    }
    throw new ProtocolError('varint longer than 10 bytes');
  }

  skip(length: number): Buffer {
    if (length > this.bytes.length - this.offset)
      throw new ProtocolError('field runs past the end of the message');
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
}

export function decodeCertificateRequest(bytes: Buffer): CertificateRequest {
  const reader = new Reader(bytes);
  const request: CertificateRequest = { csr: '', validityDurationSeconds: 0 };
  while (!reader.done) {
    const key = reader.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new ProtocolError('field number 0 is invalid');
    if (field === 1 && wire === WIRE_LENGTH_DELIMITED) {
      const text = reader.skip(lengthOf(reader));
      request.csr = text.toString('utf8');
    } else if (field === 3 && wire === WIRE_VARINT) {
      const value = BigInt.asIntN(64, reader.varint());
      request.validityDurationSeconds =
        value > BigInt(Number.MAX_SAFE_INTEGER)
          ? Number.POSITIVE_INFINITY
          : value < BigInt(Number.MIN_SAFE_INTEGER)
            ? Number.NEGATIVE_INFINITY
            : Number(value);
    } else if (field === 1 || field === 3) {
      throw new ProtocolError(`field ${field} has wire type ${wire}, expected ${field === 1 ? 2 : 0}`);
    } else {
      skipField(reader, wire); // metadata (4) and any field a newer client sends
    }
  }
  return request;
}

function lengthOf(reader: Reader): number {
  const length = reader.varint();
  if (length > 0x7fffffffn) throw new ProtocolError('length-delimited field too long');
  return Number(length);
}

function skipField(reader: Reader, wire: number): void {
  switch (wire) {
    case WIRE_VARINT:
      reader.varint();
      return;
    case WIRE_FIXED64:
      reader.skip(8);
      return;
    case WIRE_LENGTH_DELIMITED:
      reader.skip(lengthOf(reader));
      return;
    case WIRE_FIXED32:
      reader.skip(4);
      return;
    default:
      throw new ProtocolError(`unsupported wire type ${wire}`);
  }
}

export function encodeCertificateResponse(certChain: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const element of certChain) {
    const text = Buffer.from(element, 'utf8');
    parts.push(Buffer.from([(1 << 3) | WIRE_LENGTH_DELIMITED]), encodeVarint(text.length), text);
  }
  return Buffer.concat(parts);
}

/** For clients (tests, the benchmark): the inverse of the two functions above. */
export function encodeCertificateRequest(request: CertificateRequest): Buffer {
  const csr = Buffer.from(request.csr, 'utf8');
  const parts = [Buffer.from([(1 << 3) | WIRE_LENGTH_DELIMITED]), encodeVarint(csr.length), csr];
  if (request.validityDurationSeconds !== 0) {
    parts.push(
      Buffer.from([(3 << 3) | WIRE_VARINT]),
      encodeVarint(BigInt.asUintN(64, BigInt(Math.trunc(request.validityDurationSeconds)))),
    );
  }
  return Buffer.concat(parts);
}

export function decodeCertificateResponse(bytes: Buffer): string[] {
  const reader = new Reader(bytes);
  const chain: string[] = [];
  while (!reader.done) {
    const key = reader.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 1 && wire === WIRE_LENGTH_DELIMITED)
      chain.push(reader.skip(lengthOf(reader)).toString('utf8'));
    else skipField(reader, wire);
  }
  return chain;
}

function encodeVarint(value: number | bigint): Buffer {
  let v = BigInt(value);
  const bytes: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0n);
  return Buffer.from(bytes);
}
