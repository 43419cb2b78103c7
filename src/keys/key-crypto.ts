/**
 * Cryptographic use of a KMS key: which algorithm fits which key spec, the
 * RSA plaintext limits, and the symmetric ciphertext blob round trip. The
 * operations validate request shape; this module enforces key semantics.
 */
import type { KeySpec } from '../config/config.js';
import {
  IncorrectKeyException,
  InvalidCiphertextException,
  InvalidKeyUsageException,
  KMSInternalException,
  ValidationException,
} from '../errors.js';
import type { Hsm, OaepHash } from '../hsm/hsm.js';
import { blobAad, blobHeader, encodeBlob, IV_LENGTH, parseBlob } from './ciphertext-blob.js';
import type { EncryptionContext } from './encryption-context.js';
import { materialName, type KeyStore, type KmsKey } from './key-store.js';

export type RsaAlgorithm = 'RSAES_OAEP_SHA_1' | 'RSAES_OAEP_SHA_256';
export type Algorithm = 'SYMMETRIC_DEFAULT' | RsaAlgorithm | 'SM2PKE';

const OAEP_HASH: Record<RsaAlgorithm, OaepHash> = { RSAES_OAEP_SHA_1: 'sha1', RSAES_OAEP_SHA_256: 'sha256' };

/** Largest plaintext per RSA key spec and OAEP hash: k - 2*hLen - 2. */
export const RSA_PLAINTEXT_LIMIT: Record<Exclude<KeySpec, 'SYMMETRIC_DEFAULT'>, Record<RsaAlgorithm, number>> = {
  RSA_2048: { RSAES_OAEP_SHA_1: 214, RSAES_OAEP_SHA_256: 190 },
  RSA_3072: { RSAES_OAEP_SHA_1: 342, RSAES_OAEP_SHA_256: 318 },
  RSA_4096: { RSAES_OAEP_SHA_1: 470, RSAES_OAEP_SHA_256: 446 },
};

export function isRsaAlgorithm(a: Algorithm): a is RsaAlgorithm {
  return a === 'RSAES_OAEP_SHA_1' || a === 'RSAES_OAEP_SHA_256';
}

/** The key spec must support the algorithm (AWS: InvalidKeyUsageException). */
export function assertAlgorithmFits(key: KmsKey, algorithm: Algorithm): void {
  const fits = key.keySpec === 'SYMMETRIC_DEFAULT' ? algorithm === 'SYMMETRIC_DEFAULT' : isRsaAlgorithm(algorithm);
  if (!fits) throw new InvalidKeyUsageException(`Algorithm ${algorithm} is incompatible with key spec ${key.keySpec}.`);
}

export function assertNoContextForAsymmetric(context: EncryptionContext | undefined): void {
  if (context !== undefined && Object.keys(context).length > 0)
    throw new ValidationException('EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs.');
}

export function assertRsaPlaintextFits(key: KmsKey, algorithm: RsaAlgorithm, plaintext: Buffer): void {
  const spec = key.keySpec as keyof typeof RSA_PLAINTEXT_LIMIT;
  const limit = RSA_PLAINTEXT_LIMIT[spec][algorithm];
  if (plaintext.length > limit)
    throw new ValidationException(`Algorithm ${algorithm} and key spec ${spec} cannot encrypt data larger than ${limit} bytes.`);
}

export async function encryptSymmetric(
  hsm: Hsm,
  key: KmsKey,
  plaintext: Buffer,
  context: EncryptionContext | undefined,
): Promise<Buffer> {
  const { version, name } = key.currentMaterial;
  const header = blobHeader(key.keyId, version);
  // One token round trip: the token draws a fresh 12-byte IV from its RNG
  // and encrypts in the same call (it neither generates GCM IVs nor detects
  // their reuse, SoftHSM 2.6.1, so the IV never comes from here).
  const { iv, sealed } = await hsm.aesGcmSeal(name, plaintext, blobAad(header, context));
  if (iv.length !== IV_LENGTH) throw new KMSInternalException();
  return encodeBlob(header, iv, sealed);
}

export function rsaEncrypt(hsm: Hsm, key: KmsKey, algorithm: RsaAlgorithm, plaintext: Buffer): Promise<Buffer> {
  return hsm.rsaOaepEncrypt(key.currentMaterial.name, OAEP_HASH[algorithm], plaintext);
}

export function rsaDecrypt(hsm: Hsm, key: KmsKey, algorithm: RsaAlgorithm, ciphertext: Buffer): Promise<Buffer> {
  return hsm.rsaOaepDecrypt(key.currentMaterial.name, OAEP_HASH[algorithm], ciphertext);
}

/**
 * The key a symmetric blob names. With `expected` (the request's KeyId), a
 * blob of another key is IncorrectKeyException; an unparsable blob or one
 * naming a key this gateway does not know, or an asymmetric key, is
 * InvalidCiphertextException.
 */
export function blobKey(keys: KeyStore, blob: Buffer, expected: KmsKey | undefined): KmsKey {
  const parsed = parseBlob(blob);
  if (parsed === undefined) throw new InvalidCiphertextException();
  if (expected !== undefined && parsed.keyId !== expected.keyId) throw new IncorrectKeyException();
  const key = keys.findById(parsed.keyId);
  // A symmetric blob naming an RSA key is forged or corrupt: it must not reach
  // the token as an AES operation on RSA material (a retryable KeyUnavailable).
  if (key === undefined || key.keySpec !== 'SYMMETRIC_DEFAULT') throw new InvalidCiphertextException();
  return key;
}

/** Decrypts with the material version the blob names (older versions stay after a rotation). */
export async function decryptSymmetric(
  hsm: Hsm,
  key: KmsKey,
  blob: Buffer,
  context: EncryptionContext | undefined,
): Promise<Buffer> {
  const parsed = parseBlob(blob);
  if (parsed === undefined || !key.materials.some((m) => m.version === parsed.materialVersion))
    throw new InvalidCiphertextException();
  return hsm.aesGcmDecrypt(
    materialName(key.keyId, parsed.materialVersion),
    parsed.iv,
    parsed.ciphertextAndTag,
    blobAad(parsed.header, context),
  );
}
