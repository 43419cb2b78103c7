/**
 * Encrypting under a KMS key exactly as Encrypt does, shared by Encrypt and
 * ReEncrypt (its destination side). Three steps, so a caller can check the
 * destination before it has the plaintext (ReEncrypt decrypts the source
 * only after both keys passed):
 * - `encryptTarget`: the key, its state, the algorithm against the key spec,
 *   no context for RSA;
 * - `assertPlaintextFits`: the RSA size limit (ValidationException);
 * - `sealFor`: the token. SYMMETRIC_DEFAULT gives the self-describing blob,
 *   RSAES_OAEP_SHA_1/256 the raw OAEP output (modulus-length bytes).
 */
import type { Hsm } from '../hsm/hsm.js';
import type { EncryptionContext } from '../keys/encryption-context.js';
import {
  assertAlgorithmFits,
  assertNoContextForAsymmetric,
  assertRsaPlaintextFits,
  encryptSymmetric,
  isRsaAlgorithm,
  rsaEncrypt,
  type RsaAlgorithm,
} from '../keys/key-crypto.js';
import type { KeyStore, KmsKey } from '../keys/key-store.js';
import type { EncryptionAlgorithm } from './schema.js';

/** A key that passed every check Encrypt makes before it sees the plaintext. */
export interface EncryptTarget {
  key: KmsKey;
  algorithm: 'SYMMETRIC_DEFAULT' | RsaAlgorithm;
  context: EncryptionContext | undefined;
}

export function encryptTarget(
  keys: KeyStore,
  keyId: string,
  algorithm: EncryptionAlgorithm | undefined,
  context: EncryptionContext | undefined,
): EncryptTarget {
  const key = keys.resolve(keyId);
  keys.assertUsable(key);
  const chosen = algorithm ?? 'SYMMETRIC_DEFAULT';
  assertAlgorithmFits(key, chosen);
  if (isRsaAlgorithm(chosen)) {
    assertNoContextForAsymmetric(context);
    return { key, algorithm: chosen, context };
  }
  if (chosen !== 'SYMMETRIC_DEFAULT') throw new Error(`unreachable: ${chosen} passed assertAlgorithmFits`);
  return { key, algorithm: chosen, context };
}

/** RSA's plaintext limit per key spec and hash; symmetric plaintexts are bounded by the request schemas. */
export function assertPlaintextFits(target: EncryptTarget, plaintext: Buffer): void {
  if (target.algorithm !== 'SYMMETRIC_DEFAULT') assertRsaPlaintextFits(target.key, target.algorithm, plaintext);
}

/** Encrypts on the token. The plaintext stays the caller's to wipe. */
export function sealFor(hsm: Hsm, target: EncryptTarget, plaintext: Buffer): Promise<Buffer> {
  return target.algorithm === 'SYMMETRIC_DEFAULT'
    ? encryptSymmetric(hsm, target.key, plaintext, target.context)
    : rsaEncrypt(hsm, target.key, target.algorithm, plaintext);
}
