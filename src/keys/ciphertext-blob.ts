/**
 * The symmetric ciphertext blob: self-describing and versioned, so Decrypt
 * needs no KeyId and a rotated key's old ciphertexts still name their
 * material. Format 1 (all integers big-endian):
 *
 *   offset  size  field
 *   0       1     format version, 0x01
 *   1       16    KMS key id (the UUID's 16 bytes)
 *   17      4     key material version (uint32; 0 = the key's first material)
 *   21      12    AES-GCM IV, fresh from the token's RNG for every Encrypt
 *   33      n     AES-256-GCM ciphertext (n = plaintext length, 1..4096)
 *   33+n    16    GCM tag (128 bits)
 *
 * The AAD is the 21-byte header followed by the canonical encryption
 * context, so a blob whose header is edited (another key id or material)
 * fails authentication like any other tampering. The golden-vector tests pin
 * this layout: a change here must add a new version, never alter this one.
 */
import { encodeEncryptionContext, type EncryptionContext } from './encryption-context.js';

export const BLOB_VERSION_1 = 0x01;
export const HEADER_LENGTH = 21;
export const IV_LENGTH = 12;
export const TAG_LENGTH = 16;
export const BLOB_OVERHEAD = HEADER_LENGTH + IV_LENGTH + TAG_LENGTH;

export interface SymmetricBlob {
  keyId: string;
  materialVersion: number;
  iv: Buffer;
  /** Ciphertext followed by the tag, as the token takes it. */
  ciphertextAndTag: Buffer;
  header: Buffer;
}

function uuidToBytes(keyId: string): Buffer {
  return Buffer.from(keyId.replace(/-/g, ''), 'hex');
}

function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function blobHeader(keyId: string, materialVersion: number): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header[0] = BLOB_VERSION_1;
  uuidToBytes(keyId).copy(header, 1);
  header.writeUInt32BE(materialVersion, 17);
  return header;
}

export function blobAad(header: Buffer, context: EncryptionContext | undefined): Buffer {
  return Buffer.concat([header, encodeEncryptionContext(context)]);
}

export function encodeBlob(header: Buffer, iv: Buffer, ciphertextAndTag: Buffer): Buffer {
  return Buffer.concat([header, iv, ciphertextAndTag]);
}

/** Parses a blob; undefined when it cannot be one of ours (the caller answers InvalidCiphertextException). */
export function parseBlob(blob: Buffer): SymmetricBlob | undefined {
  if (blob.length < BLOB_OVERHEAD + 1 || blob[0] !== BLOB_VERSION_1) return undefined;
  return {
    keyId: bytesToUuid(blob.subarray(1, 17)),
    materialVersion: blob.readUInt32BE(17),
    header: blob.subarray(0, HEADER_LENGTH),
    iv: blob.subarray(HEADER_LENGTH, HEADER_LENGTH + IV_LENGTH),
    ciphertextAndTag: blob.subarray(HEADER_LENGTH + IV_LENGTH),
  };
}
