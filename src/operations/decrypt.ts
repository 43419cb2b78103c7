/**
 * Decrypt. Symmetric ciphertexts name their key, so KeyId is optional (and
 * when given must be that key: IncorrectKeyException). RSA ciphertexts need
 * KeyId and EncryptionAlgorithm. Every failure to authenticate or decode is
 * InvalidCiphertextException with no message, whichever check failed. The
 * decrypting itself is decrypt-any.ts, shared with ReEncrypt.
 */
import { z } from 'zod';
import { DryRunOperationException } from '../errors.js';
import { decryptSource, openSource, takeBase64 } from './decrypt-any.js';
import { defineOperation } from './operation.js';
import { awsBlob, awsBoolean, awsString, encryptionAlgorithm, encryptionContext, grantTokens } from './schema.js';

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
    const source = decryptSource(keys, {
      ciphertext: req.CiphertextBlob,
      keyId: req.KeyId,
      context: req.EncryptionContext,
      algorithm: req.EncryptionAlgorithm,
    });
    if (req.DryRun === true) throw new DryRunOperationException();
    const plaintext = await openSource(hsm, source);
    return { KeyId: source.key.arn, Plaintext: takeBase64(plaintext), EncryptionAlgorithm: source.algorithm };
  },
);
