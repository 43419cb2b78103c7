/**
 * Decrypt. Symmetric ciphertexts name their key, so KeyId is optional (and
 * when given must be that key: IncorrectKeyException). RSA ciphertexts need
 * KeyId and EncryptionAlgorithm. Every failure to authenticate or decode is
 * InvalidCiphertextException with no message, whichever check failed.
 */
import { z } from 'zod';
import { DryRunOperationException, InvalidCiphertextException } from '../errors.js';
import {
  assertAlgorithmFits,
  assertNoContextForAsymmetric,
  blobKey,
  decryptSymmetric,
  isRsaAlgorithm,
  rsaDecrypt,
} from '../keys/key-crypto.js';
import { defineOperation } from './operation.js';
import { awsBlob, awsBoolean, awsString, encryptionAlgorithm, encryptionContext, grantTokens } from './schema.js';

/** The plaintext as the response carries it; the buffer is wiped (the string cannot be). */
function takeBase64(plaintext: Buffer): string {
  const out = plaintext.toString('base64');
  plaintext.fill(0);
  return out;
}

export const decrypt = defineOperation(
  z.object({
    CiphertextBlob: awsBlob(1, 6144),
    KeyId: awsString(1, 2048).optional(),
    EncryptionContext: encryptionContext().optional(),
    GrantTokens: grantTokens().optional(),
    EncryptionAlgorithm: encryptionAlgorithm().optional(),
    DryRun: awsBoolean().optional(),
  }),
  async (req, { keys, hsm }) => {
    const requested = req.KeyId === undefined ? undefined : keys.resolve(req.KeyId);
    const algorithm = req.EncryptionAlgorithm ?? 'SYMMETRIC_DEFAULT';

    if (algorithm === 'SYMMETRIC_DEFAULT') {
      // An RSA key asked to decrypt without an RSA algorithm: the ciphertext cannot be its.
      if (requested !== undefined && requested.keySpec !== 'SYMMETRIC_DEFAULT') throw new InvalidCiphertextException();
      const key = blobKey(keys, req.CiphertextBlob, requested);
      keys.assertUsable(key);
      if (req.DryRun === true) throw new DryRunOperationException();
      const plaintext = await decryptSymmetric(hsm, key, req.CiphertextBlob, req.EncryptionContext);
      return { KeyId: key.arn, Plaintext: takeBase64(plaintext), EncryptionAlgorithm: algorithm };
    }

    // Asymmetric: the ciphertext is raw OAEP output and does not name its key.
    if (requested === undefined) throw new InvalidCiphertextException();
    keys.assertUsable(requested);
    assertAlgorithmFits(requested, algorithm);
    if (!isRsaAlgorithm(algorithm)) throw new InvalidCiphertextException();
    assertNoContextForAsymmetric(req.EncryptionContext);
    if (req.DryRun === true) throw new DryRunOperationException();
    const plaintext = await rsaDecrypt(hsm, requested, algorithm, req.CiphertextBlob);
    return { KeyId: requested.arn, Plaintext: takeBase64(plaintext), EncryptionAlgorithm: algorithm };
  },
);
