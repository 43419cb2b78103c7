/**
 * Opening a ciphertext exactly as Decrypt does, shared by Decrypt and
 * ReEncrypt (its source side). Two steps, so a caller can put its own checks
 * (the destination key, DryRun) between the key checks and the token:
 * - `decryptSource` makes every check that needs no token: the key, its
 *   state, the algorithm against the key spec, the context;
 * - `openSource` decrypts on the token.
 * Symmetric ciphertexts name their key, so KeyId is optional (and when given
 * must be that key: IncorrectKeyException). RSA ciphertexts need KeyId and
 * EncryptionAlgorithm. Every failure to authenticate or decode is
 * InvalidCiphertextException with no message, whichever check failed.
 */
import { InvalidCiphertextException } from '../errors.js';
import type { Hsm } from '../hsm/hsm.js';
import type { EncryptionContext } from '../keys/encryption-context.js';
import {
  assertAlgorithmFits,
  assertNoContextForAsymmetric,
  blobKey,
  decryptSymmetric,
  isRsaAlgorithm,
  rsaDecrypt,
  type RsaAlgorithm,
} from '../keys/key-crypto.js';
import type { KeyStore, KmsKey } from '../keys/key-store.js';
import type { EncryptionAlgorithm } from './schema.js';

export interface DecryptRequest {
  ciphertext: Buffer;
  /** The request's KeyId (Decrypt's KeyId, ReEncrypt's SourceKeyId). */
  keyId?: string | undefined;
  context?: EncryptionContext | undefined;
  algorithm?: EncryptionAlgorithm | undefined;
}

/** A ciphertext whose key passed every check; only the token is left. */
export interface DecryptSource {
  key: KmsKey;
  algorithm: 'SYMMETRIC_DEFAULT' | RsaAlgorithm;
  ciphertext: Buffer;
  context: EncryptionContext | undefined;
}

/** Every check Decrypt makes before it touches the token, in AWS's order. */
export function decryptSource(keys: KeyStore, req: DecryptRequest): DecryptSource {
  const requested = req.keyId === undefined ? undefined : keys.resolve(req.keyId);
  const algorithm = req.algorithm ?? 'SYMMETRIC_DEFAULT';

  if (algorithm === 'SYMMETRIC_DEFAULT') {
    // An RSA key asked to decrypt without an RSA algorithm: the ciphertext cannot be its.
    if (requested !== undefined && requested.keySpec !== 'SYMMETRIC_DEFAULT') throw new InvalidCiphertextException();
    const key = blobKey(keys, req.ciphertext, requested);
    keys.assertUsable(key);
    return { key, algorithm, ciphertext: req.ciphertext, context: req.context };
  }

  // Asymmetric: the ciphertext is raw OAEP output and does not name its key.
  if (requested === undefined) throw new InvalidCiphertextException();
  keys.assertUsable(requested);
  assertAlgorithmFits(requested, algorithm);
  if (!isRsaAlgorithm(algorithm)) throw new InvalidCiphertextException();
  assertNoContextForAsymmetric(req.context);
  return { key: requested, algorithm, ciphertext: req.ciphertext, context: req.context };
}

/** Decrypts on the token. The caller owns the plaintext and must wipe it. */
export function openSource(hsm: Hsm, source: DecryptSource): Promise<Buffer> {
  return source.algorithm === 'SYMMETRIC_DEFAULT'
    ? decryptSymmetric(hsm, source.key, source.ciphertext, source.context)
    : rsaDecrypt(hsm, source.key, source.algorithm, source.ciphertext);
}

/** A secret as the response carries it; the buffer is wiped (the string cannot be). */
export function takeBase64(secret: Buffer): string {
  const out = secret.toString('base64');
  secret.fill(0);
  return out;
}
